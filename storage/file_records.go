package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// FileRecords is the .log file of one segment (Kafka FileRecords): batches appended
// with one positioned write each, read with pread or sent with sendfile. The file
// offset is never used, so any number of readers share one descriptor.
//
// The descriptor is reference counted: the owning LogSegment holds one reference and
// every FileRegion handed out by a read holds another. Deleting a segment renames the
// file to ".deleted" and drops the segment's reference; the descriptor is closed and
// the file removed when the last FileRegion is released, so an in-flight fetch never
// sees its bytes vanish.
type FileRecords struct {
	file  *os.File
	size  atomic.Int64 // bytes in the file; written only under the owning Log's lock
	refs  atomic.Int64
	dirty atomic.Bool // appended to since the last fsync

	mu            sync.Mutex // guards path and removeOnClose
	path          string
	removeOnClose bool
}

func openFileRecords(path string) (*FileRecords, error) {
	f, err := openFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	fr := &FileRecords{file: f, path: path}
	fr.size.Store(st.Size())
	fr.refs.Store(1)
	return fr, nil
}

func (f *FileRecords) sizeInBytes() int64 { return f.size.Load() }

// append writes b at the end of the file in one pwrite. On error the file is cut back
// to its previous size so that a failed append leaves no partial batch behind.
func (f *FileRecords) append(b []byte) (int64, error) {
	pos := f.size.Load()
	n, err := f.file.WriteAt(b, pos)
	if err != nil {
		if terr := f.file.Truncate(pos); terr != nil {
			err = errors.Join(err, fmt.Errorf("truncating partial write: %w", terr))
		}
		return pos, err
	}
	f.dirty.Store(true)
	f.size.Add(int64(n))
	return pos, nil
}

func (f *FileRecords) readAt(p []byte, off int64) (int, error) { return f.file.ReadAt(p, off) }

// truncateTo cuts the file to size bytes: recovery, before there are readers,
// and Log.TruncateTo, after it has hidden the bytes past size from new reads.
func (f *FileRecords) truncateTo(size int64) error {
	if err := f.file.Truncate(size); err != nil {
		return err
	}
	f.size.Store(size)
	f.dirty.Store(true)
	return nil
}

// flush fsyncs the file if it has unflushed appends.
func (f *FileRecords) flush() error {
	if !f.dirty.Swap(false) {
		return nil
	}
	if err := f.file.Sync(); err != nil {
		f.dirty.Store(true)
		return err
	}
	return nil
}

// tryAcquire takes a reference unless the file is already closed.
func (f *FileRecords) tryAcquire() bool {
	for {
		n := f.refs.Load()
		if n <= 0 {
			return false
		}
		if f.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops a reference; the last one closes the descriptor and, for a deleted
// segment, removes the file.
func (f *FileRecords) release() {
	if f.refs.Add(-1) != 0 {
		return
	}
	f.file.Close()
	f.mu.Lock()
	remove, path := f.removeOnClose, f.path
	f.mu.Unlock()
	if remove {
		os.Remove(path)
	}
}

// markDeleted renames the file to <name>.deleted and arranges for it to be removed
// when the last reference goes (LogSegment.changeFileSuffixes + deleteIfExists).
func (f *FileRecords) markDeleted() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	newPath := f.path + deletedFileSuffix
	if err := os.Rename(f.path, newPath); err != nil {
		return err
	}
	f.path, f.removeOnClose = newPath, true
	return nil
}

// slice returns a FileRegion of [pos, pos+size). The caller must hold a reference; the
// region takes its own.
func (f *FileRecords) slice(pos, size int64) FileRegion {
	if size <= 0 {
		return FileRegion{}
	}
	f.refs.Add(1)
	return FileRegion{h: &regionHandle{f: f}, pos: pos, size: size}
}

// FileRegion is a byte range of a segment file, handed out by Log.Read, that stays
// readable until Release even if retention or topic deletion removes the segment in
// the meantime. The zero FileRegion is empty. Copies share one reference: Release is
// idempotent across them, and a released region can no longer be read.
type FileRegion struct {
	h         *regionHandle
	pos, size int64
}

type regionHandle struct {
	f        *FileRecords
	released atomic.Bool
}

// Len is the number of bytes in the region.
func (r FileRegion) Len() int64 { return r.size }

// Release drops the region's reference to the segment file. Safe on a zero region and
// safe to call more than once.
func (r FileRegion) Release() {
	if r.h != nil && r.h.released.CompareAndSwap(false, true) {
		r.h.f.release()
	}
}

func (r FileRegion) usable() error {
	if r.h != nil && r.h.released.Load() {
		return fmt.Errorf("%w: file region already released", ErrClosed)
	}
	return nil
}

// ReadAt reads from the region; off is relative to the region start. Like
// io.ReaderAt, it returns io.EOF when fewer than len(p) bytes remain.
func (r FileRegion) ReadAt(p []byte, off int64) (int, error) {
	if err := r.usable(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, errors.New("storage: negative offset")
	}
	if off >= r.size {
		return 0, io.EOF
	}
	want := p
	if rem := r.size - off; int64(len(want)) > rem {
		want = want[:rem]
	}
	n, err := r.h.f.readAt(want, r.pos+off)
	if err == nil && n < len(p) {
		err = io.EOF
	}
	if err == io.EOF && n == len(want) && len(want) == len(p) {
		err = nil
	}
	return n, err
}

// Bytes copies the region into a new slice (tests, and connections that cannot use
// SendTo).
func (r FileRegion) Bytes() ([]byte, error) {
	b := make([]byte, r.size)
	if r.size == 0 {
		return b, nil
	}
	n, err := r.ReadAt(b, 0)
	if n == len(b) {
		err = nil
	} else if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return b[:n], err
}
