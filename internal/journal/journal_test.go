package journal

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func open(t testing.TB, path string, opts Options) (*Journal, map[string][]byte) {
	t.Helper()
	j, live, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j, live
}

func wait(t testing.TB, res <-chan error) {
	t.Helper()
	if err := <-res; err != nil {
		t.Fatal(err)
	}
}

func equal(a, b map[string][]byte) bool {
	return maps.EqualFunc(a, b, func(x, y []byte) bool { return bytes.Equal(x, y) })
}

func TestReopenReplaysPutsAndDeletes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j, live := open(t, path, Options{})
	if len(live) != 0 {
		t.Fatalf("new journal holds %v", live)
	}
	wait(t, j.Put("a", []byte("1")))
	wait(t, j.Put("b", []byte("2")))
	wait(t, j.Put("a", []byte("3")))
	wait(t, j.Delete("b"))
	wait(t, j.Put("empty", nil))
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-j.Put("late", []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("put after close: %v", err)
	}
	_, live = open(t, path, Options{})
	if want := map[string][]byte{"a": []byte("3"), "empty": {}}; !equal(live, want) {
		t.Fatalf("replayed %q, want %q", live, want)
	}
}

// A crash mid-write leaves part of a frame: replay keeps the whole frames
// before it and cuts the rest, so the next writes follow good frames.
func TestTornTailIsTruncated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j, _ := open(t, path, Options{})
	wait(t, j.Put("a", []byte("1")))
	wait(t, j.Put("b", []byte("2")))
	j.Close()
	whole, _ := os.ReadFile(path)
	last := frameSize("b", []byte("2"))
	for cut := 1; cut < last; cut++ {
		os.WriteFile(path, whole[:len(whole)-cut], 0o644)
		j, live := open(t, path, Options{})
		if want := map[string][]byte{"a": []byte("1")}; !equal(live, want) {
			t.Fatalf("cut %d: replayed %q, want %q", cut, live, want)
		}
		wait(t, j.Put("c", []byte("3")))
		j.Close()
		_, live = open(t, path, Options{})
		if want := map[string][]byte{"a": []byte("1"), "c": []byte("3")}; !equal(live, want) {
			t.Fatalf("cut %d: after another write replayed %q, want %q", cut, live, want)
		}
	}
}

// A frame whose bytes changed fails its checksum: replay stops there.
func TestCorruptFrameEndsReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j, _ := open(t, path, Options{})
	for i := range 3 {
		wait(t, j.Put(fmt.Sprint(i), []byte("value")))
	}
	j.Close()
	b, _ := os.ReadFile(path)
	second := len(header) + frameSize("0", []byte("value"))
	b[second+10] ^= 0xff
	os.WriteFile(path, b, 0o644)
	_, live := open(t, path, Options{})
	if want := map[string][]byte{"0": []byte("value")}; !equal(live, want) {
		t.Fatalf("replayed %q, want %q", live, want)
	}
	if fi, _ := os.Stat(path); fi.Size() != int64(second) {
		t.Fatalf("file is %d bytes, want %d (cut at the corrupt frame)", fi.Size(), second)
	}
}

func TestRefusesAnotherFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	os.WriteFile(path, []byte("not a journal at all"), 0o644)
	if _, _, err := Open(path, Options{}); err == nil {
		t.Fatal("opened a file that is not a journal")
	}
	if b, _ := os.ReadFile(path); string(b) != "not a journal at all" {
		t.Fatalf("file changed to %q", b)
	}
}

// SyncEvery 1 fsyncs every write before answering it; the default never
// does until asked (Sync) or Close.
func TestSyncPolicy(t *testing.T) {
	dir := t.TempDir()
	// OnSync runs on the writer goroutine; a write's answer comes after
	// its fsync, so the counts are settled when wait returns.
	var alwaysSyncs, neverSyncs atomic.Int64
	always, _ := open(t, filepath.Join(dir, "always"), Options{SyncEvery: 1, OnSync: func(time.Duration) { alwaysSyncs.Add(1) }})
	never, _ := open(t, filepath.Join(dir, "never"), Options{OnSync: func(time.Duration) { neverSyncs.Add(1) }})
	for i := range 5 {
		wait(t, always.Put("k", []byte{byte(i)}))
		wait(t, never.Put("k", []byte{byte(i)}))
	}
	if got := alwaysSyncs.Load(); got != 5 {
		t.Errorf("SyncEvery 1: %d fsyncs for 5 writes", got)
	}
	if got := neverSyncs.Load(); got != 0 {
		t.Errorf("no policy: %d fsyncs before Close", got)
	}
	wait(t, never.Sync())
	if got := neverSyncs.Load(); got != 1 {
		t.Errorf("no policy: %d fsyncs after Sync, want 1", got)
	}
	wait(t, never.Put("k", []byte("last")))
	never.Close()
	if got := neverSyncs.Load(); got != 2 {
		t.Errorf("no policy: %d fsyncs after Close, want 2", got)
	}
}

// Rewriting one key over and over keeps the file small, and what it holds.
func TestCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	opts := Options{compactMin: 1 << 10}
	j, _ := open(t, path, opts)
	wait(t, j.Put("keep", []byte("kept")))
	for i := range 1000 {
		wait(t, j.Put("hot", []byte(fmt.Sprint(i))))
	}
	if fi, _ := os.Stat(path); fi.Size() > 2<<10 {
		t.Fatalf("file grew to %d bytes", fi.Size())
	}
	wait(t, j.Delete("keep"))
	wait(t, j.Put("after", []byte("rewrite")))
	j.Close()
	_, live := open(t, path, opts)
	if want := map[string][]byte{"hot": []byte("999"), "after": []byte("rewrite")}; !equal(live, want) {
		t.Fatalf("replayed %q, want %q", live, want)
	}
}

// Whatever follows the header, Open neither panics nor loses what it
// replayed: a second open replays the same, from a file cut to it.
func FuzzReplay(f *testing.F) {
	f.Add(appendFrame(appendFrame(nil, "a", []byte("1")), "b", nil))
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 7})
	f.Fuzz(func(t *testing.T, tail []byte) {
		path := filepath.Join(t.TempDir(), "j")
		os.WriteFile(path, append(bytes.Clone(header), tail...), 0o644)
		j, live, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		j.Close()
		size, _ := os.Stat(path)
		j, again, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		j.Close()
		if !equal(live, again) {
			t.Fatalf("first open %q, second %q", live, again)
		}
		if size.Size() > int64(len(header)+len(tail)) {
			t.Fatalf("file grew to %d", size.Size())
		}
	})
}
