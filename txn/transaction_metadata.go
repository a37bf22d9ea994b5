package txn

import (
	"cmp"
	"math"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
)

const (
	noProducerID    int64 = -1 // RecordBatch.NO_PRODUCER_ID
	noProducerEpoch int16 = -1 // RecordBatch.NO_PRODUCER_EPOCH
)

// isEpochExhausted mirrors TransactionMetadata.isEpochExhausted: no client
// may use math.MaxInt16, so that the coordinator can always fence one more
// time.
func isEpochExhausted(epoch int16) bool { return epoch >= math.MaxInt16-1 }

// txnRecord is everything stored about a transactional id (Kafka's
// TransactionLogValue and TxnTransitMetadata). A transition builds the
// next record from the current one; the record becomes current once it is
// on disk. Partitions and Groups are sorted and without duplicates.
type txnRecord struct {
	ProducerID        int64
	PrevProducerID    int64 // the producer id before the last transition
	NextProducerID    int64 // set while a transactions-v2 end rotates the producer id
	ProducerEpoch     int16
	LastProducerEpoch int16 // the epoch before the last bump, for retries (KIP-360)
	TxnTimeoutMs      int32
	State             txnState
	// ClientTransactionVersion is the transaction version of the request
	// that made the transition.
	ClientTransactionVersion transactionVersion
	// TxnStartTimestamp is when the first partition or group was added; -1
	// outside a transaction.
	TxnStartTimestamp      int64
	TxnLastUpdateTimestamp int64
	Partitions             []TopicPartition
	// Groups are the consumer groups whose offsets the transaction commits:
	// where Kafka adds the group's __consumer_offsets partition, kbroker
	// keeps the group.
	Groups []string
}

func compareTopicPartition(a, b TopicPartition) int {
	if c := cmp.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return cmp.Compare(a.Partition, b.Partition)
}

func (r *txnRecord) hasPartition(tp TopicPartition) bool {
	_, ok := slices.BinarySearchFunc(r.Partitions, tp, compareTopicPartition)
	return ok
}

func (r *txnRecord) hasGroup(g string) bool {
	_, ok := slices.BinarySearch(r.Groups, g)
	return ok
}

// containsAll reports whether every partition and group is in the
// transaction already.
func (r *txnRecord) containsAll(tps []TopicPartition, groups []string) bool {
	for _, tp := range tps {
		if !r.hasPartition(tp) {
			return false
		}
	}
	for _, g := range groups {
		if !r.hasGroup(g) {
			return false
		}
	}
	return true
}

// txnMetadata is one transactional id's entry in the coordinator
// (TransactionMetadata): the current record plus what is only true in
// memory. Guarded by TransactionCoordinator.mu.
type txnMetadata struct {
	txnRecord
	transactionalID string

	// pending is set while the next record is being written; requests for
	// the id wait on pendingDone, which is closed when the write has
	// completed (Kafka answers CONCURRENT_TRANSACTIONS instead: see doc.go).
	pending      bool
	pendingState txnState
	pendingDone  chan struct{}

	// hasFailedEpochFence: a fence bumped the epoch in memory but its write
	// failed; the next fence does not bump again (the bumped epoch never
	// reached a client).
	hasFailedEpochFence bool
	// writingMarkers is set while the markers of a prepared transaction are
	// being written, so that only one writer completes it.
	writingMarkers bool
	// completing is set from an EndTxn's stored Prepare until its markers
	// are written (or have failed and wait for a retry): the answer does
	// not wait for them, the producer's next requests do. Closed when done.
	completing chan struct{}
	// unstored: txnRecord is ahead of the stored record, which the
	// coordinator writes lazily (see doc.go, Durability): an Ongoing kept
	// in memory (Config.OpenTransactions), or a Complete after its markers
	// (the stored record is then its Prepare). Any write of the id clears
	// it; the flusher and Close store what is left.
	unstored bool
	// storeBeforeNext: an unstored Complete must be stored before a
	// transaction kept in memory follows it, because its markers did not
	// bump the epoch (a transactions-v1 end), so that at a restart the next
	// transaction's records could not be told from this one's.
	storeBeforeNext bool
	// markerAttempts counts failed marker writes, for the retry backoff.
	markerAttempts int
	// timedOut marks a prepared abort started by the transaction timeout,
	// for Config.OnEnd.
	timedOut bool
}

