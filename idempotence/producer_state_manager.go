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
	ProducerID    int64
	ProducerEpoch int16
	Batches       []BatchMetadata // oldest first, at most NumBatchesToRetain
	LastTimestamp int64
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
}

// NewProducerStateManager returns an empty state.
func NewProducerStateManager() *ProducerStateManager {
	return &ProducerStateManager{producers: make(map[int64]*ProducerStateEntry)}
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
	if last := e.lastSeq(); last >= 0 && !inSequence(last, b.BaseSequence) {
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
		e = &ProducerStateEntry{ProducerID: b.ProducerID, ProducerEpoch: b.ProducerEpoch}
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

// RemoveExpired forgets producers idle since before cutoff (ms), as
// producer.id.expiration.ms asks.
func (m *ProducerStateManager) RemoveExpired(cutoff int64) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for id, e := range m.producers {
		if e.LastTimestamp < cutoff {
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
		if len(kept) == 0 {
			delete(m.producers, id)
		}
	}
}
