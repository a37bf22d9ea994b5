package broker

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/storage"
	"github.com/kbroker/kbroker/txn"
)

// On one node the transaction coordinator and every partition live in this
// process, so the coordinator's markers are appended directly to the logs.
// In a cluster, markers for partitions led elsewhere go to their leaders as
// WriteTxnMarkers (Kafka's TransactionMarkerChannelManager); the staged
// offsets are completed here, where the group coordinator runs beside the
// transaction coordinator.

// transactionMarkers is a transaction coordinator's txn.MarkerWriter; coord
// holds it and the group coordinator its staged offsets complete in.
type transactionMarkers struct {
	s     *Server
	coord *coordinators
}

func (w transactionMarkers) WriteTxnMarkers(producerID int64, epoch int16, coordinatorEpoch int32, commit bool, partitions []txn.TopicPartition, groups []string) error {
	m := storage.EndTxnMarker{ProducerID: producerID, ProducerEpoch: epoch, CoordinatorEpoch: coordinatorEpoch, Commit: commit}
	var err error
	if w.s.cluster != nil {
		err = w.s.cluster.writeTxnMarkers(m, partitions)
	} else {
		w.s.txnAppends.Lock()
		var errs []error
		for _, tp := range partitions {
			errs = append(errs, w.s.appendTxnMarker(tp.Topic, tp.Partition, m))
		}
		w.s.txnAppends.Unlock()
		err = errors.Join(errs...)
	}
	if err != nil {
		return err
	}
	if len(groups) > 0 {
		// Committed with the markers: TxnOffsetCommit offsets become
		// visible (or are dropped) with the transaction's records.
		return w.coord.groups.CompleteTxnOffsets(producerID, groups, commit)
	}
	return nil
}

// appendTxnMarker appends a marker to one partition and moves its high
// watermark. A partition that no longer exists is skipped, as Kafka's
// marker channel drops markers for deleted partitions.
func (s *Server) appendTxnMarker(topic string, partition int32, m storage.EndTxnMarker) error {
	t, ok := s.logs.Topic(topic)
	if !ok || partition < 0 || int(partition) >= len(t.Partitions) {
		return nil
	}
	if _, err := s.appendTxnMarkerAsLeader(t, partition, m); err != nil {
		if errors.Is(err, storage.ErrClosed) {
			return nil // deleted meanwhile
		}
		return err
	}
	return nil
}

// appendTxnMarkerAsLeader appends a marker to a partition this broker
// leads. On one node it is committed at once; in a cluster the returned
// wait blocks until the ISR has it (call it without s.txnAppends held).
func (s *Server) appendTxnMarkerAsLeader(t *storage.Topic, partition int32, m storage.EndTxnMarker) (wait func() error, err error) {
	log := t.Partitions[partition]
	if s.cluster == nil {
		if _, err := log.AppendTxnMarker(m, s.partitionState(t, partition).LeaderEpoch); err != nil {
			return nil, err
		}
		log.UpdateHighWatermark(log.LogEndOffset())
		return func() error { return nil }, nil
	}
	p := s.cluster.partition(t.Name, partition)
	if p == nil {
		return nil, kerr.NotLeaderForPartition
	}
	if err := p.appendMarkerToLeader(m); err != nil {
		return nil, err
	}
	offset, minISR := log.LogEndOffset(), log.Config().MinInsyncReplicas
	return func() error {
		if err := p.waitCommitted(offset, minISR, markerCommitTimeout, s.closing); err != nil {
			return err
		}
		return nil
	}, nil
}

// partitionsView answers the coordinator's questions about partitions.
type partitionsView struct{ logs *storage.LogManager }

func (v partitionsView) PartitionExists(topic string, partition int32) bool {
	t, ok := v.logs.Topic(topic)
	return ok && partition >= 0 && int(partition) < len(t.Partitions)
}

