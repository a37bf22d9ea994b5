package idempotence

import (
	"errors"
	"fmt"
	"math"
	"sync"
)

// NumBatchesToRetain is how many recent batches per producer are kept for
// duplicate detection: a producer has at most five in flight
// (max.in.flight.requests.per.connection with idempotence).
const NumBatchesToRetain = 5

// NoProducerEpoch is RecordBatch.NO_PRODUCER_EPOCH.
const NoProducerEpoch = -1

var (
	// ErrOutOfOrderSequence is OUT_OF_ORDER_SEQUENCE_NUMBER.
	ErrOutOfOrderSequence = errors.New("idempotence: out of order sequence number")
	// ErrInvalidProducerEpoch is INVALID_PRODUCER_EPOCH: a newer epoch of the
	// producer id has written, this one is a zombie.
	ErrInvalidProducerEpoch = errors.New("idempotence: invalid producer epoch")
	// ErrCoordinatorFenced is TRANSACTION_COORDINATOR_FENCED: a marker from an
	// older transaction coordinator than the one that last wrote.
	ErrCoordinatorFenced = errors.New("idempotence: transaction coordinator fenced")
)

// Batch is what the state manager needs of a batch: its producer fields and
// where it landed (or would land) in the log.
type Batch struct {
	ProducerID    int64
	ProducerEpoch int16
	BaseSequence  int32
	LastSequence  int32 // BaseSequence + LastOffsetDelta, wrapped
	FirstOffset   int64
	LastOffset    int64
	MaxTimestamp  int64
	// IsTransactional batches belong to the producer's open transaction,
	// which starts at the first of them and ends at a marker.
	IsTransactional bool
}

// Marker is a transaction's end written into the partition: a control
// batch holding one COMMIT or ABORT record (Kafka's EndTransactionMarker).
type Marker struct {
	ProducerID       int64
	ProducerEpoch    int16
	CoordinatorEpoch int32
	Commit           bool
	Offset           int64
	Timestamp        int64
}

// CompletedTxn is a transaction that a marker ended: its data lies in
// [FirstOffset, LastOffset), its marker at LastOffset. Aborted ones go to
// the partition's transaction index.
type CompletedTxn struct {
	ProducerID  int64
	FirstOffset int64
	LastOffset  int64
	IsAborted   bool
}

// LastSeq computes a batch's last sequence from its first and its offset
// delta, wrapping at MaxInt32 as DefaultRecordBatch.lastSequence does.
func LastSeq(baseSequence, lastOffsetDelta int32) int32 {
	if baseSequence < 0 {
		return -1
	}
	if lastOffsetDelta > math.MaxInt32-baseSequence {
		return lastOffsetDelta - (math.MaxInt32 - baseSequence) - 1
	}
	return baseSequence + lastOffsetDelta
}

// BatchMetadata is one remembered batch (Kafka's BatchMetadata).
type BatchMetadata struct {
	FirstSeq, LastSeq       int32
	FirstOffset, LastOffset int64
	Timestamp               int64
}

// ProducerStateEntry is one producer's state in a partition.
type ProducerStateEntry struct {
	ProducerID       int64
	ProducerEpoch    int16
	Batches          []BatchMetadata // oldest first, at most NumBatchesToRetain
	LastTimestamp    int64
	CoordinatorEpoch int32 // of the last marker, -1 before any
	// CurrentTxnFirstOffset is where the producer's open transaction
	// starts in this partition, -1 when none is open.
	CurrentTxnFirstOffset int64
}

func (e *ProducerStateEntry) lastSeq() int32 {
	if len(e.Batches) == 0 {
		return -1
	}
	return e.Batches[len(e.Batches)-1].LastSeq
}

// ProducerStateManager is one partition's producer state. Its lock also
// serializes the check-append-update sequence of the partition's writers
// (Lock/Unlock), so two retries of one batch cannot both pass the check.
type ProducerStateManager struct {
	mu        sync.Mutex
	producers map[int64]*ProducerStateEntry
	ongoing   map[int64]int64 // producer id -> first offset of its open transaction
}

// NewProducerStateManager returns an empty state.
func NewProducerStateManager() *ProducerStateManager {
	return &ProducerStateManager{producers: make(map[int64]*ProducerStateEntry), ongoing: make(map[int64]int64)}
}

