package broker

import (
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
	"github.com/kbroker/kbroker/protocol"
	"github.com/kbroker/kbroker/storage"
)

// Produce: v0-12 (v3+ served; v0-2 advertised for librdkafka, refused)
//
// Behavior:
// * Each partition's records must be exactly one valid RecordBatch v2
//   (protocol.ValidateProduceBatch); failures are per partition, never for
//   the whole request.
// * The batch is stored as sent (compressed batches stay compressed) with
//   its base offset and leader epoch stamped in; one write per batch.
// * On a single node the high watermark moves to the log end offset at
//   once: this broker is the partition's only in-sync replica, so acks=1
//   and acks=all are both satisfied by the local append.
// * In a cluster only the partition's leader appends (others answer
//   NOT_LEADER_OR_FOLLOWER with the current leader, KIP-951); the high
//   watermark moves as the ISR's followers fetch, and acks=all waits for it
//   to cover the batch (Kafka's DelayedProduce) until the request's
//   timeout (REQUEST_TIMED_OUT); if the ISR has shrunk below
//   min.insync.replicas meanwhile the answer is
//   NOT_ENOUGH_REPLICAS_AFTER_APPEND.
// * acks=all is refused with NOT_ENOUGH_REPLICAS when the ISR is smaller
//   than min.insync.replicas.
// * acks=0 gets no response; if any partition failed the connection is
//   closed so the client refreshes its metadata (Kafka does the same).
// * Unknown topics are auto-created when auto.create.topics.enable is set.
// * Internal topics (__consumer_offsets) are written only by the broker:
//   INVALID_TOPIC_EXCEPTION, as ReplicaManager.appendToLocalLog answers.
// * Idempotent producers: the partition's log checks the batch's producer
//   epoch and sequence (storage.Log.AppendAsLeader). A retry of one of the
//   producer's last five batches is answered with its original offsets and
//   is not appended again; a gap is OUT_OF_ORDER_SEQUENCE_NUMBER, an old
//   epoch INVALID_PRODUCER_EPOCH.
// * Transactional batches must belong to an ongoing transaction that added
//   the partition (Kafka 3.6+ verification, KIP-890 part 1); from v12 the
//   partition is added implicitly (transactions v2).
// * With an authorizer: transactional batches need WRITE on the request's
//   transactional id, else every partition is
//   TRANSACTIONAL_ID_AUTHORIZATION_FAILED; each topic needs
//   WRITE (TOPIC_AUTHORIZATION_FAILED), and auto-creation CREATE on the
//   cluster or the topic (else UNKNOWN_TOPIC_OR_PARTITION, as Kafka 4,
//   which creates no topic on produce, answers).
//
// Version notes:
// * v3: RecordBatch v2 only; TransactionID
// * v5: LogStartOffset in the response
// * v8: per-partition ErrorMessage and RecordErrors (KIP-467)
// * v9: flexible
// * v10: CurrentLeader and NodeEndpoints on NOT_LEADER_OR_FOLLOWER (KIP-951)
// * v12: transactions v2: partitions join the transaction implicitly

