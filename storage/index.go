package storage

import (
	"errors"
	"os"
	"sync/atomic"
)

// indexFile is the file half shared by OffsetIndex and TimeIndex (Kafka
// AbstractIndex), without the mmap: the entries live in a Go slice and each new
// entry is one small positioned write at the end of the file. The file is only read
// when a segment is loaded. A failed write marks the file broken; it is then deleted
// on close so the next load rebuilds it from the log instead of trusting it.
//
// The file is opened, and created, by the first write, and stays open until
// the segment closes: an index that is only read holds no descriptor, so
// thousands of idle partitions cost one descriptor each (the .log), and a
// new partition creates one file, not three. A missing file loads as an
// empty index, which is valid for any segment (lookups then scan from its
// start until recovery or appends add entries).
type indexFile struct {
	file   atomic.Pointer[os.File] // nil until the first write
	path   string
	dirty  atomic.Bool // written since the last fsync
	broken atomic.Bool // a write failed: the file no longer matches the entries
}

// openIndexFile reads an index file (missing: empty) without keeping it open;
// exists false says the caller knows it is missing.
func openIndexFile(path string, exists bool) (*indexFile, []byte, error) {
	if !exists {
		return &indexFile{path: path}, nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	return &indexFile{path: path}, b, nil
}

// writable returns the open file, opening it first if needed. Writes come
// from one goroutine at a time (the segment's appender, under the log lock).
func (x *indexFile) writable() (*os.File, error) {
	if f := x.file.Load(); f != nil {
		return f, nil
	}
	f, err := openFile(x.path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	x.file.Store(f)
	return f, nil
}

// writeEntry writes one encoded entry at byte position pos.
func (x *indexFile) writeEntry(entry []byte, pos int64) {
	if x.broken.Load() {
		return
	}
	f, err := x.writable()
	if err == nil {
		_, err = f.WriteAt(entry, pos)
	}
	if err != nil {
		x.broken.Store(true)
		return
	}
	x.dirty.Store(true)
}

// rewrite replaces the whole file with b (after a rebuild or truncation).
// Recovery rebuilds the indexes of thousands of segments at once, so a
// file that was not open is closed again afterwards (flush reopens it to
// sync it), and an empty index is no file at all.
func (x *indexFile) rewrite(b []byte) {
	if len(b) == 0 {
		if f := x.file.Swap(nil); f != nil {
			f.Close()
		}
		if err := os.Remove(x.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			x.broken.Store(true)
			return
		}
		x.broken.Store(false)
		x.dirty.Store(false)
		return
	}
	wasOpen := x.file.Load() != nil
	f, err := x.writable()
	if err == nil {
		err = f.Truncate(0)
	}
	if err == nil {
		_, err = f.WriteAt(b, 0)
	}
	if !wasOpen {
		if f := x.file.Swap(nil); f != nil {
			f.Close()
		}
	}
	if err != nil {
		x.broken.Store(true)
		return
	}
	x.broken.Store(false)
	x.dirty.Store(true)
}

func (x *indexFile) flush() error {
	if x.broken.Load() || !x.dirty.Swap(false) {
		return nil
	}
	f := x.file.Load()
	if f == nil { // written by rewrite, then closed
		var err error
		if f, err = os.OpenFile(x.path, os.O_RDWR, 0); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // the segment was deleted meanwhile
			}
			x.dirty.Store(true)
			return err
		}
		defer f.Close()
	}
	if err := f.Sync(); err != nil {
		if errors.Is(err, os.ErrClosed) {
			return nil // the segment was deleted meanwhile
		}
		x.dirty.Store(true)
		return err
	}
	return nil
}

// close closes the file, removing it if it no longer matches the entries.
func (x *indexFile) close() error {
	var err error
	if f := x.file.Swap(nil); f != nil {
		err = f.Close()
	}
	if x.broken.Load() {
		os.Remove(x.path)
	}
	return err
}

// remove closes and deletes the file (segment deletion).
func (x *indexFile) remove() {
	if f := x.file.Swap(nil); f != nil {
		f.Close()
	}
	os.Remove(x.path)
}

// maxIndexEntries is how many entries of entrySize fit in segment.index.bytes
// (AbstractIndex.maxEntries).
func maxIndexEntries(segmentIndexBytes int64, entrySize int) int {
	return int(segmentIndexBytes / int64(entrySize))
}