// openTransactions lists the transactions open in every partition
// (txn.Config.OpenTransactions): a producer with a first offset of an
// unended transaction.
func (v partitionsView) openTransactions() []txn.OpenTransaction {
	var open []txn.OpenTransaction
	for _, t := range v.logs.Topics() {
		for p, log := range t.Partitions {
			for _, e := range log.ProducerStates() {
				if e.CurrentTxnFirstOffset >= 0 {
					open = append(open, txn.OpenTransaction{
						TopicPartition: txn.TopicPartition{Topic: t.Name, Partition: int32(p)},
						ProducerID:     e.ProducerID,
						ProducerEpoch:  e.ProducerEpoch,
					})
				}
			}
		}
	}
	return open
}

// addTransactionPartitions adds the partitions of a transactions-v2 produce
// (v12+) to their transaction in one change before the appends, so a
// request that opens a transaction on six partitions costs one write (or,
// on one node, none), not six. Holding nothing the markers need, it waits
// for the markers of the producer's previous transaction, which EndTxn
// answered before writing: the first produce of the next transaction
// usually comes while they are being written. Each append still verifies
// its own partition (which then finds it in); an error here is left for
// those checks to report. Only the local coordinator is asked: a remote one
// gets the per-partition checks.
func (s *Server) addTransactionPartitions(req *kmsg.ProduceRequest, appends []produceAppend) {
	coord := s.coord.Load()
	if req.TransactionID == nil || coord == nil || txn.ProduceOperation(req.Version) != txn.AddPartition {
		return
	}
	type producer struct {
		id    int64
		epoch int16
	}
	var tps map[producer][]txn.TopicPartition
	for _, a := range appends {
		h, err := storage.ParseBatchHeader(a.records)
		if err != nil || !h.IsTransactional() {
			continue
		}
		if tps == nil {
			tps = map[producer][]txn.TopicPartition{}
		}
		p := producer{h.ProducerID, h.ProducerEpoch}
		tps[p] = append(tps[p], txn.TopicPartition{Topic: a.t.Name, Partition: a.sp.Partition})
	}
	for p, parts := range tps {
		coord.txn.AddPartitionsImplicitly(*req.TransactionID, p.id, p.epoch, parts)
	}
}

// Kafka's defaults of add.partitions.to.txn.retry.backoff.ms and
// add.partitions.to.txn.retry.backoff.max.ms: how often and how long a
// transactions-v2 produce retries its verification while the previous
// transaction's markers are being written, rather than have the producer
// retry (ReplicaManager.appendRecordsWithTransactionVerification).
const (
	addPartitionsToTxnRetryBackoff    = 20 * time.Millisecond
	addPartitionsToTxnRetryBackoffMax = 100 * time.Millisecond
)

// lockVerifiedTransactionalProduce checks that a transactional batch
// belongs to the Ongoing transaction of its producer and that the
// transaction added the partition (AddPartitionsToTxn before Produce v12;
// implicitly from v12, transactions v2). On success it returns with
// s.txnAppends held shared, for the caller to release once its append is
// done. The coordinator's retriable answers become NOT_ENOUGH_REPLICAS,
// which every producer retries (KafkaApis does the same).
func (s *Server) lockVerifiedTransactionalProduce(req *kmsg.ProduceRequest, h storage.BatchHeader, topic string, partition int32) error {
	if req.TransactionID == nil {
		return kerr.InvalidTxnState
	}
	tp := txn.TopicPartition{Topic: topic, Partition: partition}
	op := txn.ProduceOperation(req.Version)
	start := time.Now()
	for {
		s.txnAppends.RLock()
		var err error
		if coord := s.coord.Load(); coord != nil {
			err = coord.txn.VerifyPartition(*req.TransactionID, h.ProducerID, h.ProducerEpoch, tp, op)
		} else {
			err = s.cluster.verifyPartition(*req.TransactionID, h.ProducerID, h.ProducerEpoch, tp, op)
		}
		if err == nil {
			return nil
		}
		s.txnAppends.RUnlock()
		concurrent := errors.Is(err, kerr.ConcurrentTransactions)
		if concurrent && op == txn.AddPartition && time.Since(start)+addPartitionsToTxnRetryBackoff <= addPartitionsToTxnRetryBackoffMax {
			time.Sleep(addPartitionsToTxnRetryBackoff)
			continue
		}
		if concurrent || errors.Is(err, kerr.CoordinatorNotAvailable) {
			return kerr.NotEnoughReplicas
		}
		return err
	}
}
