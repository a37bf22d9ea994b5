// Package kvlog captures the writes made to a bbolt store of nested buckets
// as data, so that a committed write transaction can be shipped and applied
// elsewhere: the coordinators' state (groups, committed and staged offsets,
// transactional ids) is written through a Tx, whose Changes a replicated
// cluster appends to its metadata log and every node replays with Apply, as
// Kafka replicates __consumer_offsets and __transaction_state records.
//
// Reads stay on bbolt (Tx.Bolt); only writes go through Tx. A change means
// the same thing to Tx and to Apply, so replaying the changes of every
// committed transaction, in commit order, onto an empty store rebuilds the
// store.
package kvlog

import (
	"bytes"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Op is what a Change does.
type Op uint8

const (
	// OpPut sets Key to Value in the bucket at Path, creating missing
	// buckets along Path.
	OpPut Op = 1
	// OpDelete removes Key from the bucket at Path; a missing bucket or key
	// is not an error.
	OpDelete Op = 2
	// OpDeleteBucket removes the bucket at Path and all it holds; a missing
	// bucket is not an error.
	OpDeleteBucket Op = 3
	// OpCreateBucket creates the bucket at Path and missing buckets along
	// it; an existing bucket is not an error. It is what start-up bucket
	// creation and empty buckets are recorded as, so that replaying onto an
	// empty store leaves the same (possibly empty) buckets.
	OpCreateBucket Op = 4
)

func (o Op) String() string {
	switch o {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	case OpDeleteBucket:
		return "delete-bucket"
	case OpCreateBucket:
		return "create-bucket"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Change is one write to a bbolt store of nested buckets.
type Change struct {
	Op    Op
	Path  [][]byte // bucket names from the root; never empty
	Key   []byte   // OpPut, OpDelete
	Value []byte   // OpPut
}

var errNoPath = errors.New("kvlog: a change needs a bucket path")

// Tx wraps a bbolt write transaction: reads go to the bbolt transaction
// directly (Bolt); writes go through Put, Delete, DeleteBucket and
// CreateBucket, which apply them and record them.
type Tx struct {
	tx      *bolt.Tx
	changes []Change
}

// NewTx wraps a writable bbolt transaction.
func NewTx(tx *bolt.Tx) *Tx { return &Tx{tx: tx} }

// Bolt is the bbolt transaction, for reads (Bucket, Cursor, ForEach). Never
// write through it: such a write would not be recorded, and a follower
// would not see it.
func (t *Tx) Bolt() *bolt.Tx { return t.tx }

// Changes are the writes made so far, in order. Their keys and values are
// the caller's (see Put); their paths are copies.
func (t *Tx) Changes() []Change { return t.changes }

// Put sets key to value in the bucket at path, creating missing buckets
// along path. As with bbolt's Put, key and value must not change
// afterwards: the recorded change keeps them.
func (t *Tx) Put(path [][]byte, key, value []byte) error {
	return t.do(Change{Op: OpPut, Path: path, Key: key, Value: value})
}

// Delete removes key from the bucket at path; a missing bucket or key is
// not an error.
func (t *Tx) Delete(path [][]byte, key []byte) error {
	return t.do(Change{Op: OpDelete, Path: path, Key: key})
}

// DeleteBucket removes the bucket at path and everything in it; a missing
// bucket is not an error.
func (t *Tx) DeleteBucket(path [][]byte) error {
	return t.do(Change{Op: OpDeleteBucket, Path: path})
}

// CreateBucket creates the bucket at path and missing buckets along it; an
// existing bucket is not an error.
func (t *Tx) CreateBucket(path [][]byte) error {
	return t.do(Change{Op: OpCreateBucket, Path: path})
}

// do applies c and records it. Keys and values are kept, not copied: as
// with bbolt, whose Put keeps references until commit, the caller must not
// change them afterwards. The path is copied, since callers build paths
// from names they may reuse; consecutive changes in one bucket (a commit of
// many partitions) share one copy.
func (t *Tx) do(c Change) error {
	if n := len(t.changes); n > 0 && samePath(t.changes[n-1].Path, c.Path) {
		c.Path = t.changes[n-1].Path
	} else {
		c.Path = copyPath(c.Path)
	}
	if err := apply(t.tx, c); err != nil {
		return err
	}
	t.changes = append(t.changes, c)
	return nil
}

func samePath(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// copyPath copies path into one allocation for the names and one for the
// slice.
func copyPath(path [][]byte) [][]byte {
	n := 0
	for _, p := range path {
		n += len(p)
	}
	buf := make([]byte, 0, n)
	out := make([][]byte, len(path))
	for i, p := range path {
		buf = append(buf, p...)
		out[i] = buf[len(buf)-len(p) : len(buf) : len(buf)]
	}
	return out
}

// Apply replays changes, made by Tx on another store (the leader), onto tx
// (a follower). It stops at the first change that fails; the caller then
// rolls tx back.
func Apply(tx *bolt.Tx, changes []Change) error {
	for i, c := range changes {
		if err := apply(tx, c); err != nil {
			return fmt.Errorf("kvlog: change %d (%s): %w", i, c.Op, err)
		}
	}
	return nil
}

func apply(tx *bolt.Tx, c Change) error {
	if len(c.Path) == 0 {
		return errNoPath
	}
	switch c.Op {
	case OpPut:
		b, err := createBuckets(tx, c.Path)
		if err != nil {
			return err
		}
		return b.Put(c.Key, c.Value)
	case OpCreateBucket:
		_, err := createBuckets(tx, c.Path)
		return err
	case OpDelete:
		b := bucket(tx, c.Path)
		if b == nil {
			return nil
		}
		return b.Delete(c.Key)
	case OpDeleteBucket:
		last := c.Path[len(c.Path)-1]
		var err error
		if len(c.Path) == 1 {
			err = tx.DeleteBucket(last)
		} else if parent := bucket(tx, c.Path[:len(c.Path)-1]); parent != nil {
			err = parent.DeleteBucket(last)
		}
		if errors.Is(err, bolt.ErrBucketNotFound) {
			return nil
		}
		return err
	}
	return fmt.Errorf("kvlog: unknown op %d", uint8(c.Op))
}

// bucket is the bucket at path, or nil if one along it is missing.
func bucket(tx *bolt.Tx, path [][]byte) *bolt.Bucket {
	b := tx.Bucket(path[0])
	for _, name := range path[1:] {
		if b == nil {
			return nil
		}
		b = b.Bucket(name)
	}
	return b
}

func createBuckets(tx *bolt.Tx, path [][]byte) (*bolt.Bucket, error) {
	b, err := tx.CreateBucketIfNotExists(path[0])
	for _, name := range path[1:] {
		if err != nil {
			break
		}
		b, err = b.CreateBucketIfNotExists(name)
	}
	return b, err
}

// DB is the transactional store coordinator state lives in, and what
// coordinators write through: every write of an Update is a Change of its
// Tx. Local is the single-node DB; a replicated cluster's DB also ships the
// Changes of each committed Update to the other nodes.
type DB interface {
	// Update runs fn in a write transaction, committed (durably) if fn
	// returns nil.
	Update(fn func(tx *Tx) error) error
	// View runs fn in a read-only transaction.
	View(fn func(tx *bolt.Tx) error) error
}

// BoltStore is a bbolt store: *bolt.DB, storage.MetaStore.
type BoltStore interface {
	Update(fn func(tx *bolt.Tx) error) error
	View(fn func(tx *bolt.Tx) error) error
}

// Local adapts a bbolt store as a DB: the single-node path, where the
// changes are applied and the transaction committed, and nothing else.
func Local(db BoltStore) DB { return local{db} }

type local struct{ db BoltStore }

func (l local) Update(fn func(tx *Tx) error) error {
	return l.db.Update(func(tx *bolt.Tx) error { return fn(NewTx(tx)) })
}

func (l local) View(fn func(tx *bolt.Tx) error) error { return l.db.View(fn) }

// CreateBuckets creates the top-level buckets that are missing, in one
// write, and writes nothing when all exist: a restart then costs no commit
// (and no fsync) here.
func CreateBuckets(db DB, names ...[]byte) error {
	missing := false
	if err := db.View(func(tx *bolt.Tx) error {
		for _, n := range names {
			missing = missing || tx.Bucket(n) == nil
		}
		return nil
	}); err != nil || !missing {
		return err
	}
	return db.Update(func(tx *Tx) error {
		for _, n := range names {
			if err := tx.CreateBucket([][]byte{n}); err != nil {
				return err
			}
		}
		return nil
	})
}

// Dump returns the whole store as changes that, applied to an empty store,
// rebuild it: every bucket (empty ones too) and every key, in key order.
// For snapshots of a replicated store.
func Dump(tx *bolt.Tx) []Change {
	var out []Change
	var walk func(path [][]byte, b *bolt.Bucket)
	walk = func(path [][]byte, b *bolt.Bucket) {
		out = append(out, Change{Op: OpCreateBucket, Path: path})
		b.ForEach(func(k, v []byte) error {
			if v == nil { // a nested bucket
				walk(append(path[:len(path):len(path)], bytes.Clone(k)), b.Bucket(k))
				return nil
			}
			out = append(out, Change{Op: OpPut, Path: path, Key: bytes.Clone(k), Value: bytes.Clone(v)})
			return nil
		})
	}
	tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		walk([][]byte{bytes.Clone(name)}, b)
		return nil
	})
	return out
}
