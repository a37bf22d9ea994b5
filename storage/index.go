package storage

import (
	"errors"
	"io"
	"os"
	"sync/atomic"
)

// indexFile is the file half shared by OffsetIndex and TimeIndex (Kafka
// AbstractIndex), without the mmap: the entries live in a Go slice and each new
// entry is one small positioned write at the end of the file. The file is only read
// when a segment is loaded. A failed write marks the file broken; it is then deleted
// on close so the next load rebuilds it from the log instead of trusting it.
type indexFile struct {
	file   *os.File
	path   string
	dirty  atomic.Bool // written since the last fsync
	broken atomic.Bool // a write failed: the file no longer matches the entries
}

// openIndexFile opens (creating if needed) an index file and returns its contents.
func openIndexFile(path string) (*indexFile, []byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return &indexFile{file: f, path: path}, b, nil
}

// writeEntry writes one encoded entry at byte position pos.
func (x *indexFile) writeEntry(entry []byte, pos int64) {
	if x.broken.Load() {
		return
	}
	if _, err := x.file.WriteAt(entry, pos); err != nil {
		x.broken.Store(true)
		return
	}
	x.dirty.Store(true)
}

// rewrite replaces the whole file with b (after a rebuild or truncation).
func (x *indexFile) rewrite(b []byte) {
	if err := x.file.Truncate(0); err != nil {
		x.broken.Store(true)
		return
	}
	x.broken.Store(false)
	if len(b) > 0 {
		x.writeEntry(b, 0)
	}
	x.dirty.Store(true)
}

func (x *indexFile) flush() error {
	if x.broken.Load() || !x.dirty.Swap(false) {
		return nil
	}
	if err := x.file.Sync(); err != nil {
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
	err := x.file.Close()
	if x.broken.Load() {
		os.Remove(x.path)
	}
	return err
}

// remove closes and deletes the file (segment deletion).
func (x *indexFile) remove() {
	x.file.Close()
	os.Remove(x.path)
}

// maxIndexEntries is how many entries of entrySize fit in segment.index.bytes
// (AbstractIndex.maxEntries).
func maxIndexEntries(segmentIndexBytes int64, entrySize int) int {
	return int(segmentIndexBytes / int64(entrySize))
}
