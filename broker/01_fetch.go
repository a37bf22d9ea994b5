package broker

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
	"github.com/kbroker/kbroker/protocol"
	"github.com/kbroker/kbroker/storage"
)

// Fetch: v4-17
//
// Behavior:
// * Reads whole batches from one segment per partition, up to the high
//   watermark (read_uncommitted) or the last stable offset
//   (read_committed, with the aborted transactions of the range from the
//   TransactionIndex), within the partition's and the request's MaxBytes,
//   the latter capped by fetch.max.bytes (and MinBytes by that), as
//   KafkaApis.handleFetchRequest caps it; the first partition with data
//   returns at least one whole batch (KIP-74).
// * Record bytes are not copied: each partition's records are a file
//   region that the connection writes with sendfile(2). Only a response
//   with a few KiB of records in all (protocol.Frame.WriteTo) reads them
//   and goes out in one write, which a waiting consumer gets sooner.
// * Long poll: with fewer than MinBytes ready, the request waits for appends
//   on its partitions until MaxWaitMillis (Kafka's DelayedFetch).
// * Fetch sessions (KIP-227): full and incremental fetches, forgotten
//   topics, and incremental responses that carry only partitions with news.
// * Errors are per partition: UNKNOWN_TOPIC_OR_PARTITION (UNKNOWN_TOPIC_ID
//   for v13+), OFFSET_OUT_OF_RANGE, FENCED/UNKNOWN_LEADER_EPOCH.
// * In a cluster, consumers (v11+, which carry client metadata) may fetch
//   from any in-sync replica, up to its high watermark, and with
//   replica.selector.class set to RackAwareReplicaSelector a leader sends
//   a consumer that names its rack to an in-sync replica in that rack
//   (PreferredReadReplica, no records), as KIP-392 does.
// * Follower fetches (replica id >= 0) are served in a cluster only, by the
//   partition's leader: they read up to the log end offset, wait for
//   appends rather than high watermark moves, and their fetch offset is the
//   follower's log end offset, from which the leader moves the high
//   watermark and grows or shrinks the ISR.
// * With an authorizer, consumers need READ on each topic and followers
//   CLUSTER_ACTION on the cluster (KafkaApis.handleFetchRequest): other
//   partitions are TOPIC_AUTHORIZATION_FAILED, read for nobody, on every
//   fetch of a session.
//
// Version notes:
// * v4: IsolationLevel, LastStableOffset, AbortedTransactions
// * v5: LogStartOffset
// * v7: fetch sessions (KIP-227)
// * v9: CurrentLeaderEpoch (KIP-320)
// * v11: Rack, PreferredReadReplica (KIP-392)
// * v12: flexible; diverging epochs
// * v13: topic ids instead of names (KIP-516)
// * v12: CurrentLeader on NOT_LEADER_OR_FOLLOWER / FENCED_LEADER_EPOCH (KIP-951)
// * v15: ReplicaState replaces ReplicaID (KIP-903)
// * v16: NodeEndpoints of those leaders (KIP-951)

const readCommitted = 1