func newEntry(id int64, epoch int16) *ProducerStateEntry {
	return &ProducerStateEntry{ProducerID: id, ProducerEpoch: epoch, CoordinatorEpoch: -1, CurrentTxnFirstOffset: -1}
}

// Lock and Unlock bracket a writer's Check, log append and Update.
func (m *ProducerStateManager) Lock()   { m.mu.Lock() }
func (m *ProducerStateManager) Unlock() { m.mu.Unlock() }

// Check validates a batch against the producer's state; call with the
// manager locked. A retry of one of the last five batches returns that
// batch's metadata (do not append; answer with its offsets). Otherwise:
//   - an epoch older than the producer's is ErrInvalidProducerEpoch;
//   - a new epoch must start at sequence 0 (unless the producer has no
//     known epoch);
//   - in the current epoch the batch must follow the last sequence by one
//     (0 after MaxInt32);
//   - a producer without state (new, or its state was deleted with the
//     log's prefix or expired) may start at any sequence (KIP-360).
func (m *ProducerStateManager) Check(b Batch) (*BatchMetadata, error) {
	e := m.producers[b.ProducerID]
	if e == nil {
		return nil, nil
	}
	if b.ProducerEpoch == e.ProducerEpoch {
		for i := range e.Batches {
			if e.Batches[i].FirstSeq == b.BaseSequence && e.Batches[i].LastSeq == b.LastSequence {
				dup := e.Batches[i]
				return &dup, nil
			}
		}
	}
	if b.ProducerEpoch < e.ProducerEpoch {
		return nil, fmt.Errorf("%w: epoch %d is older than the current %d of producer %d", ErrInvalidProducerEpoch, b.ProducerEpoch, e.ProducerEpoch, b.ProducerID)
	}
	if b.ProducerEpoch != e.ProducerEpoch {
		if b.BaseSequence != 0 && e.ProducerEpoch != NoProducerEpoch {
			return nil, fmt.Errorf("%w: producer %d starts epoch %d at sequence %d, not 0", ErrOutOfOrderSequence, b.ProducerID, b.ProducerEpoch, b.BaseSequence)
		}
		return nil, nil
	}
	// An epoch with no batches left (a marker bumped it) starts at 0.
	if last := e.lastSeq(); e.ProducerEpoch != NoProducerEpoch && !inSequence(last, b.BaseSequence) {
		return nil, fmt.Errorf("%w: producer %d epoch %d: expected sequence %d, got %d", ErrOutOfOrderSequence, b.ProducerID, b.ProducerEpoch, nextSeq(last), b.BaseSequence)
	}
	return nil, nil
}

func inSequence(last, next int32) bool {
	return next == nextSeq(last)
}

func nextSeq(last int32) int32 {
	if last == math.MaxInt32 {
		return 0
	}
	return last + 1
}

// Update records an appended batch; call with the manager locked, after
// the append succeeded.
func (m *ProducerStateManager) Update(b Batch) { m.updateLocked(b) }

func (m *ProducerStateManager) updateLocked(b Batch) {
	e := m.producers[b.ProducerID]
	if e == nil {
		e = newEntry(b.ProducerID, b.ProducerEpoch)
		m.producers[b.ProducerID] = e
	}
	if b.ProducerEpoch != e.ProducerEpoch {
		e.ProducerEpoch = b.ProducerEpoch
		e.Batches = e.Batches[:0]
	}
	if len(e.Batches) == NumBatchesToRetain {
		copy(e.Batches, e.Batches[1:])
		e.Batches = e.Batches[:NumBatchesToRetain-1]
	}
	e.Batches = append(e.Batches, BatchMetadata{
		FirstSeq: b.BaseSequence, LastSeq: b.LastSequence,
		FirstOffset: b.FirstOffset, LastOffset: b.LastOffset, Timestamp: b.MaxTimestamp,
	})
	e.LastTimestamp = b.MaxTimestamp
	if b.IsTransactional && e.CurrentTxnFirstOffset < 0 {
		e.CurrentTxnFirstOffset = b.FirstOffset
		m.ongoing[b.ProducerID] = b.FirstOffset
	}
}