// prepare checks that next may follow the current record
// (TransactionMetadata.prepareTransitionTo) and fills the fields every
// transition sets the same way.
func (m *txnMetadata) prepare(next txnRecord) (txnRecord, *kerr.Error) {
	if next.ProducerID < 0 || (next.State != stateDead && next.ProducerEpoch < 0) || !canTransition(m.State, next.State) {
		return txnRecord{}, errIllegalTransition
	}
	next.PrevProducerID = m.ProducerID
	return next, nil
}

// errIllegalTransition answers what Kafka throws an IllegalStateException
// for: a bug, never the client's fault. It has UNKNOWN_SERVER_ERROR's code;
// the coordinator logs it.
var errIllegalTransition = &kerr.Error{Message: "UNKNOWN_SERVER_ERROR", Code: kerr.UnknownServerError.Code, Description: "illegal transaction state transition"}

// prepareIncrementProducerEpoch is InitProducerId's bump
// (TransactionMetadata.prepareIncrementProducerEpoch). expected is the
// epoch a KIP-360 client sent, or nil.
func (m *txnMetadata) prepareIncrementProducerEpoch(timeoutMs int32, expected *int16, nowMs int64) (txnRecord, *kerr.Error) {
	if isEpochExhausted(m.ProducerEpoch) {
		return txnRecord{}, kerr.UnknownServerError // "Cannot allocate any more producer epochs"
	}
	next := m.txnRecord
	next.State = stateEmpty
	bumped := m.ProducerEpoch + 1
	switch {
	case expected == nil:
		// A new producer instance: bump, and forget the last epoch so that
		// an older instance cannot pass as a retry.
		next.ProducerEpoch, next.LastProducerEpoch = bumped, noProducerEpoch
	case m.ProducerEpoch == noProducerEpoch || *expected == m.ProducerEpoch:
		// The producer recovers and nobody else initialized since: bump.
		next.ProducerEpoch, next.LastProducerEpoch = bumped, m.ProducerEpoch
	case *expected == m.LastProducerEpoch:
		// A retry of a bump that succeeded: answer the current epoch.
	default:
		return txnRecord{}, kerr.ProducerFenced
	}
	next.TxnTimeoutMs = timeoutMs
	next.Partitions, next.Groups = nil, nil
	next.TxnStartTimestamp = -1
	next.TxnLastUpdateTimestamp = nowMs
	return m.prepare(next)
}

// prepareProducerIdRotation gives the transactional id a new producer id
// when its epochs are exhausted (TransactionMetadata.prepareProducerIdRotation).
func (m *txnMetadata) prepareProducerIdRotation(newProducerID int64, timeoutMs int32, nowMs int64, recordLastEpoch bool) (txnRecord, *kerr.Error) {
	next := m.txnRecord
	next.State = stateEmpty
	next.ProducerID, next.ProducerEpoch = newProducerID, 0
	next.LastProducerEpoch = noProducerEpoch
	if recordLastEpoch {
		next.LastProducerEpoch = m.ProducerEpoch
	}
	next.TxnTimeoutMs = timeoutMs
	next.Partitions, next.Groups = nil, nil
	next.TxnStartTimestamp = -1
	next.TxnLastUpdateTimestamp = nowMs
	return m.prepare(next)
}

// prepareAddPartitions adds partitions and groups, starting the
// transaction if none is open (TransactionMetadata.prepareAddPartitions).
func (m *txnMetadata) prepareAddPartitions(tps []TopicPartition, groups []string, nowMs int64, tv transactionVersion) (txnRecord, *kerr.Error) {
	next := m.txnRecord
	next.State = stateOngoing
	if m.State.isComplete() {
		next.TxnStartTimestamp = nowMs
	}
	next.Partitions = mergeSorted(m.Partitions, tps, compareTopicPartition)
	next.Groups = mergeSorted(m.Groups, groups, cmp.Compare[string])
	next.TxnLastUpdateTimestamp = nowMs
	next.ClientTransactionVersion = tv
	return m.prepare(next)
}

