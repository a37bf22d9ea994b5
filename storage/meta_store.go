package storage

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
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
	clusterIDKey          = []byte("cluster.id")
)

// MetaStore is the broker's small metadata database, <dir>/meta.db (bbolt). Storage
// keeps the topic catalog and each partition's log start offset here; coordinator and
// txn state will live in buckets of their own. Every Update is one durable bbolt
// transaction (fsync on commit).
type MetaStore struct {
	db        *bolt.DB
	clusterID string
	// pendingPath is where a new database built with its syncs deferred
	// goes once SyncNew makes it durable; empty otherwise.
	pendingPath string
	// background is the SyncNew that SyncNewInBackground started; every
	// Update waits for it. Nil before, and for any other database.
	background atomic.Pointer[backgroundSync]
}

type backgroundSync struct {
	done chan struct{}
	err  error // set before done is closed
}

// newMetaSuffix names a meta.db being built with its syncs deferred.
const newMetaSuffix = ".new"

// OpenMetaStore opens or creates the database at path, creates storage's buckets,
// checks the schema version and reads the cluster id, creating it on first start
// (Kafka keeps it in the log dir's meta.properties). A database that needs no
// initialisation is not written to, so a restart costs no fsync here. It fails after
// a second if another process holds the file. A new database takes newClusterID
// when it is not empty (it must be a Kafka Uuid: 16 bytes, URL-safe base64); an
// existing one keeps its own, as `kafka-storage format --ignore-formatted` does.
func OpenMetaStore(path, newClusterID string) (*MetaStore, error) {
	return openMetaStore(path, newClusterID, false)
}

// openMetaStore is OpenMetaStore; with deferNewSync a database that does not
// exist yet is built without fsyncs under path+".new" and appears at path,
// durable, only with SyncNew. A start that creates meta.db thus pays for two
// syncs instead of two per bbolt commit of its own and of every package
// that creates its buckets; a crash before SyncNew leaves no meta.db, and
// the next start begins afresh.
func openMetaStore(path, newClusterID string, deferNewSync bool) (*MetaStore, error) {
	if newClusterID != "" {
		if raw, err := base64.RawURLEncoding.DecodeString(newClusterID); err != nil || len(raw) != 16 {
			return nil, fmt.Errorf("storage: cluster id %q is not a Kafka Uuid (16 bytes in URL-safe base64, 22 characters)", newClusterID)
		}
	}
	openPath, opts := path, &bolt.Options{Timeout: time.Second}
	pendingPath := ""
	if _, err := os.Stat(path); deferNewSync && errors.Is(err, os.ErrNotExist) {
		openPath, pendingPath = path+newMetaSuffix, path
		if err := os.Remove(openPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("storage: %w", err)
		}
		opts.NoSync, opts.NoGrowSync = true, true
		if err := writeEmptyBolt(openPath); err != nil && !errors.Is(err, errors.ErrUnsupported) {
			return nil, fmt.Errorf("storage: create %s: %w", openPath, err)
		}
	}
	db, err := bolt.Open(openPath, 0o600, opts)
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", openPath, err)
	}
	s := &MetaStore{db: db, pendingPath: pendingPath}
	initialized := false
	err = db.View(func(tx *bolt.Tx) error {
		initialized, err = s.readMeta(tx)
		return err
	})
	if err == nil && !initialized {
		err = db.Update(func(tx *bolt.Tx) error {
			for _, name := range [][]byte{metaBucket, topicsBucket, logStartOffsetsBucket} {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			if _, err := s.readMeta(tx); err != nil {
				return err
			}
			b := tx.Bucket(metaBucket)
			if b.Get(schemaVersionKey) == nil {
				if err := b.Put(schemaVersionKey, binary.BigEndian.AppendUint32(nil, metaSchemaVersion)); err != nil {
					return err
				}
			}
			if s.clusterID == "" && newClusterID != "" {
				s.clusterID = newClusterID
				return b.Put(clusterIDKey, []byte(s.clusterID))
			}
			if s.clusterID == "" {
				var raw [16]byte
				if _, err := rand.Read(raw[:]); err != nil {
					return err
				}
				s.clusterID = base64.RawURLEncoding.EncodeToString(raw[:])
				return b.Put(clusterIDKey, []byte(s.clusterID))
			}
			return nil
		})
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("storage: init %s: %w", path, err)
	}
	return s, nil
}