func (s *Server) handleProduce(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)

	txnDenied := s.authz != nil && hasTransactionalRecords(req) &&
		(req.TransactionID == nil || !s.authorize(creq, acl.OpWrite, acl.ResourceTransactionalID, *req.TransactionID))
	writable := s.authorizedTopics(creq, acl.OpWrite, namesOf(req.Topics, func(t kmsg.ProduceRequestTopic) string { return t.Topic }))
	// Checks and topic lookups (with auto-creation) run in request order;
	// the appends, one per partition, may then run in parallel.
	var appends []produceAppend
	for i := range req.Topics {
		reqTopic := &req.Topics[i]
		resp.Topics = append(resp.Topics, kmsg.NewProduceResponseTopic())
		rt := &resp.Topics[len(resp.Topics)-1]
		rt.Topic = reqTopic.Topic
		rt.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(reqTopic.Partitions))

		t, ok := s.logs.Topic(reqTopic.Topic)
		for j := range reqTopic.Partitions {
			rp := &reqTopic.Partitions[j]
			sp := &rt.Partitions[j]
			*sp = kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			switch {
			case txnDenied:
				produceError(sp, kerr.TransactionalIDAuthorizationFailed, "")
				continue
			case !writable.has(reqTopic.Topic):
				produceError(sp, kerr.TopicAuthorizationFailed, "")
				continue
			case req.Version < 3:
				produceError(sp, kerr.UnsupportedVersion, "Produce v0-2 (message format v0/v1) is not supported; use v3+.")
				continue
			case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
				produceError(sp, kerr.InvalidRequiredAcks, "")
				continue
			case isInternalTopic(reqTopic.Topic):
				produceError(sp, kerr.InvalidTopicException, "Cannot append to internal topic "+reqTopic.Topic)
				continue
			}
			if !ok {
				var err error
				if !s.mayCreateTopic(creq, reqTopic.Topic) {
					produceError(sp, kerr.UnknownTopicOrPartition, "")
					continue
				}
				if t, err = s.autoCreateTopic(reqTopic.Topic); err != nil {
					produceError(sp, protocol.KafkaError(err), "")
					continue
				}
				ok = true
			}
			if rp.Partition < 0 || int(rp.Partition) >= len(t.Partitions) {
				produceError(sp, kerr.UnknownTopicOrPartition, "")
				continue
			}
			appends = append(appends, produceAppend{t: t, records: rp.Records, sp: sp, topic: i, partition: j})
		}
	}

	s.addTransactionPartitions(req, appends)

	// A request's partitions are independent logs: big requests append
	// them in parallel, so one connection's produce is not bound to one
	// core's write(2) speed.
	size := 0
	for _, a := range appends {
		size += len(a.records)
	}
	if len(appends) > 1 && size >= parallelProduceBytes {
		var wg sync.WaitGroup
		for i := range appends {
			wg.Go(func() { s.appendPartition(req, &appends[i]) })
		}
		wg.Wait()
	} else {
		for i := range appends {
			s.appendPartition(req, &appends[i])
		}
	}

	failed, wokeFetch := false, false
	var waits []pendingProduce // acks=all appends waiting for the ISR
	for _, a := range appends {
		wokeFetch = wokeFetch || a.wokeFetch
		if a.notLeader {
			s.currentLeader(resp, a.sp, a.t.Name, creq.conn.listener)
		}
		if a.wait {
			waits = append(waits, pendingProduce{part: a.part, topic: a.topic, partition: a.partition, offset: a.nextOffset, minISR: a.minISR})
		}
	}
	for _, rt := range resp.Topics {
		for _, sp := range rt.Partitions {
			failed = failed || sp.ErrorCode != 0
		}
	}
	s.waitForProduce(resp, waits, time.Duration(req.TimeoutMillis)*time.Millisecond, creq.conn.listener)
	if wokeFetch {
		// The woken fetch waits in this P's run queue until this goroutine
		// blocks, i.e. after it has written the produce response. Its
		// consumer waits for these records; our producer only for the ack.
		// So hand it the core first, as Kafka completes delayed fetches in
		// the produce's handler thread.
		runtime.Gosched()
	}

	if req.Acks == 0 {
		if failed {
			return nil, errCloseConn
		}
		return nil, nil
	}
	return resp, nil
}

// parallelProduceBytes is the request size from which partitions are
// appended in parallel: below it a goroutine per partition costs more
// than it saves.
const parallelProduceBytes = 256 << 10

// produceAppend is one partition's append within a produce request.
type produceAppend struct {
	t                *storage.Topic
	records          []byte
	sp               *kmsg.ProduceResponseTopicPartition // the answer, filled in by appendPartition
	topic, partition int                                 // indexes into the response
	// Set by appendPartition: notLeader asks for the current leader in
	// the answer (KIP-951); wait for an acks=all append in a cluster.
	notLeader  bool
	wait       bool
	part       *Partition
	nextOffset int64
	minISR     int32
	wokeFetch  bool // the append woke a long-poll fetch waiting on the log
}

func produceError(sp *kmsg.ProduceResponseTopicPartition, err *kerr.Error, msg string) {
	sp.ErrorCode = err.Code
	sp.BaseOffset, sp.LogAppendTime = -1, -1
	if msg != "" {
		sp.ErrorMessage = &msg
	}
}

