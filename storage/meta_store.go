package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// metaSchemaVersion is stored in the "meta" bucket; a newer file is refused rather
// than misread.
const metaSchemaVersion = 1

var (
	metaBucket            = []byte("meta")
	topicsBucket          = []byte("topics")            // name -> encoded topicRecord
	logStartOffsetsBucket = []byte("log-start-offsets") // topic ID ++ partition (BE) -> int64 (BE)
	schemaVersionKey      = []byte("schema-version")
)

// MetaStore is the broker's small metadata database, <dir>/meta.db (bbolt). Storage
// keeps the topic catalog and each partition's log start offset here; coordinator and
// txn state will live in buckets of their own. Every Update is one durable bbolt
// transaction (fsync on commit).
type MetaStore struct {
	db *bolt.DB
}

// OpenMetaStore opens or creates the database at path, creates storage's buckets and
// checks the schema version. It fails after a second if another process holds the file.
func OpenMetaStore(path string) (*MetaStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{metaBucket, topicsBucket, logStartOffsetsBucket} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		b := tx.Bucket(metaBucket)
		if v := b.Get(schemaVersionKey); v != nil {
			if len(v) != 4 {
				return errors.New("malformed schema version")
			}
			if got := binary.BigEndian.Uint32(v); got > metaSchemaVersion {
				return fmt.Errorf("schema version %d is newer than supported %d", got, metaSchemaVersion)
			}
			return nil
		}
		return b.Put(schemaVersionKey, binary.BigEndian.AppendUint32(nil, metaSchemaVersion))
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("storage: init %s: %w", path, err)
	}
	return &MetaStore{db: db}, nil
}

// Update runs fn in a read-write transaction, committed (and fsynced) if fn returns nil.
func (s *MetaStore) Update(fn func(tx *bolt.Tx) error) error { return s.db.Update(fn) }

// View runs fn in a read-only transaction.
func (s *MetaStore) View(fn func(tx *bolt.Tx) error) error { return s.db.View(fn) }

// Close closes the database.
func (s *MetaStore) Close() error { return s.db.Close() }

func logStartOffsetKey(id TopicID, partition int32) []byte {
	return binary.BigEndian.AppendUint32(append([]byte(nil), id[:]...), uint32(partition))
}

// putLogStartOffset durably records a partition's log start offset.
func (s *MetaStore) putLogStartOffset(id TopicID, partition int32, offset int64) error {
	return s.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(logStartOffsetsBucket).Put(logStartOffsetKey(id, partition),
			binary.BigEndian.AppendUint64(nil, uint64(offset)))
	})
}

// logStartOffset returns the persisted log start offset, or 0.
func (s *MetaStore) logStartOffset(id TopicID, partition int32) (int64, error) {
	var off int64
	err := s.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(logStartOffsetsBucket).Get(logStartOffsetKey(id, partition))
		if v == nil {
			return nil
		}
		if len(v) != 8 {
			return fmt.Errorf("storage: malformed log start offset for partition %d", partition)
		}
		off = int64(binary.BigEndian.Uint64(v))
		return nil
	})
	return off, err
}

// deleteLogStartOffsets removes every partition's entry of a topic, inside tx.
func deleteLogStartOffsets(tx *bolt.Tx, id TopicID) error {
	c := tx.Bucket(logStartOffsetsBucket).Cursor()
	for k, _ := c.Seek(id[:]); k != nil && len(k) == 20 && [16]byte(k[:16]) == id; k, _ = c.Seek(id[:]) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}