// SyncNew makes a database built with its syncs deferred durable at its
// path, and every later commit durable as usual. It must run before anyone
// else writes (the broker calls it before it serves). Without a deferred
// database it does nothing.
func (s *MetaStore) SyncNew() error {
	if s.pendingPath == "" {
		return nil
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("storage: sync new meta.db: %w", err)
	}
	if err := os.Rename(s.pendingPath+newMetaSuffix, s.pendingPath); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	if err := syncDir(filepath.Dir(s.pendingPath)); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	s.db.NoSync, s.db.NoGrowSync = false, false
	s.pendingPath = ""
	return nil
}

// SyncNewInBackground runs SyncNew on its own goroutine, so a new broker
// can answer reads (an empty catalog and its cluster id) while the disk
// works. Every Update waits for it, and fails if it failed: nothing is
// written, let alone acknowledged, before the database is durable. A crash
// meanwhile leaves no meta.db, as for a start that dies before SyncNew.
func (s *MetaStore) SyncNewInBackground() {
	if s.pendingPath == "" {
		return
	}
	b := &backgroundSync{done: make(chan struct{})}
	s.background.Store(b)
	go func() {
		b.err = s.SyncNew()
		close(b.done)
	}()
}

// WaitDurable waits for the SyncNew that SyncNewInBackground started and
// returns its error; nil at once when there is none.
func (s *MetaStore) WaitDurable() error {
	if b := s.background.Load(); b != nil {
		<-b.done
		return b.err
	}
	return nil
}

// readMeta checks the schema version and loads the cluster id; it reports whether
// every bucket and key is already in place.
func (s *MetaStore) readMeta(tx *bolt.Tx) (bool, error) {
	b := tx.Bucket(metaBucket)
	if b == nil {
		return false, nil
	}
	v := b.Get(schemaVersionKey)
	if v != nil {
		if len(v) != 4 {
			return false, errors.New("malformed schema version")
		}
		if got := binary.BigEndian.Uint32(v); got > metaSchemaVersion {
			return false, fmt.Errorf("schema version %d is newer than supported %d", got, metaSchemaVersion)
		}
	}
	s.clusterID = string(b.Get(clusterIDKey))
	return v != nil && s.clusterID != "" && tx.Bucket(topicsBucket) != nil && tx.Bucket(logStartOffsetsBucket) != nil, nil
}

// ClusterID is the id this data directory belongs to, made once at its first
// start: a random 16 bytes in URL-safe base64, like Kafka's.
func (s *MetaStore) ClusterID() string { return s.clusterID }

// Update runs fn in a read-write transaction, committed (and fsynced) if fn
// returns nil, once the database is durable (SyncNewInBackground).
func (s *MetaStore) Update(fn func(tx *bolt.Tx) error) error {
	if err := s.WaitDurable(); err != nil {
		return err
	}
	return s.db.Update(fn)
}

// View runs fn in a read-only transaction.
func (s *MetaStore) View(fn func(tx *bolt.Tx) error) error { return s.db.View(fn) }

// Close closes the database, after a SyncNew still running.
func (s *MetaStore) Close() error {
	s.WaitDurable()
	return s.db.Close()
}

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

// writeEmptyBolt writes a new, empty bbolt database to path, which must not
// exist, without the fdatasync bbolt makes when it initialises a file (about
// half a millisecond of a new broker's start, even with NoSync): bbolt
// initialises an in-memory file, and Tx.WriteTo copies it. Like the rest
// of a deferred database, it becomes durable with SyncNew. Without
// in-memory files (another OS, or a sandbox that refuses memfd_create) it
// returns an errors.ErrUnsupported and writes nothing: bolt.Open then
// creates the file itself.
func writeEmptyBolt(path string) (err error) {
	mem, err := memFile(filepath.Base(path))
	if err != nil {
		return fmt.Errorf("%w: %v", errors.ErrUnsupported, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		NoSync: true, NoGrowSync: true,
		OpenFile: func(string, int, os.FileMode) (*os.File, error) { return mem, nil },
	})
	if err != nil {
		mem.Close()
		return err
	}
	defer db.Close() // closes mem
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	return db.View(func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(f)
		return err
	})
}
