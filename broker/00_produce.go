package broker

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

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

	failed := false
	var waits []pendingProduce // acks=all appends waiting for the ISR
	donep := func(rt *kmsg.ProduceResponseTopic, p int32, err *kerr.Error, msg string) {
		failed = true
		sp := kmsg.NewProduceResponseTopicPartition()
		sp.Partition = p
		sp.ErrorCode = err.Code
		if msg != "" {
			sp.ErrorMessage = &msg
		}
		rt.Partitions = append(rt.Partitions, sp)
	}

	for i := range req.Topics {
		reqTopic := &req.Topics[i]
		resp.Topics = append(resp.Topics, kmsg.NewProduceResponseTopic())
		rt := &resp.Topics[len(resp.Topics)-1]
		rt.Topic = reqTopic.Topic

		t, ok := s.logs.Topic(reqTopic.Topic)
		for _, rp := range reqTopic.Partitions {
			switch {
			case req.Version < 3:
				donep(rt, rp.Partition, kerr.UnsupportedVersion, "Produce v0-2 (message format v0/v1) is not supported; use v3+.")
				continue
			case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
				donep(rt, rp.Partition, kerr.InvalidRequiredAcks, "")
				continue
			case isInternalTopic(reqTopic.Topic):
				donep(rt, rp.Partition, kerr.InvalidTopicException, "Cannot append to internal topic "+reqTopic.Topic)
				continue
			}
			if !ok {
				var err error
				if t, err = s.autoCreateTopic(reqTopic.Topic); err != nil {
					donep(rt, rp.Partition, protocol.KafkaError(err), "")
					continue
				}
				ok = true
			}
			if rp.Partition < 0 || int(rp.Partition) >= len(t.Partitions) {
				donep(rt, rp.Partition, kerr.UnknownTopicOrPartition, "")
				continue
			}
			log := t.Partitions[rp.Partition]
			st := s.partitionState(t, rp.Partition)
			var part *Partition // this broker's replica, in a cluster
			if s.cluster != nil {
				if part = s.cluster.partition(t.Name, rp.Partition); part == nil || st.Leader != s.cfg.NodeID {
					donep(rt, rp.Partition, kerr.NotLeaderForPartition, "")
					s.currentLeader(resp, &rt.Partitions[len(rt.Partitions)-1], t.Name, creq.conn.listener)
					continue
				}
			}
			cfg := log.Config()
			h, err := protocol.ValidateProduceBatch(rp.Records, cfg, time.Now())
			if err != nil {
				donep(rt, rp.Partition, protocol.KafkaError(err), protocol.ErrorMessage(err))
				var ve *protocol.ValidationError
				if errors.As(err, &ve) {
					sp := &rt.Partitions[len(rt.Partitions)-1]
					for _, re := range ve.RecordErrors {
						e := kmsg.NewProduceResponseTopicPartitionErrorRecord()
						e.RelativeOffset = re.BatchIndex
						e.ErrorMessage = kmsg.StringPtr(strings.ReplaceAll(re.Message, "%s", t.Name+"-"+strconv.Itoa(int(rp.Partition))))
						sp.ErrorRecords = append(sp.ErrorRecords, e)
					}
				}
				continue
			}
			if req.Acks == -1 && int32(len(st.ISR)) < cfg.MinInsyncReplicas {
				donep(rt, rp.Partition, kerr.NotEnoughReplicas, "")
				continue
			}
			if h.IsTransactional() {
				// Held until the append is done: see Server.txnAppends.
				s.txnAppends.RLock()
				if err := s.verifyTransactionalProduce(req, h, t.Name, rp.Partition); err != nil {
					s.txnAppends.RUnlock()
					donep(rt, rp.Partition, protocol.KafkaError(err), protocol.ErrorMessage(err))
					continue
				}
			}
			var info storage.LogAppendInfo
			if part != nil {
				info, err = part.appendRecordsToLeader(rp.Records, req.Acks, cfg.MinInsyncReplicas)
			} else {
				info, err = log.AppendAsLeader(rp.Records, st.LeaderEpoch)
			}
			if h.IsTransactional() {
				s.txnAppends.RUnlock()
			}
			if err != nil {
				ke := protocol.KafkaError(err)
				if ke == kerr.UnknownServerError {
					s.logger.Error("append failed", "topic", t.Name, "partition", rp.Partition, "err", err)
				}
				donep(rt, rp.Partition, ke, "")
				if ke == kerr.NotLeaderForPartition {
					s.currentLeader(resp, &rt.Partitions[len(rt.Partitions)-1], t.Name, creq.conn.listener)
				}
				continue
			}
			if info.Duplicate {
				s.metrics.duplicates.Inc()
			} else {
				if part == nil {
					// The leader is the whole ISR: the append is committed.
					log.UpdateHighWatermark(log.LogEndOffset())
				}
				tm := s.metrics.topic(t.Name)
				tm.bytesIn.Add(float64(len(rp.Records)))
				tm.recordsIn.Add(float64(info.RecordCount))
				s.metrics.batchBytes.Observe(float64(len(rp.Records)))
				s.metrics.batchRecords.Observe(float64(info.RecordCount))
			}

			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset = info.FirstOffset
			sp.LogAppendTime = info.LogAppendTime
			sp.LogStartOffset = info.LogStartOffset
			rt.Partitions = append(rt.Partitions, sp)
			if part != nil && req.Acks == -1 {
				// Even a duplicate waits: its first append may not be
				// committed yet.
				waits = append(waits, pendingProduce{part: part, topic: len(resp.Topics) - 1, partition: len(rt.Partitions) - 1, offset: info.LastOffset + 1, minISR: cfg.MinInsyncReplicas})
			}
		}
	}
	s.waitForProduce(resp, waits, time.Duration(req.TimeoutMillis)*time.Millisecond, creq.conn.listener)

	if req.Acks == 0 {
		if failed {
			return nil, errCloseConn
		}
		return nil, nil
	}
	return resp, nil
}
