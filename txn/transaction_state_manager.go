package txn

import (
	"bytes"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/kbroker/kbroker/internal/batchwriter"
	"github.com/kbroker/kbroker/internal/journal"
	"github.com/kbroker/kbroker/internal/kvlog"
)

// transactionsBucket maps a transactional id to its encoded txnRecord
// (transaction_log.go).
var transactionsBucket = []byte("transactions")

// txnStore is the single writer of transaction state (the part of Kafka's
// TransactionStateManager that appends to __transaction_state): changes are
// written in the order the coordinator makes them, in batches, so that
// transitions of concurrent transactions share a write. It keeps the state
// in one of two places:
//   - a kvlog.DB (a cluster's replicated metadata, or bbolt): one
//     transaction with its fsyncs per batch; every write goes through a
//     kvlog.Tx, so that a replicated DB can ship it (the replication Kafka
//     gets from __transaction_state); reads go to bbolt;
//   - on a single node, a journal (Config.StateJournal), fsynced as the
//     broker's logs are, as Kafka's __transaction_state is a log like any
//     other.
type txnStore struct {
	db kvlog.DB
	w  *batchwriter.Writer // with db
	j  *journal.Journal
	// replayed is what the journal held at open, for load.
	replayed map[string][]byte
}

func newTxnStore(db kvlog.DB) (*txnStore, error) {
	if err := kvlog.CreateBuckets(db, transactionsBucket); err != nil {
		return nil, err
	}
	return &txnStore{db: db, w: batchwriter.New(db)}, nil
}

// openJournalStore opens the journal at path. State that db holds (written
// before the journal existed, or by a version without it) replaces the
// journal's and is then removed from db: moved, durably, before anything
// else is written, and again if a crash interrupts the move.
func openJournalStore(path string, opts journal.Options, db kvlog.DB) (*txnStore, error) {
	j, replayed, err := journal.Open(path, opts)
	if err != nil {
		return nil, err
	}
	s := &txnStore{j: j, replayed: replayed}
	if db == nil {
		return s, nil
	}
	var old map[string][]byte
	if err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(transactionsBucket)
		if b == nil {
			return nil
		}
		old = map[string][]byte{}
		return b.ForEach(func(k, v []byte) error {
			old[string(k)] = bytes.Clone(v)
			return nil
		})
	}); err != nil {
		j.Close()
		return nil, err
	}
	if old == nil {
		return s, nil
	}
	var writes []<-chan error
	for id := range replayed {
		if _, ok := old[id]; !ok {
			writes = append(writes, j.Delete(id))
		}
	}
	for id, v := range old {
		writes = append(writes, j.Put(id, v))
	}
	writes = append(writes, j.Sync())
	for _, res := range writes {
		if err == nil {
			err = <-res
		}
	}
	if err == nil {
		err = db.Update(func(tx *kvlog.Tx) error { return tx.DeleteBucket([][]byte{transactionsBucket}) })
	}
	if err != nil {
		j.Close()
		return nil, fmt.Errorf("move transaction state from meta.db to %s: %w", path, err)
	}
	s.replayed = old
	return s, nil
}

// put stores a transactional id's record; remove deletes an expired one
// (Kafka writes a tombstone). The channel yields the outcome once stored.
func (s *txnStore) put(id string, rec txnRecord) <-chan error {
	if s.j != nil {
		return s.j.Put(id, encodeTxnRecord(rec))
	}
	return s.w.Enqueue(putTxn(id, rec))
}

func (s *txnStore) remove(id string) <-chan error {
	if s.j != nil {
		return s.j.Delete(id)
	}
	return s.w.Enqueue(deleteTxn(id))
}

// Close writes what is queued and stops the writer.
func (s *txnStore) Close() {
	if s.j != nil {
		s.j.Close()
		return
	}
	s.w.Close()
}

// putTxn stores a transactional id's record.
func putTxn(id string, rec txnRecord) func(tx *kvlog.Tx) error {
	v := encodeTxnRecord(rec)
	return func(tx *kvlog.Tx) error {
		return tx.Put([][]byte{transactionsBucket}, []byte(id), v)
	}
}

// deleteTxn removes an expired transactional id (Kafka writes a tombstone).
func deleteTxn(id string) func(tx *kvlog.Tx) error {
	return func(tx *kvlog.Tx) error {
		return tx.Delete([][]byte{transactionsBucket}, []byte(id))
	}
}

var errEmptyTransactionalID = errors.New("empty transactional id")

// load reads every stored transactional id
// (TransactionStateManager.loadTransactionMetadata).
func (s *txnStore) load() (map[string]txnRecord, error) {
	out := make(map[string]txnRecord)
	add := func(k, v []byte) error {
		if len(k) == 0 {
			return errEmptyTransactionalID
		}
		rec, err := decodeTxnRecord(v)
		if err != nil {
			return fmt.Errorf("transactional id %q: %w", k, err)
		}
		out[string(k)] = rec
		return nil
	}
	if s.j != nil {
		for id, v := range s.replayed {
			if err := add([]byte(id), v); err != nil {
				return nil, err
			}
		}
		s.replayed = nil
		return out, nil
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(transactionsBucket).ForEach(add)
	})
	return out, err
}
