// Package atomicfile replaces small files so that a crash leaves either the
// old or the new content, never a torn one (Kafka's CheckpointFile and
// Utils.atomicMoveWithFallback).
package atomicfile

import (
	"os"
	"path/filepath"
)

// TmpSuffix names the temporary file a write goes through; start-up
// recovery deletes leftovers.
const TmpSuffix = ".tmp"

// Write writes data to path via a synced temporary file and a rename, then
// syncs the directory so the rename is durable too.
func Write(path string, data []byte) error {
	tmp := path + TmpSuffix
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir fsyncs a directory so that creates, renames and removes in it
// are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
