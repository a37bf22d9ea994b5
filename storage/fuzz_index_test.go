package storage

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzOffsetIndex: any .index file either fails the sanity check (and is
// rebuilt by the caller) or yields lookups that stay inside the log and never
// go past the target offset. Never panics.
func FuzzOffsetIndex(f *testing.F) {
	f.Add(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 3), 100), int64(4096), int64(50))
	f.Add([]byte{1, 2, 3}, int64(10), int64(10))
	f.Add([]byte{}, int64(0), int64(0))
	f.Fuzz(func(t *testing.T, b []byte, logSize, target int64) {
		path := filepath.Join(t.TempDir(), "00000000000000000100.index")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		idx, err := openOffsetIndex(path, 100, true)
		if err != nil {
			return
		}
		defer idx.close()
		if idx.sanityCheck(logSize, 100+1<<20) != nil {
			return
		}
		off, pos := idx.lookup(target)
		if pos < 0 || (pos > 0 && pos >= logSize) || (off > target && off != 100) {
			t.Fatalf("lookup(%d) = (%d, %d) with log size %d", target, off, pos, logSize)
		}
	})
}

// FuzzTimeIndex: any .timeindex either fails the sanity check or answers
// lookups with offsets inside the segment. Never panics.
func FuzzTimeIndex(f *testing.F) {
	f.Add(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(nil, 1700000000000), 7), int64(1700000000000))
	f.Add([]byte{9, 9, 9}, int64(0))
	f.Fuzz(func(t *testing.T, b []byte, target int64) {
		path := filepath.Join(t.TempDir(), "00000000000000000100.timeindex")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		idx, err := openTimeIndex(path, 100, true)
		if err != nil {
			return
		}
		defer idx.close()
		if idx.sanityCheck(100+1<<20) != nil {
			return
		}
		if _, off := idx.lookup(target); off < 100 || off > 100+1<<20 {
			t.Fatalf("lookup(%d) offset %d outside the segment", target, off)
		}
	})
}

// FuzzEpochCheckpoint: parseEpochCheckpoint never panics; what it accepts is
// strictly ordered and survives being written back and read again.
func FuzzEpochCheckpoint(f *testing.F) {
	f.Add([]byte("0\n2\n0 0\n3 120\n"))
	f.Add([]byte("0\n1\n5\n"))
	f.Add([]byte("0\n99999999\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := parseEpochCheckpoint(b)
		if err != nil {
			return
		}
		var sb strings.Builder
		fmt.Fprintf(&sb, "%d\n%d\n", leaderEpochCheckpointVersion, len(entries))
		for i, e := range entries {
			if i > 0 && (e.epoch <= entries[i-1].epoch || e.startOffset < entries[i-1].startOffset) {
				t.Fatalf("accepted out-of-order entries %v", entries)
			}
			fmt.Fprintf(&sb, "%d %d\n", e.epoch, e.startOffset)
		}
		again, err := parseEpochCheckpoint([]byte(sb.String()))
		if err != nil || !reflect.DeepEqual(normalizeEpochs(entries), normalizeEpochs(again)) {
			t.Fatalf("round trip: %v -> %v (%v)", entries, again, err)
		}
	})
}

func normalizeEpochs(e []epochEntry) []epochEntry {
	if len(e) == 0 {
		return nil
	}
	return e
}
