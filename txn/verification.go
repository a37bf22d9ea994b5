package txn

import (
	"github.com/twmb/franz-go/pkg/kerr"
)

// TransactionSupportedOperation is what a transactional Produce or
// TxnOffsetCommit can take part in, by its version (Kafka's
// AddPartitionsToTxnManager.TransactionSupportedOperation).
type TransactionSupportedOperation int8

const (
	// DefaultError: Produce v0-10, TxnOffsetCommit v0-3. A partition or
	// group missing from the transaction is INVALID_TXN_STATE.
	DefaultError TransactionSupportedOperation = iota
	// GenericErrorSupported: Produce v11, TxnOffsetCommit v4. The client
	// knows TRANSACTION_ABORTABLE.
	GenericErrorSupported
	// AddPartition: Produce v12+, TxnOffsetCommit v5+, transactions v2
	// (KIP-890 part 2). The write adds its partition or group to the
	// transaction, as AddPartitionsToTxn or AddOffsetsToTxn would.
	AddPartition
)

// ProduceOperation is produceRequestVersionToTransactionSupportedOperation.
func ProduceOperation(version int16) TransactionSupportedOperation {
	switch {
	case version > 11:
		return AddPartition
	case version > 10:
		return GenericErrorSupported
	}
	return DefaultError
}

// TxnOffsetCommitOperation is
// txnOffsetCommitRequestVersionToTransactionSupportedOperation.
func TxnOffsetCommitOperation(version int16) TransactionSupportedOperation {
	switch {
	case version > 4:
		return AddPartition
	case version > 3:
		return GenericErrorSupported
	}
	return DefaultError
}

// VerifyPartition checks a transactional produce to tp by (producerID,
// epoch) of transactionalID before it is appended (Kafka 3.6+ transaction
// verification, KIP-890 part 1); with op AddPartition it is
// AddPartitionImplicitly. It returns nil or a *kerr.Error as
// AddPartitionsToTxnManager hands it to the produce path:
//   - INVALID_PRODUCER_ID_MAPPING: unknown transactional id or another
//     producer id;
//   - INVALID_PRODUCER_EPOCH: another epoch (the coordinator's
//     PRODUCER_FENCED, as producers expect here);
//   - CONCURRENT_TRANSACTIONS: markers are being written;
//   - TRANSACTION_ABORTABLE, or INVALID_TXN_STATE for DefaultError: tp is
//     not in the Ongoing transaction;
//   - INVALID_REQUEST (empty transactional id), COORDINATOR_NOT_AVAILABLE
//     (closed).
//
// Kafka's produce path then answers the retriable ones
// (CONCURRENT_TRANSACTIONS, COORDINATOR_NOT_AVAILABLE) as
// NOT_ENOUGH_REPLICAS, which every producer retries
// (ReplicaManager.appendRecords); that mapping is the broker's.
func (tc *TransactionCoordinator) VerifyPartition(transactionalID string, producerID int64, epoch int16, tp TopicPartition, op TransactionSupportedOperation) error {
	if op == AddPartition {
		return tc.AddPartitionImplicitly(transactionalID, producerID, epoch, tp)
	}
	rec, err := tc.verifyLocking(transactionalID, producerID, epoch)
	if err == nil && !rec.hasPartition(tp) {
		err = kerr.TransactionAbortable
	}
	return VerificationError(err, op)
}

// AddPartitionImplicitly adds tp to the transaction of (producerID, epoch)
// of transactionalID, starting one if none is open, for a transactions-v2
// produce (Produce v12, KIP-890 part 2): what AddPartitionsToTxn v5 does
// when a broker sends it. It returns once that is recorded (see
// addToTransaction), with the errors of VerifyPartition, and
// UNKNOWN_TOPIC_OR_PARTITION for a partition that does not exist. It does
// not wait for markers: its caller holds the append side of the broker's
// marker ordering.
func (tc *TransactionCoordinator) AddPartitionImplicitly(transactionalID string, producerID int64, epoch int16, tp TopicPartition) error {
	if !tc.parts.PartitionExists(tp.Topic, tp.Partition) {
		return kerr.UnknownTopicOrPartition
	}
	err := tc.addToTransaction(transactionalID, producerID, epoch, []TopicPartition{tp}, nil, tv2, false)
	return VerificationError(err, AddPartition)
}

// AddPartitionsImplicitly is AddPartitionImplicitly for the partitions of
// one produce request at once, in one change, as Kafka's broker sends one
// AddPartitionsToTxn for a request's partitions. It waits for the
// markers of the producer's previous transaction if they are being written,
// so the caller must hold nothing they need. The produce path still
// verifies each partition; after this they are already in.
func (tc *TransactionCoordinator) AddPartitionsImplicitly(transactionalID string, producerID int64, epoch int16, tps []TopicPartition) error {
	for _, tp := range tps {
		if !tc.parts.PartitionExists(tp.Topic, tp.Partition) {
			return kerr.UnknownTopicOrPartition
		}
	}
	err := tc.addToTransaction(transactionalID, producerID, epoch, tps, nil, tv2, true)
	return VerificationError(err, AddPartition)
}

// VerifyGroup checks a TxnOffsetCommit to group by (producerID, epoch) of
// transactionalID: the group was added to the Ongoing transaction with
// AddOffsetsToTxn (Kafka verifies the group's __consumer_offsets
// partition). With op AddPartition (TxnOffsetCommit v5+) it is
// AddGroupImplicitly. Errors as VerifyPartition.
func (tc *TransactionCoordinator) VerifyGroup(transactionalID string, producerID int64, epoch int16, group string, op TransactionSupportedOperation) error {
	if op == AddPartition {
		return tc.AddGroupImplicitly(transactionalID, producerID, epoch, group)
	}
	rec, err := tc.verifyLocking(transactionalID, producerID, epoch)
	if err == nil && !rec.hasGroup(group) {
		err = kerr.TransactionAbortable
	}
	return VerificationError(err, op)
}

// AddGroupImplicitly adds group to the transaction as AddOffsetsToTxn
// would, for a transactions-v2 TxnOffsetCommit (v5+), which clients send
// without AddOffsetsToTxn. Errors as VerifyPartition.
func (tc *TransactionCoordinator) AddGroupImplicitly(transactionalID string, producerID int64, epoch int16, group string) error {
	err := tc.addToTransaction(transactionalID, producerID, epoch, nil, []string{group}, tv2, true)
	return VerificationError(err, AddPartition)
}

// VerificationError maps the coordinator's answer as
// AddPartitionsToTxnManager does for the produce path, also for an answer
// that came from a coordinator on another broker; nil stays an untyped nil.
func VerificationError(err *kerr.Error, op TransactionSupportedOperation) error {
	switch {
	case err == nil:
		return nil
	case err == kerr.ProducerFenced:
		return kerr.InvalidProducerEpoch
	case err == kerr.TransactionAbortable && op == DefaultError:
		return kerr.InvalidTxnState
	}
	return err
}
