package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// writtenLog builds a closed single-segment log of n batches and returns its dir,
// the .log bytes and the end position of every batch.
func writtenLog(t *testing.T, n int, cfg LogConfig) (dir string, orig []byte, ends []int) {
	t.Helper()
	dir = t.TempDir()
	l := openTestLog(t, dir, cfg, false, nil)
	for i := range n {
		var recs []testRec
		for j := range i%3 + 1 {
			recs = append(recs, rec(fmt.Sprintf("v%d-%d-%s", i, j, bytes.Repeat([]byte("p"), 40*i)), int64(1000+i)))
		}
		appendOK(t, l, newBatch(t, batchOpts{codec: int8(i % 5)}, recs...), 1)
		ends = append(ends, int(l.activeSegment().size()))
	}
	if err := l.close(true); err != nil {
		t.Fatal(err)
	}
	return dir, readFile(t, segmentFile(dir, 0, logFileSuffix)), ends
}

// checkValidPrefix asserts the prefix property: every segment file of dir
// concatenated is a prefix of want, made of whole CRC-valid batches with continuous
// offsets from 0, and the log's end offset matches.
func checkValidPrefix(t *testing.T, l *Log, want []byte) {
	t.Helper()
	var got []byte
	next := int64(0)
	for _, seg := range *l.segments.Load() {
		b := readFile(t, seg.log.path)
		if seg.baseOffset != next {
			t.Fatalf("segment base %d, want %d", seg.baseOffset, next)
		}
		for p := b; len(p) > 0; {
			h, err := ParseBatchHeader(p)
			if err != nil || h.Size() > len(p) || VerifyBatchCRC(p[:h.Size()]) != nil || h.BaseOffset != next {
				t.Fatalf("invalid batch after recovery at offset %d: %+v %v", next, h, err)
			}
			next = h.LastOffset() + 1
			p = p[h.Size():]
		}
		got = append(got, b...)
	}
	if !bytes.HasPrefix(want, got) {
		t.Fatalf("recovered log (%d bytes) is not a prefix of what was written (%d bytes)", len(got), len(want))
	}
	if l.LogEndOffset() != next {
		t.Fatalf("LEO %d, batches end at %d", l.LogEndOffset(), next)
	}
}

func TestRecoverActiveSegment(t *testing.T) {
	t.Parallel()
	const n = 8
	cfg := testLogConfig()
	cfg.IndexIntervalBytes = 100
	_, orig, ends := writtenLog(t, n, cfg)
	offsetsBefore := func(pos int) int64 { // end offset of the batches in orig[:pos]
		var off int64
		for p := orig[:pos]; len(p) > 0; {
			h, _ := ParseBatchHeader(p)
			off = h.LastOffset() + 1
			p = p[h.Size():]
		}
		return off
	}
	lastStart := ends[n-2]
	tests := []struct {
		name    string
		corrupt func([]byte) []byte
		keep    int // bytes of orig that survive
	}{
		{"intact", func(b []byte) []byte { return b }, len(orig)},
		{"torn last batch", func(b []byte) []byte { return b[:len(b)-5] }, lastStart},
		{"torn header", func(b []byte) []byte { return b[:lastStart+30] }, lastStart},
		{"flipped byte in last batch", func(b []byte) []byte { b[len(b)-3] ^= 0x40; return b }, lastStart},
		{"flipped byte in batch 3", func(b []byte) []byte { b[ends[2]+BatchHeaderSize+2] ^= 1; return b }, ends[2]},
		{"flipped crc of first batch", func(b []byte) []byte { b[crcOffset] ^= 1; return b }, 0},
		{"garbage appended", func(b []byte) []byte { return append(b, []byte("garbage that is not a batch at all, really not")...) }, len(orig)},
		{"zeros appended", func(b []byte) []byte { return append(b, make([]byte, 4096)...) }, len(orig)},
		{"huge batch length", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[lastStart+batchLengthOffset:], 1<<30)
			return b
		}, lastStart},
		{"offsets go back", func(b []byte) []byte { // base offsets are outside the CRC (gaps are fine: compaction)
			binary.BigEndian.PutUint64(b[lastStart:], uint64(offsetsBefore(lastStart)-1))
			return b
		}, lastStart},
		{"bad magic", func(b []byte) []byte { b[ends[4]+magicOffset] = 1; return b }, ends[4]},
		{"empty file", func(b []byte) []byte { return nil }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			os.WriteFile(segmentFile(dir, 0, logFileSuffix), tt.corrupt(bytes.Clone(orig)), 0o644)
			l := openTestLog(t, dir, cfg, false, nil)
			checkValidPrefix(t, l, orig)
			if size := l.Size(); size != int64(tt.keep) {
				t.Fatalf("kept %d bytes, want %d", size, tt.keep)
			}
			wantLEO := offsetsBefore(tt.keep)
			if l.LogEndOffset() != wantLEO || l.HighWatermark() != wantLEO {
				t.Fatalf("LEO %d HW %d, want %d", l.LogEndOffset(), l.HighWatermark(), wantLEO)
			}
			if wantLEO > 0 {
				if got := readRecords(t, l, 0); got[len(got)-1].Offset != wantLEO-1 {
					t.Fatalf("last record %d, want %d", got[len(got)-1].Offset, wantLEO-1)
				}
			}
			// The log continues at its end offset, and survives another reopen.
			info := appendOK(t, l, newBatch(t, batchOpts{}, rec("after", 1)), 2)
			if info.FirstOffset != wantLEO {
				t.Fatalf("append after recovery got offset %d, want %d", info.FirstOffset, wantLEO)
			}
			l.close(true)
			l = openTestLog(t, dir, cfg, false, nil)
			if l.LogEndOffset() != wantLEO+1 {
				t.Fatalf("reopen: LEO %d", l.LogEndOffset())
			}
			if got := readRecords(t, l, wantLEO); len(got) != 1 || string(got[0].Value) != "after" {
				t.Fatalf("records after recovery: %v", got)
			}
		})
	}
}

