package idempotence

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// ProducerIDBlockSize is how many ids one durable reservation covers
// (Kafka's ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE).
const ProducerIDBlockSize = 1000

var (
	producerIDsBucket = []byte("producer-ids")
	nextBlockKey      = []byte("next-block-start")
)

// ErrProducerIDsExhausted is what is left when the int64 space is spent.
var ErrProducerIDsExhausted = errors.New("idempotence: producer ids exhausted")

// DB is the transactional key-value store the id blocks live in
// (storage.MetaStore is one).
type DB interface {
	Update(fn func(tx *bolt.Tx) error) error
}

// ProducerIDManager hands out producer ids (Kafka's ProducerIdManager): it
// reserves blocks of ProducerIDBlockSize durably before using them, so an
// id is never handed out twice, not even across a crash; the ids left in a
// block when the broker stops are skipped.
type ProducerIDManager struct {
	db DB
	// allocate, when set, reserves blocks elsewhere instead of in db: in a
	// cluster the controller hands them out, so brokers never collide
	// (Kafka's RPCProducerIdManager and AllocateProducerIds).
	allocate func() (first, count int64, err error)
	mu       sync.Mutex
	next     int64 // next id to hand out
	end      int64 // end of the current block (exclusive)
}

// NewProducerIDManager returns a manager over db; it reserves its first
// block on the first call.
func NewProducerIDManager(db DB) *ProducerIDManager {
	return &ProducerIDManager{db: db}
}

// NewRemoteProducerIDManager returns a manager that takes its blocks from
// allocate, which must never hand out an id twice.
func NewRemoteProducerIDManager(allocate func() (first, count int64, err error)) *ProducerIDManager {
	return &ProducerIDManager{allocate: allocate}
}

// NextProducerID returns an id no one has had.
func (m *ProducerIDManager) NextProducerID() (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.next == m.end {
		if err := m.reserveBlock(); err != nil {
			return -1, err
		}
	}
	id := m.next
	m.next++
	return id, nil
}

func (m *ProducerIDManager) reserveBlock() error {
	if m.allocate != nil {
		first, count, err := m.allocate()
		if err != nil {
			return fmt.Errorf("idempotence: allocate producer ids: %w", err)
		}
		if count <= 0 {
			return fmt.Errorf("idempotence: allocate producer ids: empty block")
		}
		m.next, m.end = first, first+count
		return nil
	}
	var start int64
	err := m.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(producerIDsBucket)
		if err != nil {
			return err
		}
		if v := b.Get(nextBlockKey); len(v) == 8 {
			start = int64(binary.BigEndian.Uint64(v))
		} else if v != nil {
			return fmt.Errorf("idempotence: bad producer id block record %x", v)
		}
		if start > math.MaxInt64-ProducerIDBlockSize {
			return ErrProducerIDsExhausted
		}
		return b.Put(nextBlockKey, binary.BigEndian.AppendUint64(nil, uint64(start+ProducerIDBlockSize)))
	})
	if err != nil {
		return fmt.Errorf("idempotence: reserve producer ids: %w", err)
	}
	m.next, m.end = start, start+ProducerIDBlockSize
	return nil
}