// prepareAbortOrCommit decides the transaction
// (TransactionMetadata.prepareAbortOrCommit). Under transactions v2 the
// epoch is bumped, so that the markers fence the producer's old epoch and
// the producer goes on with the new one; nextProducerID is a new producer
// id when that bump exhausts the epochs.
func (m *txnMetadata) prepareAbortOrCommit(state txnState, tv transactionVersion, nextProducerID int64, nowMs int64, noPartitionAdded bool) (txnRecord, *kerr.Error) {
	next := m.txnRecord
	next.State = state
	if tv.supportsEpochBump() {
		// At MaxInt16 an abort goes through without a bump, so that a
		// broken state can recover.
		if !(m.ProducerEpoch == math.MaxInt16 && state == statePrepareAbort) {
			next.ProducerEpoch = m.ProducerEpoch + 1
		}
		next.LastProducerEpoch = m.ProducerEpoch
	}
	// Transactions v2 may abort without a partition: the start is now.
	if noPartitionAdded {
		next.TxnStartTimestamp = nowMs
	}
	next.NextProducerID = nextProducerID
	next.TxnLastUpdateTimestamp = nowMs
	next.ClientTransactionVersion = tv
	return m.prepare(next)
}

// prepareComplete ends a transaction whose markers are written
// (TransactionMetadata.prepareComplete). After a transactions-v2 end that
// exhausted the epochs, the producer id is the next one, at epoch 0; the
// last epoch stays what the client last saw.
func (m *txnMetadata) prepareComplete(nowMs int64) (txnRecord, *kerr.Error) {
	// The markers are written, so the fence (if any) was stored.
	m.hasFailedEpochFence = false
	next := m.txnRecord
	next.State = stateCompleteAbort
	if m.State == statePrepareCommit {
		next.State = stateCompleteCommit
	}
	next.ProducerID, next.ProducerEpoch = completedProducer(&m.txnRecord)
	next.NextProducerID = noProducerID
	next.Partitions, next.Groups = nil, nil
	next.TxnLastUpdateTimestamp = nowMs
	return m.prepare(next)
}

// markersBumpedEpoch reports whether a prepared record's markers carry an
// epoch above the one its transaction's records were written with (a
// transactions-v2 end): the producer's next transaction then writes at the
// markers' epoch, so a restart can tell a partition still open at the
// markers' epoch for the next transaction (its own markers are written)
// from one open below it for this one.
func markersBumpedEpoch(r *txnRecord) bool {
	return r.ClientTransactionVersion.supportsEpochBump() && r.LastProducerEpoch != noProducerEpoch && r.ProducerEpoch == r.LastProducerEpoch+1
}

// completedProducer is the producer id and epoch a prepared transaction
// leaves behind, which EndTxn v5 returns.
func completedProducer(r *txnRecord) (int64, int16) {
	if r.ClientTransactionVersion.supportsEpochBump() && r.NextProducerID != noProducerID {
		return r.NextProducerID, 0
	}
	return r.ProducerID, r.ProducerEpoch
}

// prepareDead marks an expired transactional id for removal
// (TransactionMetadata.prepareDead).
func (m *txnMetadata) prepareDead() (txnRecord, *kerr.Error) {
	next := m.txnRecord
	next.State = stateDead
	next.Partitions, next.Groups = nil, nil
	return m.prepare(next)
}

// mergeSorted returns the sorted union of sorted a and unsorted b, sharing
// nothing with either; nil if both are empty.
func mergeSorted[T any](a, b []T, compare func(T, T) int) []T {
	if len(a)+len(b) == 0 {
		return nil
	}
	out := make([]T, 0, len(a)+len(b))
	out = append(out, a...)
	out = append(out, b...)
	slices.SortFunc(out, compare)
	return slices.CompactFunc(out, func(x, y T) bool { return compare(x, y) == 0 })
}
