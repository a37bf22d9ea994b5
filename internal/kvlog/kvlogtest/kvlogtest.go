// Package kvlogtest helps tests prove that a component's writes are all
// captured by kvlog: a Recorder keeps the changes of every committed
// transaction, Replay applies them onto an empty store, and Contents walks
// a store so that two can be compared.
package kvlogtest

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/kbroker/kbroker/internal/kvlog"
)

// Recorder is a kvlog.DB over a bbolt store that keeps the changes of every
// committed Update, in commit order: what a replicated DB would append to
// its log.
type Recorder struct {
	DB kvlog.BoltStore

	mu      sync.Mutex
	changes []kvlog.Change
	commits int
}

// Update runs fn in a write transaction and, once it has committed, keeps
// its changes. Like a replicated DB, it ships them encoded, and keeps what
// decoding gives back.
func (r *Recorder) Update(fn func(tx *kvlog.Tx) error) error {
	var changes []kvlog.Change
	err := r.DB.Update(func(tx *bolt.Tx) error {
		ktx := kvlog.NewTx(tx)
		if err := fn(ktx); err != nil {
			return err
		}
		changes = ktx.Changes()
		return nil
	})
	if err != nil {
		return err
	}
	decoded, err := kvlog.Decode(kvlog.Encode(changes))
	if err != nil {
		return fmt.Errorf("decoding what was encoded: %w", err)
	}
	r.mu.Lock()
	r.changes = append(r.changes, decoded...)
	r.commits++
	r.mu.Unlock()
	return nil
}

// View runs fn in a read-only transaction.
func (r *Recorder) View(fn func(tx *bolt.Tx) error) error { return r.DB.View(fn) }

// Changes are the changes of every committed Update so far, and how many
// Updates committed.
func (r *Recorder) Changes() ([]kvlog.Change, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]kvlog.Change(nil), r.changes...), r.commits
}

// Replay applies changes onto a new, empty store, closed when the test
// ends.
func Replay(t testing.TB, changes []kvlog.Change) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "replayed.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error { return kvlog.Apply(tx, changes) }); err != nil {
		t.Fatalf("replay: %v", err)
	}
	return db
}

// Contents lists every bucket and key of a store, depth first in key
// order, one line each: "bucket <path> seq=<sequence>" or "<path> <key> = <value>", names
// and bytes in hex.
func Contents(t testing.TB, db kvlog.BoltStore) []string {
	t.Helper()
	var out []string
	var walk func(path []string, b *bolt.Bucket) error
	walk = func(path []string, b *bolt.Bucket) error {
		out = append(out, fmt.Sprintf("bucket %s seq=%d", strings.Join(path, "/"), b.Sequence()))
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				return walk(append(path[:len(path):len(path)], fmt.Sprintf("%x", k)), b.Bucket(k))
			}
			out = append(out, fmt.Sprintf("%s %x = %x", strings.Join(path, "/"), k, v))
			return nil
		})
	}
	err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return walk([]string{fmt.Sprintf("%x", name)}, b)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// SameContents fails the test unless stores a and b hold the same buckets,
// keys and values, and reports the first difference.
func SameContents(t testing.TB, a, b kvlog.BoltStore) {
	t.Helper()
	ca, cb := Contents(t, a), Contents(t, b)
	for i := range min(len(ca), len(cb)) {
		if ca[i] != cb[i] {
			t.Fatalf("stores differ at line %d:\n  %s\n  %s", i, ca[i], cb[i])
		}
	}
	if len(ca) != len(cb) {
		t.Fatalf("stores differ: %d lines, %d lines", len(ca), len(cb))
	}
}
