// Package journal is an append-only file of key/value changes, replayed at
// open and rewritten when mostly dead: the log a single node keeps its
// transaction state in, as Kafka keeps it in the __transaction_state
// partitions. A change is answered once written; it is fsynced as the
// broker's log flush policy says (log.flush.interval.messages and
// log.flush.interval.ms, never by default as in Kafka), so a process crash
// loses nothing answered, and an OS crash what a partition would lose.
//
// The file is a header followed by frames:
//
//	header: "kbjournal" | version 1
//	frame:  length uint32 | crc32c(payload) uint32 | payload
//	payload: key length uvarint | key | op byte | value (op put only)
//
// Replay stops at the first frame that is short or fails its checksum and
// truncates the file there: a torn tail, as log recovery truncates one.
package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/kbroker/kbroker/internal/atomicfile"
)

const (
	opPut    byte = 1
	opDelete byte = 2
)

var (
	header = []byte("kbjournal\x01")
	crc    = crc32.MakeTable(crc32.Castagnoli)
)

// maxFrame bounds a frame's length, so that a corrupt length is a torn
// tail rather than a huge allocation.
const maxFrame = 16 << 20

// ErrClosed answers changes enqueued after Close.
var ErrClosed = errors.New("journal: closed")

// Options is when a journal fsyncs.
type Options struct {
	// SyncEvery fsyncs before answering once this many changes are
	// unsynced (1: every batch); 0 never does.
	SyncEvery int64
	// SyncInterval fsyncs unsynced changes at least this often; 0 never.
	SyncInterval time.Duration
	// OnSync, if set, is told how long each successful fsync (or fsynced
	// rewrite, when compacting) took: the broker's
	// kbroker_log_flush_seconds. It runs on the writer goroutine.
	OnSync func(time.Duration)
	// compactMin is the size below which the file is never rewritten
	// (tests lower it).
	compactMin int64
}

// Journal is an open journal. One goroutine writes: changes enqueued
// concurrently share a write (and an fsync, when one is due).
type Journal struct {
	path string
	opts Options

	mu       sync.Mutex
	closed   bool
	pending  []change
	wake     chan struct{}
	done     chan struct{}
	stopped  chan struct{}
	writeErr error // sticky: a failed write leaves the file's tail unknown

	// Owned by the writer goroutine (and Open, before it starts).
	f        *os.File
	size     int64
	live     map[string][]byte
	liveSize int64 // bytes of the live entries' frames
	unsynced int64
	newFile  bool // created by Open: its directory entry is synced with its first fsync
}

type change struct {
	key   string
	value []byte // nil: delete
	sync  bool   // no change: an fsync of everything before it
	res   chan error
}

// Open opens the journal at path, creating it if missing, and returns its
// live entries. A file that does not start with the journal's header is
// refused rather than overwritten.
func Open(path string, opts Options) (*Journal, map[string][]byte, error) {
	if opts.compactMin == 0 {
		opts.compactMin = 4 << 20
	}
	j := &Journal{path: path, opts: opts, live: map[string][]byte{},
		wake: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{})}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	if err := j.replay(f); err != nil {
		f.Close()
		return nil, nil, err
	}
	j.f = f
	go j.run()
	return j, maps.Clone(j.live), nil
}

// replay reads f into j.live and leaves f positioned after the last good
// frame, the file truncated there.
func (j *Journal) replay(f *os.File) error {
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("journal: read %s: %w", j.path, err)
	}
	if len(data) < len(header) && bytes.HasPrefix(header, data) {
		// New, or its header torn at creation: nothing was ever answered.
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		if _, err := f.WriteAt(header, 0); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		j.newFile = true
		data = header
	}
	if !bytes.HasPrefix(data, header) {
		return fmt.Errorf("journal: %s is not a journal", j.path)
	}
	good := len(header) + replayFrames(data[len(header):], j.apply)
	if good != len(data) {
		if err := f.Truncate(int64(good)); err != nil {
			return fmt.Errorf("journal: truncate torn tail of %s: %w", j.path, err)
		}
	}
	if _, err := f.Seek(int64(good), io.SeekStart); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.size = int64(good)
	return nil
}

// replayFrames calls fn for each whole, valid frame of b in order and
// returns the length of that prefix of b.
func replayFrames(b []byte, fn func(key string, value []byte, frame int)) int {
	off := 0
	for len(b)-off >= 8 {
		n := binary.BigEndian.Uint32(b[off:])
		sum := binary.BigEndian.Uint32(b[off+4:])
		if n > maxFrame || uint64(len(b)-off-8) < uint64(n) {
			break
		}
		payload := b[off+8 : off+8+int(n)]
		if crc32.Checksum(payload, crc) != sum {
			break
		}
		key, value, ok := decodePayload(payload)
		if !ok {
			break
		}
		fn(key, value, 8+int(n))
		off += 8 + int(n)
	}
	return off
}

func decodePayload(p []byte) (key string, value []byte, ok bool) {
	kl, n := binary.Uvarint(p)
	if n <= 0 || kl > uint64(len(p)-n) || uint64(len(p)-n)-kl < 1 {
		return "", nil, false
	}
	key = string(p[n : n+int(kl)])
	rest := p[n+int(kl):]
	switch rest[0] {
	case opPut:
		return key, bytes.Clone(rest[1:]), true
	case opDelete:
		if len(rest) != 1 {
			return "", nil, false
		}
		return key, nil, true
	}
	return "", nil, false
}