func (s *Server) handleFetch(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.FetchRequest)
	resp := req.ResponseKind().(*kmsg.FetchResponse)

	replicaID := req.ReplicaID
	if req.Version >= 15 {
		replicaID = req.ReplicaState.ID
	}
	if replicaID >= 0 && s.cluster == nil {
		resp.ErrorCode = kerr.UnknownServerError.Code // no replicas on a single node
		return resp, nil
	}

	// The partitions to read, in order, and the session they belong to.
	var (
		parts       []*sessionPartition
		session     *fetchSession
		incremental bool
	)
	requested := s.fetchRequestPartitions(req)
	switch {
	case req.SessionEpoch == fetchSessionFinalEpoch:
		if req.SessionID != 0 {
			s.sessions.remove(req.SessionID)
		}
		parts = requested
	case req.SessionEpoch == fetchSessionInitialEpoch:
		if req.SessionID != 0 {
			s.sessions.remove(req.SessionID)
		}
		parts = requested
		if req.Version >= 7 {
			// create hands the session over locked.
			if session = s.sessions.create(requested); session != nil {
				defer session.mu.Unlock()
			}
		}
	default:
		var serr *kerr.Error
		if session, serr = s.sessions.incremental(req.SessionID, req.SessionEpoch); serr != nil {
			resp.ErrorCode = serr.Code
			return resp, nil
		}
		// One request at a time per session, locked before it is changed: a
		// client that gave up on a parked long poll may already be asking
		// again on another connection.
		if !session.mu.TryLock() {
			resp.ErrorCode = kerr.InvalidFetchSessionEpoch.Code
			return resp, nil
		}
		defer session.mu.Unlock()
		incremental = true
		for _, ft := range req.ForgottenTopics {
			for _, p := range ft.Partitions {
				session.forget(fetchKey{topicID: ft.TopicID, topic: ft.Topic, partition: p})
			}
		}
		for _, p := range requested {
			session.add(p)
		}
		parts = session.parts
	}
	if session != nil {
		resp.SessionID = session.id
	}
	var denied []*sessionPartition
	if s.authz != nil {
		parts, denied = s.authorizeFetch(creq, replicaID, parts)
	}

	results := s.waitForFetch(req, parts, replicaID)

	// Assemble the response in partition order, grouping consecutive
	// partitions of one topic as Kafka does.
	served := make(map[fetchKey]bool)
	for i, p := range parts {
		r := &results[i]
		if incremental && !r.news(p) {
			r.info.Records.Release()
			continue
		}
		p.sent = true
		p.sentHighWatermark, p.sentLastStableOffset, p.sentLogStartOffset = r.highWatermark, r.lastStableOffset, r.logStartOffset

		if n := len(resp.Topics); n == 0 || resp.Topics[n-1].Topic != p.key.topic || resp.Topics[n-1].TopicID != p.key.topicID {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic, rt.TopicID = p.key.topic, p.key.topicID
			resp.Topics = append(resp.Topics, rt)
		}
		rt := &resp.Topics[len(resp.Topics)-1]
		rp := kmsg.NewFetchResponseTopicPartition()
		rp.Partition = p.key.partition
		rp.ErrorCode = r.errorCode
		if r.errorCode == kerr.NotLeaderForPartition.Code || r.errorCode == kerr.FencedLeaderEpoch.Code {
			s.fetchCurrentLeader(resp, &rp, p.key, creq.conn.listener)
		}
		rp.HighWatermark = r.highWatermark
		rp.LastStableOffset = r.lastStableOffset
		rp.LogStartOffset = r.logStartOffset
		rp.PreferredReadReplica = r.preferredReadReplica
		if req.IsolationLevel == readCommitted {
			rp.AbortedTransactions = make([]kmsg.FetchResponseTopicPartitionAbortedTransaction, 0, len(r.aborted))
			for _, a := range r.aborted {
				at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
				at.ProducerID, at.FirstOffset = a.ProducerID, a.FirstOffset
				rp.AbortedTransactions = append(rp.AbortedTransactions, at)
			}
		}
		rp.RecordBatches = []byte{}
		if n := r.info.Records.Len(); n > 0 {
			// Consumers' traffic only: replication is not a topic's
			// bytes out (Kafka counts it apart, ReplicationBytesOutPerSec).
			if t := s.fetchTopic(p.key); t != nil && replicaID < 0 {
				tm := s.metrics.topic(t.Name)
				tm.bytesOut.Add(float64(n))
				tm.recordsOut.Add(float64(r.info.LastOffset - r.info.FirstOffset + 1))
			}
			rp.RecordBatches = creq.rb.Placeholder(r.info.Records)
			served[p.key] = true
		} else {
			r.info.Records.Release()
		}
		rt.Partitions = append(rt.Partitions, rp)
	}
	for _, p := range denied {
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic, rt.TopicID = p.key.topic, p.key.topicID
		rp := kmsg.NewFetchResponseTopicPartition()
		rp.Partition, rp.ErrorCode = p.key.partition, kerr.TopicAuthorizationFailed.Code
		rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = -1, -1, -1
		rt.Partitions = append(rt.Partitions, rp)
		resp.Topics = append(resp.Topics, rt)
	}
	if session != nil && incremental {
		session.moveToEnd(served)
	}
	return resp, nil
}

// authorizeFetch splits parts into those the request may read and those it
// may not: a follower needs CLUSTER_ACTION, a consumer READ on the topic.
// A topic id that names no topic is left for the read to answer
// UNKNOWN_TOPIC_ID.
func (s *Server) authorizeFetch(creq *clientReq, replicaID int32, parts []*sessionPartition) (allowed, denied []*sessionPartition) {
	if replicaID >= 0 {
		if s.authorizeCluster(creq, acl.OpClusterAction) {
			return parts, nil
		}
		return nil, parts
	}
	readable := map[string]bool{}
	for _, p := range parts {
		name := p.key.topic
		if name == "" {
			t := s.fetchTopic(p.key)
			if t == nil {
				allowed = append(allowed, p)
				continue
			}
			name = t.Name
		}
		ok, seen := readable[name]
		if !seen {
			ok = s.authorize(creq, acl.OpRead, acl.ResourceTopic, name)
			readable[name] = ok
		}
		if ok {
			allowed = append(allowed, p)
		} else {
			denied = append(denied, p)
		}
	}
	return allowed, denied
}

