package txn

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// AddPartitionsToTxn: v0-5. KafkaApis.handleAddPartitionsToTxnRequest and
// TransactionCoordinator.handleAddPartitionsToTransaction:
//   - a partition that does not exist is UNKNOWN_TOPIC_OR_PARTITION, and
//     fails its whole transaction: the other partitions get
//     OPERATION_NOT_ATTEMPTED;
//   - an empty transactional id is INVALID_REQUEST; an unknown one, or a
//     producer id that is not the transactional id's,
//     INVALID_PRODUCER_ID_MAPPING; another epoch PRODUCER_FENCED; markers
//     being written CONCURRENT_TRANSACTIONS;
//   - otherwise the partitions join the transaction, which starts if none
//     was open; the answer waits until that is stored. Partitions already in
//     an Ongoing transaction are answered at once.
//
// Version notes:
//   - v2: PRODUCER_FENCED; before, INVALID_PRODUCER_EPOCH (KIP-588).
//   - v4: a batch of transactions, sent by brokers (KIP-890 part 1): one
//     with VerifyOnly only checks each partition is in the Ongoing
//     transaction (TRANSACTION_ABORTABLE if not), as VerifyPartition does.
//   - v5: same as v4; a transaction that is not VerifyOnly is added under
//     transactions v2 (the Produce v12 path of another broker).
func (tc *TransactionCoordinator) AddPartitionsToTxn(req *kmsg.AddPartitionsToTxnRequest) *kmsg.AddPartitionsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	if req.Version < 4 {
		topics := make([]requestTopic, len(req.Topics))
		for i, rt := range req.Topics {
			topics[i] = requestTopic{rt.Topic, rt.Partitions}
		}
		codes := tc.addPartitionsForRequest(req.TransactionalID, req.ProducerID, req.ProducerEpoch, topics, false, req.Version)
		for i, rt := range req.Topics {
			st := kmsg.NewAddPartitionsToTxnResponseTopic()
			st.Topic = rt.Topic
			for j, p := range rt.Partitions {
				sp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
				sp.Partition, sp.ErrorCode = p, codes[i][j]
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	}
	for _, t := range req.Transactions {
		topics := make([]requestTopic, len(t.Topics))
		for i, rt := range t.Topics {
			topics[i] = requestTopic{rt.Topic, rt.Partitions}
		}
		codes := tc.addPartitionsForRequest(t.TransactionalID, t.ProducerID, t.ProducerEpoch, topics, t.VerifyOnly, req.Version)
		rt := kmsg.NewAddPartitionsToTxnResponseTransaction()
		rt.TransactionalID = t.TransactionalID
		for i, tt := range t.Topics {
			st := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
			st.Topic = tt.Topic
			for j, p := range tt.Partitions {
				sp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
				sp.Partition, sp.ErrorCode = p, codes[i][j]
				st.Partitions = append(st.Partitions, sp)
			}
			rt.Topics = append(rt.Topics, st)
		}
		resp.Transactions = append(resp.Transactions, rt)
	}
	return resp
}

// requestTopic is one topic of an AddPartitionsToTxn request, in request
// order.
type requestTopic struct {
	topic      string
	partitions []int32
}

// addPartitionsForRequest handles one transaction of a request; the codes
// parallel topics.
func (tc *TransactionCoordinator) addPartitionsForRequest(id string, pid int64, epoch int16, topics []requestTopic, verifyOnly bool, version int16) [][]int16 {
	codes := make([][]int16, len(topics))
	var tps []TopicPartition
	var missing bool
	for i, t := range topics {
		codes[i] = make([]int16, len(t.partitions))
		for j, p := range t.partitions {
			if !tc.parts.PartitionExists(t.topic, p) {
				codes[i][j] = kerr.UnknownTopicOrPartition.Code
				missing = true
				continue
			}
			tps = append(tps, TopicPartition{t.topic, p})
		}
	}
	setAll := func(code int16) {
		for i := range codes {
			for j := range codes[i] {
				if codes[i][j] == 0 {
					codes[i][j] = code
				}
			}
		}
	}
	switch {
	case missing:
		setAll(kerr.OperationNotAttempted.Code)
	case verifyOnly:
		// handleVerifyPartitionsInTransaction: the coordinator's own
		// errors; a partition not in the transaction is
		// TRANSACTION_ABORTABLE.
		has, err := tc.verifyLocking(id, pid, epoch)
		if err != nil {
			setAll(err.Code)
			break
		}
		for i, t := range topics {
			for j, p := range t.partitions {
				if !has.hasPartition(TopicPartition{t.topic, p}) {
					codes[i][j] = kerr.TransactionAbortable.Code
				}
			}
		}
	default:
		tv := tv0
		if version > 4 {
			tv = tv2
		}
		// A client's request may wait for markers; a broker's (v4+, sent
		// from its produce path while it holds the append side of its
		// marker ordering) may not.
		if err := tc.addToTransaction(id, pid, epoch, tps, nil, tv, version < 4); err != nil {
			if err == kerr.ProducerFenced && version < 2 {
				err = kerr.InvalidProducerEpoch
			}
			setAll(err.Code)
		}
	}
	return codes
}

// AddOffsetsToTxn: v0-4. KafkaApis.handleAddOffsetsToTxnRequest: the
// group joins the transaction as AddPartitionsToTxn adds a partition (Kafka
// adds the group's __consumer_offsets partition), with the same errors; the
// markers will commit or drop the offsets the producer stages for the group
// with TxnOffsetCommit.
//
// Version notes:
//   - v2: PRODUCER_FENCED; before, INVALID_PRODUCER_EPOCH (KIP-588).
func (tc *TransactionCoordinator) AddOffsetsToTxn(req *kmsg.AddOffsetsToTxnRequest) *kmsg.AddOffsetsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	if err := tc.addToTransaction(req.TransactionalID, req.ProducerID, req.ProducerEpoch, nil, []string{req.Group}, tv0, true); err != nil {
		if err == kerr.ProducerFenced && req.Version < 2 {
			err = kerr.InvalidProducerEpoch
		}
		resp.ErrorCode = err.Code
	}
	return resp
}

