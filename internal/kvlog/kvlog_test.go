package kvlog_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/kbroker/kbroker/internal/kvlog"
	"github.com/kbroker/kbroker/internal/kvlog/kvlogtest"
)

func openDB(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func p(names ...string) [][]byte {
	out := make([][]byte, len(names))
	for i, n := range names {
		out[i] = []byte(n)
	}
	return out
}

func TestTx(t *testing.T) {
	t.Parallel()
	type step func(tx *kvlog.Tx) error
	put := func(k, v string, path ...string) step {
		return func(tx *kvlog.Tx) error { return tx.Put(p(path...), []byte(k), []byte(v)) }
	}
	del := func(k string, path ...string) step {
		return func(tx *kvlog.Tx) error { return tx.Delete(p(path...), []byte(k)) }
	}
	delBucket := func(path ...string) step {
		return func(tx *kvlog.Tx) error { return tx.DeleteBucket(p(path...)) }
	}
	create := func(path ...string) step {
		return func(tx *kvlog.Tx) error { return tx.CreateBucket(p(path...)) }
	}
	for _, tc := range []struct {
		name    string
		steps   []step
		want    []string // kvlogtest.Contents
		changes int      // recorded
		wantErr bool
	}{
		{
			name:    "put creates nested buckets",
			steps:   []step{put("k", "v", "a", "b", "c")},
			want:    []string{"bucket 61 seq=0", "bucket 61/62 seq=0", "bucket 61/62/63 seq=0", "61/62/63 6b = 76"},
			changes: 1,
		},
		{
			name:    "put overwrites",
			steps:   []step{put("k", "1", "a"), put("k", "2", "a")},
			want:    []string{"bucket 61 seq=0", "61 6b = 32"},
			changes: 2,
		},
		{
			name:    "delete a key",
			steps:   []step{put("k", "v", "a"), put("l", "w", "a"), del("k", "a")},
			want:    []string{"bucket 61 seq=0", "61 6c = 77"},
			changes: 3,
		},
		{
			name:    "delete a missing key or from a missing bucket",
			steps:   []step{create("a"), del("k", "a"), del("k", "x", "y"), del("k", "a", "y")},
			want:    []string{"bucket 61 seq=0"},
			changes: 4,
		},
		{
			name:    "delete a nested bucket",
			steps:   []step{put("k", "v", "a", "b"), put("k", "v", "a", "c", "d"), delBucket("a", "c")},
			want:    []string{"bucket 61 seq=0", "bucket 61/62 seq=0", "61/62 6b = 76"},
			changes: 3,
		},
		{
			name:    "delete a top-level bucket",
			steps:   []step{put("k", "v", "a", "b"), put("k", "v", "z"), delBucket("a")},
			want:    []string{"bucket 7a seq=0", "7a 6b = 76"},
			changes: 3,
		},
		{
			name:    "delete a missing bucket",
			steps:   []step{create("a"), delBucket("a", "b"), delBucket("x"), delBucket("x", "y", "z")},
			want:    []string{"bucket 61 seq=0"},
			changes: 4,
		},
		{
			name:    "create buckets, existing or not",
			steps:   []step{create("a", "b"), create("a"), create("a", "b")},
			want:    []string{"bucket 61 seq=0", "bucket 61/62 seq=0"},
			changes: 3,
		},
		{
			name:    "put without a path",
			steps:   []step{put("k", "v")},
			wantErr: true,
		},
		{
			name:    "put through a key",
			steps:   []step{put("k", "v", "a"), put("x", "y", "a", "k")},
			wantErr: true,
		},
		{
			name:    "delete a bucket as a key",
			steps:   []step{put("k", "v", "a", "b"), del("b", "a")},
			wantErr: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := openDB(t)
			var changes []kvlog.Change
			err := kvlog.Local(db).Update(func(tx *kvlog.Tx) error {
				for _, s := range tc.steps {
					if err := s(tx); err != nil {
						return err
					}
				}
				changes = tx.Changes()
				return nil
			})
			if tc.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := kvlogtest.Contents(t, db); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("contents\n got %q\nwant %q", got, tc.want)
			}
			if len(changes) != tc.changes {
				t.Errorf("%d changes recorded, want %d", len(changes), tc.changes)
			}
			// Replayed onto an empty store, through the encoding, the
			// changes give the same store.
			decoded, err := kvlog.Decode(kvlog.Encode(changes))
			if err != nil {
				t.Fatal(err)
			}
			kvlogtest.SameContents(t, db, kvlogtest.Replay(t, decoded))
		})
	}
}