// appendPartition validates and appends one partition's batch. It touches
// only a and its log, so a request's partitions can run concurrently.
func (s *Server) appendPartition(req *kmsg.ProduceRequest, a *produceAppend) {
	t, sp := a.t, a.sp
	p := sp.Partition
	log := t.Partitions[p]
	st := s.partitionState(t, p)
	var part *Partition // this broker's replica, in a cluster
	if s.cluster != nil {
		if part = s.cluster.partition(t.Name, p); part == nil || st.Leader != s.cfg.NodeID {
			produceError(sp, kerr.NotLeaderForPartition, "")
			a.notLeader = true
			return
		}
	}
	cfg := log.Config()
	h, err := protocol.ValidateProduceBatch(a.records, cfg, time.Now())
	if err != nil {
		produceError(sp, protocol.KafkaError(err), protocol.ErrorMessage(err))
		// Per-record errors (KIP-467), e.g. keyless records on a
		// compacted topic.
		if ve, ok := errors.AsType[*protocol.ValidationError](err); ok {
			for _, re := range ve.RecordErrors {
				e := kmsg.NewProduceResponseTopicPartitionErrorRecord()
				e.RelativeOffset = re.BatchIndex
				e.ErrorMessage = kmsg.StringPtr(strings.ReplaceAll(re.Message, "%s", t.Name+"-"+strconv.Itoa(int(p))))
				sp.ErrorRecords = append(sp.ErrorRecords, e)
			}
		}
		return
	}
	if req.Acks == -1 && int32(len(st.ISR)) < cfg.MinInsyncReplicas {
		produceError(sp, kerr.NotEnoughReplicas, "")
		return
	}
	if h.IsTransactional() {
		// Held until the append is done: see Server.txnAppends.
		if err := s.lockVerifiedTransactionalProduce(req, h, t.Name, p); err != nil {
			produceError(sp, protocol.KafkaError(err), protocol.ErrorMessage(err))
			return
		}
	}
	var info storage.LogAppendInfo
	if part != nil {
		info, err = part.appendRecordsToLeader(a.records, req.Acks, cfg.MinInsyncReplicas)
	} else {
		info, err = log.AppendAsLeader(a.records, st.LeaderEpoch)
	}
	if h.IsTransactional() {
		s.txnAppends.RUnlock()
	}
	if err != nil {
		ke := protocol.KafkaError(err)
		if ke == kerr.UnknownServerError {
			s.logger.Error("append failed", "topic", t.Name, "partition", p, "err", err)
		}
		produceError(sp, ke, "")
		a.notLeader = ke == kerr.NotLeaderForPartition
		return
	}
	if info.Duplicate {
		s.metrics.duplicates.Inc()
	} else {
		if part == nil {
			// The leader is the whole ISR: the append is committed.
			a.wokeFetch = log.UpdateHighWatermark(log.LogEndOffset())
		}
		tm := s.metrics.topic(t.Name)
		tm.bytesIn.Add(float64(len(a.records)))
		tm.recordsIn.Add(float64(info.RecordCount))
		s.metrics.batchBytes.Observe(float64(len(a.records)))
		s.metrics.batchRecords.Observe(float64(info.RecordCount))
	}
	sp.BaseOffset = info.FirstOffset
	sp.LogAppendTime = info.LogAppendTime
	sp.LogStartOffset = info.LogStartOffset
	if part != nil && req.Acks == -1 {
		// Even a duplicate waits: its first append may not be committed
		// yet.
		a.wait, a.part, a.nextOffset, a.minISR = true, part, info.LastOffset+1, cfg.MinInsyncReplicas
	}
}

// hasTransactionalRecords is Kafka's RequestUtils.hasTransactionalRecords:
// whether any partition's batch is transactional (a malformed one is
// refused later, per partition).
func hasTransactionalRecords(req *kmsg.ProduceRequest) bool {
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			if h, err := storage.ParseBatchHeader(p.Records); err == nil && h.IsTransactional() {
				return true
			}
		}
	}
	return false
}