// addToTransaction adds partitions and groups to id's transaction
// (handleAddPartitionsToTransaction), waiting until that is stored; with
// Config.OpenTransactions, a transaction of partitions only is kept in
// memory instead (see doc.go, Durability). With waitMarkers it first waits
// for the markers of the producer's previous transaction, if they are
// being written; else that is CONCURRENT_TRANSACTIONS.
func (tc *TransactionCoordinator) addToTransaction(id string, pid int64, epoch int16, tps []TopicPartition, groups []string, tv transactionVersion, waitMarkers bool) *kerr.Error {
	if id == "" {
		return kerr.InvalidRequest
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.closed {
		return kerr.CoordinatorNotAvailable
	}
	m := tc.settledLocked(id)
	if waitMarkers {
		m = tc.completedLocked(id)
	}
	switch {
	case m != nil && m.State.isPrepared():
		// First, as Kafka checks its pending transition first: a
		// transactions-v2 producer may already use the producer id the
		// end rotates to.
		return kerr.ConcurrentTransactions
	case m == nil || m.ProducerID != pid:
		return kerr.InvalidProducerIDMapping
	case m.ProducerEpoch != epoch:
		return kerr.ProducerFenced
	case m.State == stateOngoing && m.containsAll(tps, groups):
		return nil // nothing to store
	}
	next, err := m.prepareAddPartitions(tps, groups, tc.nowMs(), tv)
	if err != nil {
		return tc.logIllegal(m, err)
	}
	if tc.cfg.OpenTransactions == nil || len(next.Groups) > 0 {
		return tc.transitionLocked(m, next)
	}
	if m.unstored && m.storeBeforeNext {
		// The previous transaction's Complete first: at a restart its
		// markers' epoch would not tell its records from this one's.
		if err := tc.transitionLocked(m, m.txnRecord); err != nil {
			return err
		}
	}
	m.txnRecord, m.unstored = next, true
	return nil
}

// verifyLocking checks that (pid, epoch) is id's producer and no markers are
// being written (handleVerifyPartitionsInTransaction), and returns a copy
// of the record to look the partitions and groups up in. A write in flight
// is not waited for: what it adds is answered once it is stored, before the
// client can rely on it.
func (tc *TransactionCoordinator) verifyLocking(id string, pid int64, epoch int16) (txnRecord, *kerr.Error) {
	if id == "" {
		return txnRecord{}, kerr.InvalidRequest
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	m := tc.txns[id]
	switch {
	case tc.closed:
		return txnRecord{}, kerr.CoordinatorNotAvailable
	case m == nil || m.ProducerID != pid:
		return txnRecord{}, kerr.InvalidProducerIDMapping
	case m.ProducerEpoch != epoch:
		return txnRecord{}, kerr.ProducerFenced
	case m.State.isPrepared():
		return txnRecord{}, kerr.ConcurrentTransactions
	}
	return m.txnRecord, nil
}
