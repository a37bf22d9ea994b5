package txn

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/kbroker/kbroker/internal/batchwriter"
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
	*batchwriter.Writer
}

func newTxnStore(db DB) (*txnStore, error) {
	err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(transactionsBucket)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &txnStore{db: db, Writer: batchwriter.New(db)}, nil
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