func appendFrame(b []byte, key string, value []byte) []byte {
	start := len(b)
	b = append(b, make([]byte, 8)...)
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	if value == nil {
		b = append(b, opDelete)
	} else {
		b = append(b, opPut)
		b = append(b, value...)
	}
	payload := b[start+8:]
	binary.BigEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(payload, crc))
	return b
}

// apply records a replayed or written change in the live view.
func (j *Journal) apply(key string, value []byte, frame int) {
	if old, ok := j.live[key]; ok {
		j.liveSize -= int64(frameSize(key, old))
	}
	if value == nil {
		delete(j.live, key)
		return
	}
	j.live[key] = value
	j.liveSize += int64(frame)
}

func frameSize(key string, value []byte) int {
	return 8 + binary.PutUvarint(make([]byte, binary.MaxVarintLen64), uint64(len(key))) + len(key) + 1 + len(value)
}

// Put stores value under key. The returned channel yields the outcome once
// the change is written (and fsynced, if the policy asks). value is kept:
// the caller must not change it afterwards.
func (j *Journal) Put(key string, value []byte) <-chan error {
	if value == nil {
		value = []byte{}
	}
	return j.enqueue(change{key: key, value: value})
}

// Delete removes key; see Put.
func (j *Journal) Delete(key string) <-chan error { return j.enqueue(change{key: key}) }

// Sync fsyncs everything queued before it, whatever the policy: for a
// change that must not be lost to an OS crash.
func (j *Journal) Sync() <-chan error { return j.enqueue(change{sync: true}) }

func (j *Journal) enqueue(c change) <-chan error {
	c.res = make(chan error, 1)
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		c.res <- ErrClosed
		return c.res
	}
	j.pending = append(j.pending, c)
	j.mu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default:
	}
	return c.res
}

// Close writes what is queued, fsyncs and closes the file. It is
// idempotent.
func (j *Journal) Close() error {
	j.mu.Lock()
	already := j.closed
	j.closed = true
	j.mu.Unlock()
	if !already {
		close(j.done)
	}
	<-j.stopped
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.writeErr
}

func (j *Journal) run() {
	defer close(j.stopped)
	var tick <-chan time.Time
	if j.opts.SyncInterval > 0 {
		t := time.NewTicker(j.opts.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-j.wake:
			j.flush()
		case <-tick:
			if j.unsynced > 0 {
				j.setErr(j.sync())
			}
		case <-j.done:
			j.flush()
			if j.unsynced > 0 {
				j.setErr(j.sync())
			}
			j.setErr(j.f.Close())
			return
		}
	}
}

func (j *Journal) setErr(err error) {
	if err != nil {
		j.mu.Lock()
		if j.writeErr == nil {
			j.writeErr = err
		}
		j.mu.Unlock()
	}
}

// flush writes the queued changes in one write, fsyncs if the policy says
// so, answers them, and rewrites the file if it has grown mostly dead.
func (j *Journal) flush() {
	j.mu.Lock()
	batch := j.pending
	j.pending = nil
	err := j.writeErr
	j.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	if err == nil {
		var buf []byte
		n, syncAsked := int64(0), false
		for _, c := range batch {
			if c.sync {
				syncAsked = true
				continue
			}
			buf = appendFrame(buf, c.key, c.value)
			n++
		}
		if _, err = j.f.Write(buf); err == nil {
			j.size += int64(len(buf))
			j.unsynced += n
			if (syncAsked && j.unsynced > 0) || (j.opts.SyncEvery > 0 && j.unsynced >= j.opts.SyncEvery) {
				err = j.sync()
			}
		}
		j.setErr(err)
		if err == nil {
			for _, c := range batch {
				if !c.sync {
					j.apply(c.key, c.value, frameSize(c.key, c.value))
				}
			}
		}
	}
	for _, c := range batch {
		c.res <- err
	}
	if err == nil && j.size > j.opts.compactMin && j.size > 2*j.liveSize {
		j.setErr(j.compact())
	}
}

func (j *Journal) sync() error {
	began := time.Now()
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal: fsync %s: %w", j.path, err)
	}
	if j.newFile {
		if err := atomicfile.SyncDir(filepath.Dir(j.path)); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		j.newFile = false
	}
	if j.opts.OnSync != nil {
		j.opts.OnSync(time.Since(began))
	}
	j.unsynced = 0
	return nil
}

// compact replaces the file by one holding only the live entries, written
// whole and fsynced before it replaces the old one (so a crash leaves one
// or the other).
func (j *Journal) compact() error {
	buf := slices.Clone(header)
	for _, k := range slices.Sorted(maps.Keys(j.live)) {
		buf = appendFrame(buf, k, j.live[k])
	}
	began := time.Now()
	if err := atomicfile.Write(j.path, buf); err != nil {
		return fmt.Errorf("journal: rewrite %s: %w", j.path, err)
	}
	if j.opts.OnSync != nil { // the rewrite is fsynced, and mostly that
		j.opts.OnSync(time.Since(began))
	}
	f, err := os.OpenFile(j.path, os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return fmt.Errorf("journal: %w", err)
	}
	j.f.Close()
	j.f, j.size, j.unsynced, j.newFile = f, int64(len(buf)), 0, false
	return nil
}