// CheckMarker validates a transaction marker before it is appended; call
// with the manager locked. An epoch older than the producer's is a zombie
// coordinator's retry, a coordinator epoch older than the last marker's a
// fenced coordinator (ProducerAppendInfo.appendEndTxnMarker).
func (m *ProducerStateManager) CheckMarker(mk Marker) error {
	e := m.producers[mk.ProducerID]
	if e == nil {
		return nil
	}
	if mk.ProducerEpoch < e.ProducerEpoch {
		return fmt.Errorf("%w: marker epoch %d is older than the current %d of producer %d", ErrInvalidProducerEpoch, mk.ProducerEpoch, e.ProducerEpoch, mk.ProducerID)
	}
	if mk.CoordinatorEpoch < e.CoordinatorEpoch {
		return fmt.Errorf("%w: marker of coordinator epoch %d, producer %d last saw %d", ErrCoordinatorFenced, mk.CoordinatorEpoch, mk.ProducerID, e.CoordinatorEpoch)
	}
	return nil
}

// CompleteTxn records an appended marker; call with the manager locked. It
// returns the transaction the marker ended, if the producer had data in
// this partition since its last marker (an empty transaction needs no
// index entry and does not hold the last stable offset back).
func (m *ProducerStateManager) CompleteTxn(mk Marker) (CompletedTxn, bool) {
	e := m.producers[mk.ProducerID]
	if e == nil {
		e = newEntry(mk.ProducerID, mk.ProducerEpoch)
		m.producers[mk.ProducerID] = e
	}
	var done CompletedTxn
	ok := e.CurrentTxnFirstOffset >= 0
	if ok {
		done = CompletedTxn{ProducerID: mk.ProducerID, FirstOffset: e.CurrentTxnFirstOffset, LastOffset: mk.Offset, IsAborted: !mk.Commit}
	}
	if mk.ProducerEpoch != e.ProducerEpoch {
		e.ProducerEpoch = mk.ProducerEpoch
		e.Batches = e.Batches[:0]
	}
	e.CurrentTxnFirstOffset = -1
	e.CoordinatorEpoch = mk.CoordinatorEpoch
	e.LastTimestamp = mk.Timestamp
	delete(m.ongoing, mk.ProducerID)
	return done, ok
}

// FirstUnstableOffset is the first offset of the oldest open transaction,
// -1 when none is open: the last stable offset cannot pass it.
func (m *ProducerStateManager) FirstUnstableOffset() int64 {
	first := int64(-1)
	for _, off := range m.ongoing {
		if first < 0 || off < first {
			first = off
		}
	}
	return first
}

// Entry returns a copy of a producer's state, for DescribeProducers and
// tests.
func (m *ProducerStateManager) Entry(producerID int64) (ProducerStateEntry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.producers[producerID]
	if e == nil {
		return ProducerStateEntry{}, false
	}
	c := *e
	c.Batches = append([]BatchMetadata(nil), e.Batches...)
	return c, true
}

// Producers returns a copy of every producer's state, for
// DescribeProducers.
func (m *ProducerStateManager) Producers() []ProducerStateEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ProducerStateEntry, 0, len(m.producers))
	for _, e := range m.producers {
		c := *e
		c.Batches = append([]BatchMetadata(nil), e.Batches...)
		out = append(out, c)
	}
	return out
}

// RemoveExpired forgets producers idle since before cutoff (ms), as
// producer.id.expiration.ms asks; never one with an open transaction.
func (m *ProducerStateManager) RemoveExpired(cutoff int64) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for id, e := range m.producers {
		if e.LastTimestamp < cutoff && e.CurrentTxnFirstOffset < 0 {
			delete(m.producers, id)
			n++
		}
	}
	return n
}

// TruncateBefore forgets batches wholly below offset (the log start moved
// past them); producers left without batches are forgotten, as Kafka's
// truncateHead does.
func (m *ProducerStateManager) TruncateBefore(offset int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, e := range m.producers {
		kept := e.Batches[:0]
		for _, bm := range e.Batches {
			if bm.LastOffset >= offset {
				kept = append(kept, bm)
			}
		}
		e.Batches = kept
		if len(kept) == 0 && e.CurrentTxnFirstOffset < 0 {
			delete(m.producers, id)
		}
	}
}
