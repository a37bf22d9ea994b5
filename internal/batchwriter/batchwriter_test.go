package batchwriter

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/kbroker/kbroker/internal/kvlog"
	"github.com/kbroker/kbroker/internal/kvlog/kvlogtest"
)

func TestWriterAppliesQueuedChangesInOrder(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w := New(kvlog.Local(db))
	put := func(k, v string) func(tx *kvlog.Tx) error {
		return func(tx *kvlog.Tx) error {
			return tx.Put([][]byte{[]byte("b")}, []byte(k), []byte(v))
		}
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := <-w.Enqueue(put(string(rune('a'+i%26)), "x")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// Later changes win; a barrier waits for what came before it.
	w.Enqueue(put("k", "1"))
	w.Enqueue(put("k", "2"))
	if err := <-w.Enqueue(nil); err != nil {
		t.Fatal(err)
	}
	db.View(func(tx *bolt.Tx) error {
		if v := string(tx.Bucket([]byte("b")).Get([]byte("k"))); v != "2" {
			t.Errorf("k = %q, want 2", v)
		}
		return nil
	})
	// A failing change fails its batch, and the writer goes on.
	boom := errors.New("boom")
	if err := <-w.Enqueue(func(*kvlog.Tx) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("failing change: %v", err)
	}
	if err := <-w.Enqueue(put("k", "3")); err != nil {
		t.Errorf("after a failed batch: %v", err)
	}
	w.Close()
}

// A batch is one transaction: its changes are captured together, in the
// order they were queued, as one entry a replicated log would append.
func TestWriterBatchIsOneTransaction(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rec := &kvlogtest.Recorder{DB: db}
	w := New(rec)
	defer w.Close()
	// Hold the writer inside a batch so that the next ones queue up.
	started, release := make(chan struct{}), make(chan struct{})
	held := w.Enqueue(func(*kvlog.Tx) error { close(started); <-release; return nil })
	<-started
	var results []<-chan error
	for _, k := range []string{"a", "b", "c"} {
		results = append(results, w.Enqueue(func(tx *kvlog.Tx) error {
			return tx.Put([][]byte{[]byte("b")}, []byte(k), []byte("v"))
		}))
	}
	close(release)
	for _, res := range append(results, held) {
		if err := <-res; err != nil {
			t.Fatal(err)
		}
	}
	changes, commits := rec.Changes()
	if commits != 2 {
		t.Errorf("%d commits, want 2 (the held batch, then the rest)", commits)
	}
	var keys string
	for _, c := range changes {
		keys += string(c.Key)
	}
	if keys != "abc" {
		t.Errorf("changes of keys %q, want abc", keys)
	}
}

// A change enqueued after Close fails at once instead of waiting for ever.
func TestEnqueueAfterClose(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w := New(kvlog.Local(db))
	w.Close()
	if err := <-w.Enqueue(func(*kvlog.Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("enqueue after close: %v, want ErrClosed", err)
	}
	w.Close() // idempotent
}