func TestRecoverIndexes(t *testing.T) {
	t.Parallel()
	cfg := testLogConfig()
	cfg.IndexIntervalBytes = 50
	dir0, orig, _ := writtenLog(t, 10, cfg)
	goodIndex := readFile(t, segmentFile(dir0, 0, indexFileSuffix))
	goodTimeIndex := readFile(t, segmentFile(dir0, 0, timeIndexFileSuffix))
	if len(goodIndex) == 0 || len(goodTimeIndex) == 0 {
		t.Fatal("test needs index entries")
	}
	tests := []struct {
		name              string
		index, timeIndex  []byte
		deleteIndexFiles  bool
		clean             bool
		wantIndexRewrites bool
	}{
		{"intact clean", goodIndex, goodTimeIndex, false, true, false},
		{"partial entry", append(bytes.Clone(goodIndex), 1, 2, 3), goodTimeIndex, false, true, true},
		{"entry past end of log", func() []byte {
			b := bytes.Clone(goodIndex)
			binary.BigEndian.PutUint32(b[len(b)-4:], uint32(len(orig)+10))
			return b
		}(), goodTimeIndex, false, true, true},
		{"entry at wrong position", func() []byte {
			b := bytes.Clone(goodIndex)
			binary.BigEndian.PutUint32(b[len(b)-4:], binary.BigEndian.Uint32(b[len(b)-4:])+1)
			return b
		}(), goodTimeIndex, false, true, true},
		{"decreasing offsets", append(bytes.Clone(goodIndex), goodIndex[:8]...), goodTimeIndex, false, true, true},
		{"time index garbage", goodIndex, bytes.Repeat([]byte{0xff}, 24), false, true, true},
		{"time index offset beyond segment", goodIndex, func() []byte {
			b := bytes.Clone(goodTimeIndex)
			binary.BigEndian.PutUint32(b[len(b)-4:], 1<<20)
			return b
		}(), false, true, true},
		{"missing files", nil, nil, true, true, true},
		{"unclean", goodIndex, goodTimeIndex, false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			os.WriteFile(segmentFile(dir, 0, logFileSuffix), orig, 0o644)
			if !tt.deleteIndexFiles {
				os.WriteFile(segmentFile(dir, 0, indexFileSuffix), tt.index, 0o644)
				os.WriteFile(segmentFile(dir, 0, timeIndexFileSuffix), tt.timeIndex, 0o644)
			}
			l := openTestLog(t, dir, cfg, tt.clean, nil)
			checkValidPrefix(t, l, orig)
			if l.Size() != int64(len(orig)) {
				t.Fatalf("log changed: %d bytes", l.Size())
			}
			// Whatever was on disk, the indexes now match a rebuild from the log.
			if got := readFile(t, segmentFile(dir, 0, indexFileSuffix)); !bytes.Equal(got, goodIndex) {
				t.Fatalf(".index not rebuilt:\n got %x\nwant %x", got, goodIndex)
			}
			if got := readFile(t, segmentFile(dir, 0, timeIndexFileSuffix)); !bytes.Equal(got, goodTimeIndex) {
				t.Fatalf(".timeindex not rebuilt:\n got %x\nwant %x", got, goodTimeIndex)
			}
			readRecords(t, l, 0)
			if off, _, ok, err := l.OffsetForTimestamp(1005); !ok || err != nil || off != offsetForBatch(orig, 5) {
				t.Fatalf("OffsetForTimestamp after index recovery: %d %v %v", off, ok, err)
			}
		})
	}
}