// fetchCurrentLeader fills in a NOT_LEADER_OR_FOLLOWER or
// FENCED_LEADER_EPOCH answer's current leader (v12+) and its endpoint
// (v16+), as KIP-951 has it, so the client moves on without a metadata
// round trip.
func (s *Server) fetchCurrentLeader(resp *kmsg.FetchResponse, rp *kmsg.FetchResponseTopicPartition, k fetchKey, l *boundListener) {
	t := s.fetchTopic(k)
	if resp.Version < 12 || t == nil {
		return
	}
	nl, ok := s.newLeader(t.Name, k.partition, l)
	if !ok {
		return
	}
	rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = nl.id, nl.epoch
	if resp.Version >= 16 && nl.endpoint && !slices.ContainsFunc(resp.Brokers, func(b kmsg.FetchResponseBroker) bool { return b.NodeID == nl.id }) {
		resp.Brokers = append(resp.Brokers, kmsg.FetchResponseBroker{NodeID: nl.id, Host: nl.host, Port: nl.port, Rack: nl.rack})
	}
}

// fetchRequestPartitions lists the request's partitions, keyed by topic id
// for v13+ and by name before (so forgotten topics match either way).
func (s *Server) fetchRequestPartitions(req *kmsg.FetchRequest) []*sessionPartition {
	var parts []*sessionPartition
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			k := fetchKey{topic: rt.Topic, partition: rp.Partition}
			if req.Version >= 13 {
				k = fetchKey{topicID: rt.TopicID, partition: rp.Partition}
			}
			parts = append(parts, &sessionPartition{
				key:                k,
				fetchOffset:        rp.FetchOffset,
				maxBytes:           rp.PartitionMaxBytes,
				currentLeaderEpoch: rp.CurrentLeaderEpoch,
			})
		}
	}
	return parts
}

// fetchResult is one partition's read.
type fetchResult struct {
	errorCode int16
	// preferredReadReplica is the replica a rack-aware consumer should
	// fetch from instead (KIP-392), -1 for none.
	preferredReadReplica int32
	highWatermark        int64
	lastStableOffset     int64
	logStartOffset       int64
	info                 storage.FetchDataInfo
	aborted              []storage.AbortedTxn // read_committed: what the client must drop
}

// news reports whether an incremental response must carry the partition:
// records, an error, or offsets that moved since last sent (Kafka's
// CachedPartition.maybeUpdateResponseData).
func (r *fetchResult) news(p *sessionPartition) bool {
	return !p.sent || r.errorCode != 0 || r.info.Records.Len() > 0 || r.preferredReadReplica >= 0 ||
		r.highWatermark != p.sentHighWatermark || r.lastStableOffset != p.sentLastStableOffset ||
		r.logStartOffset != p.sentLogStartOffset
}

