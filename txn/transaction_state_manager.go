package txn

import (
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// DB is the transactional key-value store transaction state lives in;
// storage.MetaStore is one. Keeping it an interface keeps the door open to
// a replicated __transaction_state later, as Kafka has.
type DB interface {
	Update(fn func(tx *bolt.Tx) error) error
	View(fn func(tx *bolt.Tx) error) error
}

// transactionsBucket maps a transactional id to its encoded txnRecord
// (transaction_log.go).
var transactionsBucket = []byte("transactions")

// txnStore is the single writer of transaction state (the part of Kafka's
// TransactionStateManager that appends to __transaction_state): changes are
// queued in the order the coordinator makes them and applied in batches,
// one bbolt transaction (one fsync) per batch, so transitions of
// concurrent transactions share an fsync.
type txnStore struct {
	db DB

	mu      sync.Mutex
	pending []storeWrite
	wake    chan struct{} // capacity 1
	done    chan struct{}
	stopped chan struct{}
}

type storeWrite struct {
	apply func(tx *bolt.Tx) error
	res   chan error // capacity 1
}

func newTxnStore(db DB) (*txnStore, error) {
	err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(transactionsBucket)
		return err
	})
	if err != nil {
		return nil, err
	}
	s := &txnStore{db: db, wake: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{})}
	go s.run()
	return s, nil
}

// enqueue queues a change; the returned channel yields its outcome once it
// is durable. Never called after close.
func (s *txnStore) enqueue(apply func(tx *bolt.Tx) error) <-chan error {
	w := storeWrite{apply: apply, res: make(chan error, 1)}
	s.mu.Lock()
	s.pending = append(s.pending, w)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return w.res
}

func (s *txnStore) run() {
	defer close(s.stopped)
	for {
		select {
		case <-s.wake:
		case <-s.done:
			s.flush() // whatever was queued before close
			return
		}
		s.flush()
	}
}

func (s *txnStore) flush() {
	s.mu.Lock()
	batch := s.pending
	s.pending = nil
	s.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, w := range batch {
			if err := w.apply(tx); err != nil {
				return err
			}
		}
		return nil
	})
	for _, w := range batch {
		w.res <- err
	}
}

// close applies what is queued and stops the writer.
func (s *txnStore) close() {
	close(s.done)
	<-s.stopped
}

// putTxn stores a transactional id's record.
func putTxn(id string, rec txnRecord) func(tx *bolt.Tx) error {
	v := encodeTxnRecord(rec)
	return func(tx *bolt.Tx) error {
		return tx.Bucket(transactionsBucket).Put([]byte(id), v)
	}
}

// deleteTxn removes an expired transactional id (Kafka writes a tombstone).
func deleteTxn(id string) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		return tx.Bucket(transactionsBucket).Delete([]byte(id))
	}
}

var errEmptyTransactionalID = errors.New("empty transactional id")

// load reads every stored transactional id
// (TransactionStateManager.loadTransactionMetadata).
func (s *txnStore) load() (map[string]txnRecord, error) {
	out := make(map[string]txnRecord)
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(transactionsBucket).ForEach(func(k, v []byte) error {
			if len(k) == 0 {
				return errEmptyTransactionalID
			}
			rec, err := decodeTxnRecord(v)
			if err != nil {
				return fmt.Errorf("transactional id %q: %w", k, err)
			}
			out[string(k)] = rec
			return nil
		})
	})
	return out, err
}