// offsetForBatch is the base offset of the i-th batch of a .log image.
func offsetForBatch(b []byte, i int) int64 {
	for ; ; i-- {
		h, _ := ParseBatchHeader(b)
		if i == 0 {
			return h.BaseOffset
		}
		b = b[h.Size():]
	}
}

func TestRecoverOlderSegments(t *testing.T) {
	t.Parallel()
	cfg := testLogConfig()
	cfg.SegmentBytes = 600
	cfg.IndexIntervalBytes = 100
	build := func(t *testing.T) (string, []byte, []string) {
		dir := t.TempDir()
		l := openTestLog(t, dir, cfg, false, nil)
		for i := range 30 {
			appendOK(t, l, newBatch(t, batchOpts{}, rec(fmt.Sprintf("value-%03d-%s", i, bytes.Repeat([]byte("z"), i*3)), int64(i))), 0)
		}
		l.close(true)
		files := segmentFiles(t, dir, logFileSuffix)
		if len(files) < 4 {
			t.Fatalf("want >= 4 segments, have %d", len(files))
		}
		var all []byte
		for _, f := range files {
			all = append(all, readFile(t, f)...)
		}
		return dir, all, files
	}

	t.Run("corrupt tail of an older segment drops the later ones", func(t *testing.T) {
		t.Parallel()
		dir, all, files := build(t)
		b := readFile(t, files[1])
		b[len(b)-2] ^= 0xff
		os.WriteFile(files[1], b, 0o644)
		l := openTestLog(t, dir, cfg, false, nil)
		checkValidPrefix(t, l, all)
		if l.NumSegments() != 2 {
			t.Fatalf("%d segments, want 2", l.NumSegments())
		}
		if left := segmentFiles(t, dir, logFileSuffix); len(left) != 2 {
			t.Fatalf("segment files left: %v", left)
		}
	})
	t.Run("missing middle segment", func(t *testing.T) {
		t.Parallel()
		dir, all, files := build(t)
		os.Remove(files[2])
		l := openTestLog(t, dir, cfg, false, nil)
		checkValidPrefix(t, l, all)
		if l.NumSegments() != 2 {
			t.Fatalf("%d segments, want 2", l.NumSegments())
		}
	})
	t.Run("clean shutdown trusts files but checks structure", func(t *testing.T) {
		t.Parallel()
		dir, all, files := build(t)
		b := readFile(t, files[0])
		os.WriteFile(files[0], b[:len(b)-1], 0o644) // torn: the tail scan notices
		l := openTestLog(t, dir, cfg, true, nil)
		checkValidPrefix(t, l, all)
		if l.NumSegments() != 1 {
			t.Fatalf("%d segments, want 1", l.NumSegments())
		}
	})
	t.Run("stray files are removed", func(t *testing.T) {
		t.Parallel()
		dir, all, _ := build(t)
		for _, name := range []string{"00000000000000000003.log.deleted", "00000000000000000003.index.swap", "x.cleaned",
			leaderEpochCheckpointFile + ".tmp", "00000000000000099999.index", "00000000000000099999.timeindex"} {
			os.WriteFile(filepath.Join(dir, name), []byte("junk"), 0o644)
		}
		l := openTestLog(t, dir, cfg, true, nil)
		checkValidPrefix(t, l, all)
		if l.LogEndOffset() != 30 {
			t.Fatalf("LEO %d", l.LogEndOffset())
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if _, ok := offsetFromFileName(e.Name(), logFileSuffix); ok {
				continue
			}
			if _, ok := offsetFromFileName(e.Name(), indexFileSuffix); ok && e.Name() != "00000000000000099999.index" {
				continue
			}
			if _, ok := offsetFromFileName(e.Name(), timeIndexFileSuffix); ok && e.Name() != "00000000000000099999.timeindex" {
				continue
			}
			if _, ok := offsetFromFileName(e.Name(), ".snapshot"); ok || e.Name() == leaderEpochCheckpointFile {
				continue
			}
			t.Errorf("stray file left: %s", e.Name())
		}
	})
}

func TestLogStartBeyondData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := openTestLog(t, dir, testLogConfig(), false, nil)
	for range 3 {
		appendOK(t, l, newBatch(t, batchOpts{}, rec("x", 1)), 0)
	}
	l.close(true)
	l, err := openLog(logParams{dir: dir, topic: "t", config: testLogConfig(), logStartOffset: 10, now: newFakeClock().Now, logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer l.close(false)
	if l.LogStartOffset() != 10 || l.LogEndOffset() != 10 || l.NumSegments() != 1 || l.activeSegment().baseOffset != 10 {
		t.Fatalf("LSO %d LEO %d segments %d", l.LogStartOffset(), l.LogEndOffset(), l.NumSegments())
	}
	if info := appendOK(t, l, newBatch(t, batchOpts{}, rec("x", 1)), 0); info.FirstOffset != 10 {
		t.Fatalf("first offset %d", info.FirstOffset)
	}
}
