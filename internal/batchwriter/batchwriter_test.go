package batchwriter

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestWriterAppliesQueuedChangesInOrder(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w := New(db)
	put := func(k, v string) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			return b.Put([]byte(k), []byte(v))
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
	if err := <-w.Enqueue(func(*bolt.Tx) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("failing change: %v", err)
	}
	if err := <-w.Enqueue(put("k", "3")); err != nil {
		t.Errorf("after a failed batch: %v", err)
	}
	w.Close()
}
