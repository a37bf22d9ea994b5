package coordinator

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/kvlog"
)

// OffsetCommit commits offsets for a group (Kafka's
// OffsetMetadataManager.commitOffset):
//   - an empty group id is INVALID_GROUP_ID;
//   - a commit with generation < 0 for an unknown group creates an empty
//     classic group (a "simple" consumer or the admin client); with a
//     generation it is ILLEGAL_GENERATION, GROUP_ID_NOT_FOUND from v9;
//   - the group checks member, instance id and generation or epoch;
//   - per partition: an unknown topic is UNKNOWN_TOPIC_OR_PARTITION (v10:
//     an unknown id UNKNOWN_TOPIC_ID), metadata over
//     offset.metadata.max.bytes OFFSET_METADATA_TOO_LARGE;
//   - the response waits until the offsets are durable.
func (gc *GroupCoordinator) OffsetCommit(req *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	codes := make([][]int16, len(req.Topics))
	for i, rt := range req.Topics {
		codes[i] = make([]int16, len(rt.Partitions))
	}
	failAll := func(err *kerr.Error) {
		for i := range codes {
			for j := range codes[i] {
				codes[i][j] = err.Code
			}
		}
	}

	var res <-chan error
	gc.mu.Lock()
	switch {
	case gc.closed:
		failAll(kerr.CoordinatorNotAvailable)
	case req.Group == "":
		failAll(kerr.InvalidGroupID)
	default:
		if err := gc.validateCommit(req.Group, req.MemberID, req.InstanceID, req.Generation, false, req.Version); err != nil {
			failAll(err)
			break
		}
		now := gc.now().UnixMilli()
		commit := make(map[TopicPartition]OffsetAndMetadata)
		for i := range req.Topics {
			rt := &req.Topics[i]
			name, err := gc.resolveTopic(rt.Topic, rt.TopicID, req.Version >= 10)
			for j, rp := range rt.Partitions {
				switch {
				case err != nil:
					codes[i][j] = err.Code
				case rp.Metadata != nil && len(*rp.Metadata) > gc.cfg.OffsetMetadataMaxBytes:
					codes[i][j] = kerr.OffsetMetadataTooLarge.Code
				default:
					o := OffsetAndMetadata{Offset: rp.Offset, LeaderEpoch: rp.LeaderEpoch, CommitTimestamp: now, ExpireTimestamp: -1}
					if req.Version <= 4 && req.RetentionTimeMillis >= 0 {
						o.ExpireTimestamp = now + req.RetentionTimeMillis // the committer's own retention
					}
					if rp.Metadata != nil {
						o.Metadata = *rp.Metadata
					}
					if req.Version < 6 {
						o.LeaderEpoch = -1
					}
					commit[TopicPartition{name, rp.Partition}] = o
				}
			}
		}
		if len(commit) > 0 {
			res = gc.storeOffsets(req.Group, commit)
		}
	}
	gc.mu.Unlock()
	if res != nil {
		if err := gc.await(res); err != nil {
			for i := range codes {
				for j := range codes[i] {
					if codes[i][j] == 0 {
						codes[i][j] = err.Code
					}
				}
			}
		}
	}

	for i, rt := range req.Topics {
		st := kmsg.NewOffsetCommitResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for j, rp := range rt.Partitions {
			sp := kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = codes[i][j]
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// validateCommit lets the group check the committer. A simple commit
// (generation < 0) to an unknown group is checked against the empty
// classic group it will create once an offset is stored. Called with
// gc.mu held.
func (gc *GroupCoordinator) validateCommit(id, memberID string, instanceID *string, generation int32, transactional bool, version int16) *kerr.Error {
	g := gc.groups[id]
	if g == nil {
		if generation >= 0 {
			if version >= 9 {
				return kerr.GroupIDNotFound
			}
			return kerr.IllegalGeneration
		}
		g = newClassicGroup(gc, id)
	}
	return g.validateOffsetCommit(memberID, instanceID, generation, transactional, version)
}

// resolveTopic names the topic of a request entry: by id from the version
// that carries ids, else by name.
func (gc *GroupCoordinator) resolveTopic(name string, id [16]byte, byID bool) (string, *kerr.Error) {
	if byID {
		name, _, ok := gc.topics.TopicByID(id)
		if !ok {
			return "", kerr.UnknownTopicID
		}
		return name, nil
	}
	if _, _, ok := gc.topics.Topic(name); !ok {
		return "", kerr.UnknownTopicOrPartition
	}
	return name, nil
}

// storeOffsets applies committed offsets in memory, creating the group of
// a simple commit, and queues them to disk; offsets transactions staged
// earlier for the same partitions will not overwrite them. Called with
// gc.mu held.
func (gc *GroupCoordinator) storeOffsets(id string, commit map[TopicPartition]OffsetAndMetadata) <-chan error {
	if gc.groups[id] == nil {
		gc.groups[id] = newClassicGroup(gc, id)
	}
	m := gc.offsets[id]
	if m == nil {
		m = make(map[TopicPartition]OffsetAndMetadata, len(commit))
		gc.offsets[id] = m
	}
	maps.Copy(m, commit)
	write := putOffsets(id, commit)
	if superseded := gc.supersedeTxnOffsets(id, commit); superseded != nil {
		write = chainWrites([]func(tx *kvlog.Tx) error{write, superseded})
	}
	return gc.store.Enqueue(write)
}

// OffsetFetch returns committed offsets (Kafka's
// OffsetMetadataManager.fetchOffsets / fetchAllOffsets):
//   - v0-7 ask for one group, v8+ for many, each answered on its own;
//   - null topics ask for every committed offset of the group;
//   - a partition without a committed offset (or an unknown group or
//     topic) gets offset -1 and no error, as in Kafka;
//   - v9+ may name a member and epoch, which a consumer group checks
//     (STALE_MEMBER_EPOCH, UNKNOWN_MEMBER_ID);
//   - RequireStable (v7+) gets UNSTABLE_OFFSET_COMMIT for partitions with
//     offsets pending in an open transaction.
func (gc *GroupCoordinator) OffsetFetch(req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version < 8 {
		rg := kmsg.NewOffsetFetchRequestGroup()
		rg.Group = req.Group
		if req.Topics != nil {
			rg.Topics = []kmsg.OffsetFetchRequestGroupTopic{}
			for _, rt := range req.Topics {
				rg.Topics = append(rg.Topics, kmsg.OffsetFetchRequestGroupTopic{Topic: rt.Topic, Partitions: rt.Partitions})
			}
		}
		sg := gc.fetchGroupOffsets(&rg, req.RequireStable, req.Version)
		resp.ErrorCode = sg.ErrorCode
		for _, st := range sg.Topics {
			t := kmsg.NewOffsetFetchResponseTopic()
			t.Topic = st.Topic
			for _, sp := range st.Partitions {
				p := kmsg.NewOffsetFetchResponseTopicPartition()
				p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode = sp.Partition, sp.Offset, sp.LeaderEpoch, sp.Metadata, sp.ErrorCode
				t.Partitions = append(t.Partitions, p)
			}
			resp.Topics = append(resp.Topics, t)
		}
		if req.Version < 2 && resp.ErrorCode != 0 { // no top-level error before v2
			for i := range resp.Topics {
				for j := range resp.Topics[i].Partitions {
					resp.Topics[i].Partitions[j].ErrorCode = resp.ErrorCode
				}
			}
		}
		return resp
	}
	for i := range req.Groups {
		resp.Groups = append(resp.Groups, gc.fetchGroupOffsets(&req.Groups[i], req.RequireStable, req.Version))
	}
	return resp
}

func (gc *GroupCoordinator) fetchGroupOffsets(rg *kmsg.OffsetFetchRequestGroup, requireStable bool, version int16) kmsg.OffsetFetchResponseGroup {
	sg := kmsg.NewOffsetFetchResponseGroup()
	sg.Group = rg.Group
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if gc.closed {
		sg.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return sg
	}
	g := gc.groups[rg.Group]
	if g != nil && (rg.MemberID != nil || rg.MemberEpoch >= 0) {
		memberID := ""
		if rg.MemberID != nil {
			memberID = *rg.MemberID
		}
		if err := g.validateOffsetFetch(memberID, rg.MemberEpoch); err != nil {
			sg.ErrorCode = err.Code
			return sg
		}
	}
	committed := gc.offsets[rg.Group]
	byID := version >= 10
	partition := func(tp TopicPartition, p int32) kmsg.OffsetFetchResponseGroupTopicPartition {
		sp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
		sp.Partition, sp.Offset, sp.LeaderEpoch, sp.Metadata = p, -1, -1, kmsg.StringPtr("")
		if requireStable && gc.hasPendingTxnOffsets(rg.Group, tp) {
			sp.ErrorCode = kerr.UnstableOffsetCommit.Code
			return sp
		}
		if o, ok := committed[tp]; ok {
			sp.Offset, sp.LeaderEpoch, sp.Metadata = o.Offset, o.LeaderEpoch, kmsg.StringPtr(o.Metadata)
		}
		return sp
	}
	if rg.Topics == nil { // every committed offset
		byTopic := make(map[string][]int32)
		for tp := range committed {
			byTopic[tp.Topic] = append(byTopic[tp.Topic], tp.Partition)
		}
		for _, topic := range slices.Sorted(maps.Keys(byTopic)) {
			st := kmsg.NewOffsetFetchResponseGroupTopic()
			st.Topic = topic
			if byID {
				id, _, ok := gc.topics.Topic(topic)
				if !ok { // deleted topic: a v10 client cannot name it
					continue
				}
				st.TopicID = id
			}
			ps := byTopic[topic]
			slices.Sort(ps)
			for _, p := range ps {
				st.Partitions = append(st.Partitions, partition(TopicPartition{topic, p}, p))
			}
			sg.Topics = append(sg.Topics, st)
		}
		return sg
	}
	for _, rt := range rg.Topics {
		st := kmsg.NewOffsetFetchResponseGroupTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		name := rt.Topic
		var topicErr *kerr.Error
		if byID {
			n, _, ok := gc.topics.TopicByID(rt.TopicID)
			if !ok {
				topicErr = kerr.UnknownTopicID
			}
			name = n
		}
		for _, p := range rt.Partitions {
			if topicErr != nil {
				sp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
				sp.Partition, sp.Offset, sp.LeaderEpoch, sp.ErrorCode = p, -1, -1, topicErr.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			st.Partitions = append(st.Partitions, partition(TopicPartition{name, p}, p))
		}
		sg.Topics = append(sg.Topics, st)
	}
	return sg
}

// OffsetDelete deletes a group's offsets for partitions no member consumes
// (Kafka's OffsetMetadataManager.deleteOffsets): GROUP_ID_NOT_FOUND for an
// unknown group, the group's own check (NON_EMPTY_GROUP for a non-consumer
// group with members), GROUP_SUBSCRIBED_TO_TOPIC per partition of a topic
// a member subscribes to. Offsets open transactions staged for a deleted
// partition go too, as Kafka's tombstone takes them.
func (gc *GroupCoordinator) OffsetDelete(req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	var res <-chan error
	gc.mu.Lock()
	g := gc.groups[req.Group]
	switch {
	case gc.closed:
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
	case g == nil:
		resp.ErrorCode = kerr.GroupIDNotFound.Code
	default:
		if err := g.validateOffsetDelete(); err != nil {
			resp.ErrorCode = err.Code
			break
		}
		var deleted, touched []TopicPartition
		for _, rt := range req.Topics {
			st := kmsg.NewOffsetDeleteResponseTopic()
			st.Topic = rt.Topic
			_, _, exists := gc.topics.Topic(rt.Topic)
			subscribed := g.isSubscribedToTopic(rt.Topic)
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetDeleteResponseTopicPartition()
				sp.Partition = rp.Partition
				switch {
				case !exists:
					sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				case subscribed:
					sp.ErrorCode = kerr.GroupSubscribedToTopic.Code
				default:
					tp := TopicPartition{rt.Topic, rp.Partition}
					if _, ok := gc.offsets[req.Group][tp]; ok {
						delete(gc.offsets[req.Group], tp)
						deleted = append(deleted, tp)
					}
					touched = append(touched, tp)
				}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		var writes []func(tx *kvlog.Tx) error
		if len(deleted) > 0 {
			writes = append(writes, deleteOffsets(req.Group, deleted))
		}
		if w := gc.dropTxnOffsets(req.Group, touched); w != nil {
			writes = append(writes, w)
		}
		if len(writes) > 0 {
			res = gc.store.Enqueue(chainWrites(writes))
		}
	}
	gc.mu.Unlock()
	if res != nil {
		if err := gc.await(res); err != nil {
			resp.ErrorCode = err.Code
		}
	}
	return resp
}

// expireOffsetsLoop runs the offset retention check every
// offsets.retention.check.interval.ms.
func (gc *GroupCoordinator) expireOffsetsLoop() {
	defer gc.wg.Done()
	t := time.NewTicker(gc.cfg.OffsetsRetentionCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-gc.done:
			return
		case <-t.C:
			gc.expireOffsets()
		}
	}
}

// emptySincer is a group that knows when it became empty; its offsets'
// retention counts from then (KIP-211) rather than from each commit.
type emptySincer interface{ emptySince() (ms int64, ok bool) }

// expireOffsets deletes offsets older than offsets.retention.minutes and
// then groups left empty with no offsets (Kafka's
// GroupMetadataManager.cleanupGroupMetadata):
//   - an empty group's offsets expire retention after it became empty (or
//     after each commit, for a group that never had members);
//   - a group with members keeps the offsets of topics it subscribes to and
//     expires the others by commit time; a group whose protocol the broker
//     cannot read (not "consumer") keeps everything;
//   - an offset committed with a retention time (OffsetCommit v2-4)
//     expires at commit time + that retention instead, when eligible;
//   - a partition with offsets staged by an open transaction keeps its
//     offset, and a group with any keeps itself (Kafka's
//     cleanupExpiredOffsets).
func (gc *GroupCoordinator) expireOffsets() {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if gc.closed {
		return
	}
	now := gc.now().UnixMilli()
	retention := gc.cfg.OffsetsRetention.Milliseconds()
	for _, id := range slices.Sorted(maps.Keys(gc.groups)) {
		g := gc.groups[id]
		var expired []TopicPartition
		empty := g.IsEmpty()
		if empty || g.ProtocolType() == "consumer" {
			base, fromState := int64(0), false
			if es, ok := g.(emptySincer); ok && empty {
				base, fromState = es.emptySince()
			}
			for tp, o := range gc.offsets[id] {
				if !empty && g.isSubscribedToTopic(tp.Topic) || gc.hasPendingTxnOffsets(id, tp) {
					continue
				}
				from := o.CommitTimestamp
				if fromState {
					from = base
				}
				if o.ExpireTimestamp >= 0 && now >= o.ExpireTimestamp || o.ExpireTimestamp < 0 && now-from >= retention {
					expired = append(expired, tp)
				}
			}
		}
		for _, tp := range expired {
			delete(gc.offsets[id], tp)
		}
		switch {
		case empty && len(gc.offsets[id]) == 0 && !gc.hasOpenTxns(id):
			gc.logger.Info("removing expired group", "group", id, "expired_offsets", len(expired))
			gc.removeGroup(id)
			gc.store.Enqueue(deleteGroup(id))
		case len(expired) > 0:
			gc.logger.Info("expired offsets", "group", id, "count", len(expired), "partitions", tpsString(expired))
			gc.store.Enqueue(deleteOffsets(id, expired))
		}
	}
}

func tpsString(tps []TopicPartition) string {
	var b strings.Builder
	for i, tp := range tps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(tp.Topic)
		b.WriteByte('-')
		b.WriteString(strconv.Itoa(int(tp.Partition)))
	}
	return b.String()
}