// waitForFetch reads parts and, while fewer than MinBytes are ready and the
// response has room for more, waits for appends until MaxWaitMillis, then
// reads again.
func (s *Server) waitForFetch(req *kmsg.FetchRequest, parts []*sessionPartition, replicaID int32) []fetchResult {
	minBytes := min(int64(req.MinBytes), s.fetchMaxBytes(req))
	results, bytes, full, failed := s.readPartitions(req, parts, replicaID)
	if req.MaxWaitMillis <= 0 || bytes >= minBytes || full || failed || len(parts) == 0 {
		s.metrics.fetchWait.Observe(0)
		return results
	}
	began := time.Now()
	defer func() { s.metrics.fetchWait.Observe(time.Since(began).Seconds()) }()

	// Watch before re-reading, so an append between the read above and the
	// wait below is not missed.
	wake := make(chan struct{}, 1)
	for _, p := range parts {
		t := s.fetchTopic(p.key)
		switch {
		case t == nil || p.key.partition < 0 || int(p.key.partition) >= len(t.Partitions):
		case replicaID >= 0:
			// A follower waits for appends: they do not move the high
			// watermark until it fetches them.
			if part := s.cluster.partition(t.Name, p.key.partition); part != nil {
				defer part.watchAppends(wake)()
			}
		default:
			defer t.Partitions[p.key.partition].Watch(wake)()
		}
	}
	timer := time.NewTimer(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	defer timer.Stop()
	for {
		releaseAll(results)
		results, bytes, full, failed = s.readPartitions(req, parts, replicaID)
		if bytes >= minBytes || full || failed {
			return results
		}
		select {
		case <-wake:
		case <-timer.C:
			return results
		case <-s.closing:
			return results
		}
	}
}

// fetchMaxBytes is the most the response to req may carry: its MaxBytes
// within fetch.max.bytes (a MaxBytes of 0 or less sets no bound of its own).
func (s *Server) fetchMaxBytes(req *kmsg.FetchRequest) int64 {
	if req.MaxBytes <= 0 {
		return int64(s.cfg.FetchMaxBytes)
	}
	return min(int64(req.MaxBytes), int64(s.cfg.FetchMaxBytes))
}

// fetchTopic resolves a session key's topic: by id when it has one; nil when
// the topic does not exist.
func (s *Server) fetchTopic(k fetchKey) *storage.Topic {
	var (
		t  *storage.Topic
		ok bool
	)
	if k.topicID == ([16]byte{}) {
		t, ok = s.logs.Topic(k.topic)
	} else {
		t, ok = s.logs.TopicByID(storage.TopicID(k.topicID))
	}
	if !ok {
		return nil
	}
	return t
}

func releaseAll(results []fetchResult) {
	for i := range results {
		results[i].info.Records.Release()
	}
}

// readPartitions reads every partition once, within the byte limits. It
// returns the bytes ready, whether the response is full (a partition has
// data the request's byte budget left no room for: waiting adds nothing,
// where Kafka's DelayedFetch would count that data as available), and
// whether any partition failed (which, as in Kafka, answers at once
// instead of waiting).
//
// A follower (replicaID >= 0) reads up to the log end offset, and its fetch
// offset tells the leader how far its log reaches (Kafka's
// updateFollowerFetchState), which may move the high watermark and the ISR.
func (s *Server) readPartitions(req *kmsg.FetchRequest, parts []*sessionPartition, replicaID int32) ([]fetchResult, int64, bool, bool) {
	results := make([]fetchResult, len(parts))
	remaining := s.fetchMaxBytes(req)
	var total int64
	full, failed := false, false
	minOneMessage := true
	for i, p := range parts {
		r := &results[i]
		r.highWatermark, r.lastStableOffset, r.logStartOffset, r.preferredReadReplica = -1, -1, -1, -1
		fail := func(err *kerr.Error) {
			r.errorCode = err.Code
			failed = true
		}
		t := s.fetchTopic(p.key)
		if t == nil && req.Version >= 13 {
			fail(kerr.UnknownTopicID)
			continue
		}
		var (
			log *storage.Log
			st  PartitionState
			err *kerr.Error
		)
		if s.cluster != nil && replicaID < 0 && req.Version >= 11 { // fetch from followers (KIP-392)
			log, st, err = s.cluster.replicaLog(t, p.key.partition, p.currentLeaderEpoch)
		} else {
			log, st, err = s.leaderLog(t, p.key.partition, p.currentLeaderEpoch)
		}
		if err != nil {
			fail(err)
			continue
		}
		if replicaID < 0 && req.Rack != "" && s.cfg.RackAwareReplicaSelector && st.Leader == s.cfg.NodeID {
			if preferred := s.cluster.preferredReadReplica(req.Rack, st); preferred >= 0 {
				// KIP-392: no records from here; the consumer moves to
				// the replica in its rack.
				r.preferredReadReplica = preferred
				r.highWatermark, r.lastStableOffset, r.logStartOffset = log.HighWatermark(), log.LastStableOffset(), log.LogStartOffset()
				continue
			}
		}
		if replicaID >= 0 {
			part := s.cluster.partition(t.Name, p.key.partition)
			if part == nil {
				fail(kerr.NotLeaderForPartition)
				continue
			}
			part.updateFollowerFetch(replicaID, p.fetchOffset, time.Now())
			s.cluster.maybeAlterISR(part)
		}
		hw, lso := log.HighWatermark(), log.LastStableOffset()
		maxOffset := hw
		switch {
		case replicaID >= 0:
			maxOffset = log.LogEndOffset()
		case req.IsolationLevel == readCommitted:
			maxOffset = lso
		}
		maxBytes := min(int64(p.maxBytes), remaining)
		info, rerr := log.Read(p.fetchOffset, int32(max(maxBytes, 0)), maxOffset, minOneMessage)
		if rerr != nil {
			fail(protocol.KafkaError(rerr))
			// A follower behind the log start restarts from it.
			r.logStartOffset = log.LogStartOffset()
			continue
		}
		r.highWatermark, r.lastStableOffset, r.logStartOffset = hw, lso, log.LogStartOffset()
		r.info = info
		if req.IsolationLevel == readCommitted && info.Records.Len() > 0 {
			// Bounded by the LSO rather than the last offset read: entries
			// beyond the data are harmless, clients apply them by offset.
			r.aborted = log.CollectAbortedTxns(p.fetchOffset, maxOffset)
		}
		next := p.fetchOffset
		if n := info.Records.Len(); n > 0 {
			total += n
			remaining -= n
			minOneMessage = false
			next = info.LastOffset + 1
		}
		if maxBytes < int64(p.maxBytes) && next < maxOffset {
			full = true
		}
	}
	return results, total, full, failed
}
