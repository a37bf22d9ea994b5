package txn

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/kbroker/kbroker/internal/batchwriter"
	"github.com/kbroker/kbroker/internal/kvlog"
)

// transactionsBucket maps a transactional id to its encoded txnRecord
// (transaction_log.go).
var transactionsBucket = []byte("transactions")

// txnStore is the single writer of transaction state (the part of Kafka's
// TransactionStateManager that appends to __transaction_state): changes are
// queued in the order the coordinator makes them and applied in batches,
// one bbolt transaction (one fsync) per batch, so transitions of
// concurrent transactions share an fsync. Every write goes through a
// kvlog.Tx, so that a replicated DB can ship it (the replication Kafka gets
// from __transaction_state); reads go to bbolt.
type txnStore struct {
	db kvlog.DB
	*batchwriter.Writer
}

func newTxnStore(db kvlog.DB) (*txnStore, error) {
	if err := kvlog.CreateBuckets(db, transactionsBucket); err != nil {
		return nil, err
	}
	return &txnStore{db: db, Writer: batchwriter.New(db)}, nil
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