// A recorded change's path shares no memory with the caller's, which may
// be reused; consecutive changes in one bucket share one copy.
func TestTxCopies(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	path, k, v := p("a"), []byte("k"), []byte("v")
	var changes []kvlog.Change
	err := kvlog.Local(db).Update(func(tx *kvlog.Tx) error {
		if err := tx.Put(path, k, v); err != nil {
			return err
		}
		if err := tx.Put(p("a"), []byte("l"), v); err != nil {
			return err
		}
		path[0][0] = 'X'
		changes = tx.Changes()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []kvlog.Change{
		{Op: kvlog.OpPut, Path: p("a"), Key: []byte("k"), Value: []byte("v")},
		{Op: kvlog.OpPut, Path: p("a"), Key: []byte("l"), Value: []byte("v")},
	}
	if !reflect.DeepEqual(changes, want) {
		t.Errorf("changes %+v, want %+v", changes, want)
	}
	if &changes[0].Path[0][0] != &changes[1].Path[0][0] {
		t.Error("consecutive changes in one bucket do not share their path")
	}
	if got := kvlogtest.Contents(t, db); !reflect.DeepEqual(got, []string{"bucket 61 seq=0", "61 6b = 76", "61 6c = 76"}) {
		t.Errorf("contents %q", got)
	}
}

// A failed Update commits nothing, whatever its Tx recorded.
func TestLocalRollsBack(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	boom := errors.New("boom")
	err := kvlog.Local(db).Update(func(tx *kvlog.Tx) error {
		if err := tx.Put(p("a"), []byte("k"), []byte("v")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if got := kvlogtest.Contents(t, db); len(got) != 0 {
		t.Errorf("contents %q after a failed update", got)
	}
}

// Many transactions of mixed writes, replayed in commit order onto an empty
// store, rebuild it exactly.
func TestReplayRebuildsStore(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	rec := &kvlogtest.Recorder{DB: db}
	for i := range 200 {
		err := rec.Update(func(tx *kvlog.Tx) error {
			g := []byte{'g', byte('0' + i%7)}
			pid := []byte{byte(i % 3)}
			switch i % 5 {
			case 0, 1:
				return tx.Put([][]byte{[]byte("offsets"), g}, []byte{byte(i % 11)}, bytes.Repeat([]byte{byte(i)}, i%40))
			case 2:
				return tx.Put([][]byte{[]byte("staged"), g, pid}, []byte{byte(i % 4)}, []byte{byte(i)})
			case 3:
				if err := tx.Delete([][]byte{[]byte("offsets"), g}, []byte{byte(i % 11)}); err != nil {
					return err
				}
				return tx.DeleteBucket([][]byte{[]byte("staged"), g, pid})
			default:
				return tx.DeleteBucket([][]byte{[]byte("staged"), g})
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	changes, commits := rec.Changes()
	if commits != 200 || len(changes) < 200 {
		t.Fatalf("%d commits, %d changes", commits, len(changes))
	}
	kvlogtest.SameContents(t, db, kvlogtest.Replay(t, changes))

	// A dump, through the encoding, rebuilds the same store too (empty
	// buckets included: the mix above leaves some).
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte("empty"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var dump []kvlog.Change
	db.View(func(tx *bolt.Tx) error { dump = kvlog.Dump(tx); return nil })
	decoded, err := kvlog.Decode(kvlog.Encode(dump))
	if err != nil {
		t.Fatal(err)
	}
	kvlogtest.SameContents(t, db, kvlogtest.Replay(t, decoded))
}

func TestEncodeDecode(t *testing.T) {
	t.Parallel()
	changes := []kvlog.Change{
		{Op: kvlog.OpCreateBucket, Path: p("groups")},
		{Op: kvlog.OpPut, Path: p("group-offsets", "g"), Key: []byte("t\x00\x00\x00\x00\x01"), Value: bytes.Repeat([]byte{7}, 300)},
		{Op: kvlog.OpPut, Path: p("a"), Key: []byte("k"), Value: []byte{}},
		{Op: kvlog.OpDelete, Path: p("a", "b"), Key: []byte("k")},
		{Op: kvlog.OpDeleteBucket, Path: p("a", "b", "c")},
	}
	b := kvlog.Encode(changes)
	got, err := kvlog.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, changes) {
		t.Errorf("round trip\n got %+v\nwant %+v", got, changes)
	}
	if got, err := kvlog.Decode(kvlog.Encode(nil)); err != nil || len(got) != 0 {
		t.Errorf("no changes: %v, %v", got, err)
	}
	for _, bad := range [][]byte{
		nil,
		{},
		{2, 0},                  // another version
		{1},                     // no count
		{1, 1},                  // a count past the end
		{1, 1, 9, 1, 1, 'a'},    // unknown op
		{1, 1, 3, 0},            // empty path
		{1, 1, 3, 1, 5, 'a'},    // a name past the end
		{1, 1, 2, 1, 1, 'a'},    // a delete without a key
		{1, 1, 3, 1, 1, 'a', 0}, // bytes left over
		{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, // a huge count
		b[:len(b)-1],    // truncated
		{1, 0x80, 0x00}, // an overlong count
	} {
		if _, err := kvlog.Decode(bad); !errors.Is(err, kvlog.ErrMalformed) {
			t.Errorf("Decode(%x) = %v, want ErrMalformed", bad, err)
		}
	}
}

// FuzzDecode checks that Decode never panics, and that whatever it accepts
// encodes back to the same bytes (the encoding has one form per batch).
func FuzzDecode(f *testing.F) {
	f.Add(kvlog.Encode(nil))
	f.Add(kvlog.Encode([]kvlog.Change{
		{Op: kvlog.OpCreateBucket, Path: p("groups")},
		{Op: kvlog.OpPut, Path: p("a", "b"), Key: []byte("k"), Value: []byte("v")},
		{Op: kvlog.OpDelete, Path: p("a", "b"), Key: []byte("k")},
		{Op: kvlog.OpDeleteBucket, Path: p("a")},
	}))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		changes, err := kvlog.Decode(b)
		if err != nil {
			if !errors.Is(err, kvlog.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if again := kvlog.Encode(changes); !bytes.Equal(again, b) {
			t.Fatalf("Decode(%x) re-encodes as %x", b, again)
		}
	})
}

// CreateBuckets writes once on a new store and never again: a restart
// commits nothing.
func TestCreateBucketsWritesOnlyWhatIsMissing(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rec := &kvlogtest.Recorder{DB: db}
	for range 2 {
		if err := kvlog.CreateBuckets(rec, []byte("a"), []byte("b")); err != nil {
			t.Fatal(err)
		}
	}
	if _, commits := rec.Changes(); commits != 1 {
		t.Fatalf("%d commits, want 1", commits)
	}
	if err := kvlog.CreateBuckets(rec, []byte("a"), []byte("c")); err != nil {
		t.Fatal(err)
	}
	if _, commits := rec.Changes(); commits != 2 {
		t.Fatalf("%d commits after a missing bucket, want 2", commits)
	}
	db.View(func(tx *bolt.Tx) error {
		for _, n := range []string{"a", "b", "c"} {
			if tx.Bucket([]byte(n)) == nil {
				t.Errorf("bucket %s missing", n)
			}
		}
		return nil
	})
}
