package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestAppendReadAcrossRolls(t *testing.T) {
	t.Parallel()
	cfg := testLogConfig()
	cfg.SegmentBytes = 2048
	cfg.IndexIntervalBytes = 256
	l := openTestLog(t, t.TempDir(), cfg, false, nil)

	var want []string
	for i := range 120 {
		// 1-3 records per batch, various sizes, some multi-batch appends.
		var recs []testRec
		for j := range i%3 + 1 {
			v := fmt.Sprintf("m%03d-%d-%s", i, j, bytes.Repeat([]byte("x"), i%50))
			recs = append(recs, rec(v, int64(1000+i)))
			want = append(want, v)
		}
		b := newBatch(t, batchOpts{codec: int8(i % 2 * compressionGzip)}, recs...)
		if i%10 == 9 {
			extra := newBatch(t, batchOpts{}, rec(fmt.Sprintf("extra%d", i), int64(1000+i)))
			want = append(want, fmt.Sprintf("extra%d", i))
			b = concat(b, extra)
		}
		before := l.LogEndOffset()
		info := appendOK(t, l, b, 0)
		if info.FirstOffset != before || info.LastOffset+1 != l.LogEndOffset() || info.LogAppendTime != -1 {
			t.Fatalf("append %d: info %+v, LEO before %d after %d", i, info, before, l.LogEndOffset())
		}
	}
	if l.NumSegments() < 5 {
		t.Fatalf("only %d segments; rolls did not happen", l.NumSegments())
	}
	for _, seg := range *l.segments.Load() {
		if seg.size() > cfg.SegmentBytes {
			t.Errorf("segment %d has %d bytes > segment.bytes", seg.baseOffset, seg.size())
		}
	}
	if l.LogEndOffset() != int64(len(want)) {
		t.Fatalf("LEO %d, want %d", l.LogEndOffset(), len(want))
	}
	check := func(l *Log) {
		t.Helper()
		got := readRecords(t, l, 0)
		if len(got) != len(want) {
			t.Fatalf("read %d records, want %d", len(got), len(want))
		}
		for i, r := range got {
			if r.Offset != int64(i) || string(r.Value) != want[i] {
				t.Fatalf("record %d: offset %d value %q, want %q", i, r.Offset, r.Value, want[i])
			}
		}
		// Every offset resolves to the batch containing it.
		for off := int64(0); off < l.LogEndOffset(); off++ {
			info, err := l.Read(off, 1, l.HighWatermark(), true)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := info.Records.Bytes()
			info.Records.Release()
			h, err := ParseBatchHeader(b)
			if err != nil || h.BaseOffset > off || h.LastOffset() < off || h.Size() != len(b) || info.FirstOffset != h.BaseOffset {
				t.Fatalf("Read(%d): header %+v, %d bytes, first %d, err %v", off, h, len(b), info.FirstOffset, err)
			}
		}
	}
	check(l)

	// Reopen without the clean flag: recovery of the active segment keeps everything.
	dir := l.dir
	if err := l.close(true); err != nil {
		t.Fatal(err)
	}
	for _, clean := range []bool{false, true} {
		l2 := openTestLog(t, dir, cfg, clean, nil)
		if l2.LogEndOffset() != int64(len(want)) || l2.HighWatermark() != l2.LogEndOffset() {
			t.Fatalf("clean=%v: reopened LEO %d HW %d, want %d", clean, l2.LogEndOffset(), l2.HighWatermark(), len(want))
		}
		check(l2)
		l2.close(true)
	}
}

func TestReadLimits(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), testLogConfig(), false, nil)
	var sizes []int
	for i := range 5 { // offsets: batch i holds [2i, 2i+1]
		b := newBatch(t, batchOpts{}, rec(fmt.Sprintf("a%d", i), 1), rec(fmt.Sprintf("b%d", i), 2))
		sizes = append(sizes, len(b))
		appendOK(t, l, b, 0)
	}
	one := sizes[0]
	tests := []struct {
		name      string
		offset    int64
		maxBytes  int32
		maxOffset int64
		minOne    bool
		wantBytes int
		wantFirst int64
		wantErr   error
	}{
		{"all", 0, 1 << 20, 10, false, 5 * one, 0, nil},
		{"from middle of a batch", 3, 1 << 20, 10, false, 4 * one, 2, nil},
		{"maxBytes cuts at batch boundary", 0, int32(2*one + one/2), 10, false, 2 * one, 0, nil},
		{"maxBytes below first batch", 0, int32(one - 1), 10, false, 0, -1, nil},
		{"minOneMessage returns the first batch", 0, int32(one - 1), 10, true, one, 0, nil},
		{"minOneMessage with zero maxBytes", 4, 0, 10, true, one, 4, nil},
		{"maxOffset at batch boundary", 0, 1 << 20, 6, false, 3 * one, 0, nil},
		{"maxOffset inside a batch excludes it", 0, 1 << 20, 5, false, 2 * one, 0, nil},
		{"maxOffset inside the first batch", 4, 1 << 20, 5, true, 0, -1, nil},
		{"offset at maxOffset", 6, 1 << 20, 6, true, 0, -1, nil},
		{"offset past maxOffset", 8, 1 << 20, 6, true, 0, -1, nil},
		{"offset at LEO", 10, 1 << 20, 10, true, 0, -1, nil},
		{"offset past LEO", 11, 1 << 20, 20, true, 0, -1, ErrOffsetOutOfRange},
		{"negative offset", -1, 1 << 20, 10, true, 0, -1, ErrOffsetOutOfRange},
		{"maxOffset past LEO is capped", 8, 1 << 20, math.MaxInt64, true, one, 8, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := l.Read(tt.offset, tt.maxBytes, tt.maxOffset, tt.minOne)
			defer info.Records.Release()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got := int(info.Records.Len()); got != tt.wantBytes || info.FirstOffset != tt.wantFirst {
				t.Fatalf("got %d bytes first %d, want %d bytes first %d", got, info.FirstOffset, tt.wantBytes, tt.wantFirst)
			}
			b, err := info.Records.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			for len(b) > 0 {
				h, err := ParseBatchHeader(b)
				if err != nil || VerifyBatchCRC(b[:h.Size()]) != nil {
					t.Fatalf("region is not whole batches: %v", err)
				}
				b = b[h.Size():]
			}
		})
	}

	// Below the log start offset.
	l.DeleteRecordsBefore(4)
	if _, err := l.Read(3, 1<<20, 10, true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below log start: %v", err)
	}
	if info, err := l.Read(4, 1<<20, 10, true); err != nil || info.FirstOffset != 4 {
		t.Fatalf("read at log start: %+v %v", info, err)
	}
}

// TestReadOneSegment: a read never spans two segments, as in Kafka.
func TestReadOneSegment(t *testing.T) {
	t.Parallel()
	cfg := testLogConfig()
	b := newBatch(t, batchOpts{}, rec("x", 1))
	cfg.SegmentBytes = int64(2 * len(b))
	l := openTestLog(t, t.TempDir(), cfg, false, nil)
	for range 6 {
		appendOK(t, l, newBatch(t, batchOpts{}, rec("x", 1)), 0)
	}
	if l.NumSegments() != 3 {
		t.Fatalf("%d segments, want 3", l.NumSegments())
	}
	info, err := l.Read(1, 1<<20, l.HighWatermark(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer info.Records.Release()
	if info.Records.Len() != int64(len(b)) || info.FirstOffset != 1 {
		t.Fatalf("read %d bytes from %d, want one batch from 1", info.Records.Len(), info.FirstOffset)
	}
}

func TestIndexes(t *testing.T) {
	t.Parallel()
	cfg := testLogConfig()
	cfg.IndexIntervalBytes = 0 // an entry for every batch but the first
	l := openTestLog(t, t.TempDir(), cfg, false, nil)
	var positions []int64
	pos := int64(0)
	for i := range 20 {
		b := newBatch(t, batchOpts{}, rec("v", int64(100+i)), rec("w", int64(100+i)))
		positions = append(positions, pos)
		pos += int64(len(b))
		appendOK(t, l, b, 0)
	}
	seg := l.activeSegment()
	if n := seg.offsetIndex.entryCount(); n != 19 {
		t.Fatalf("%d offset index entries, want 19", n)
	}
	for i := 1; i < 20; i++ {
		// Entry for batch i maps its last offset to its position.
		off, p := seg.offsetIndex.lookup(int64(2*i + 1))
		if off != int64(2*i+1) || p != positions[i] {
			t.Errorf("lookup(%d) = (%d, %d), want (%d, %d)", 2*i+1, off, p, 2*i+1, positions[i])
		}
		// An offset inside a batch finds the previous entry (greatest lower bound).
		off, p = seg.offsetIndex.lookup(int64(2 * i))
		if i > 1 && (off != int64(2*i-1) || p != positions[i-1]) {
			t.Errorf("lookup(%d) = (%d, %d), want (%d, %d)", 2*i, off, p, 2*i-1, positions[i-1])
		}
		found, h, ok, err := seg.translateOffset(int64(2*i), seg.size())
		if err != nil || !ok || found != positions[i] || h.BaseOffset != int64(2*i) {
			t.Errorf("translateOffset(%d) = %d %+v %v %v", 2*i, found, h, ok, err)
		}
	}
	if off, p := seg.offsetIndex.lookup(0); off != 0 || p != 0 {
		t.Errorf("lookup(0) = (%d, %d)", off, p)
	}
	// Time index: strictly increasing timestamps, each mapped to the batch that first
	// reached it.
	if ts, off := seg.timeIndex.lookup(105); ts != 105 || off != 11 {
		t.Errorf("time lookup(105) = (%d, %d), want (105, 11)", ts, off)
	}
	if ts, off := seg.timeIndex.lookup(50); ts != noTimestamp || off != 0 {
		t.Errorf("time lookup(50) = (%d, %d)", ts, off)
	}
	// Files hold exactly the in-memory entries.
	if got := len(readFile(t, seg.offsetIndex.path)); got != 19*offsetIndexEntrySize {
		t.Errorf(".index has %d bytes", got)
	}
	if got := len(readFile(t, seg.timeIndex.path)); got != seg.timeIndex.entryCount()*timeIndexEntrySize {
		t.Errorf(".timeindex has %d bytes", got)
	}
}

func TestIndexFullRolls(t *testing.T) {
	t.Parallel()
	cfg := testLogConfig()
	cfg.IndexIntervalBytes = 0
	cfg.SegmentIndexBytes = 3 * timeIndexEntrySize // 3 time entries, 4 offset entries
	l := openTestLog(t, t.TempDir(), cfg, false, nil)
	for i := range 20 {
		appendOK(t, l, newBatch(t, batchOpts{}, rec("v", int64(i))), 0)
	}
	for _, seg := range *l.segments.Load() {
		if seg.timeIndex.entryCount() > 3 || seg.offsetIndex.entryCount() > 4 {
			t.Fatalf("segment %d overflowed its index: %d/%d", seg.baseOffset, seg.offsetIndex.entryCount(), seg.timeIndex.entryCount())
		}
	}
	if l.NumSegments() < 4 {
		t.Fatalf("%d segments; index-full rolls missing", l.NumSegments())
	}
}

func TestSegmentMsRoll(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	cfg := testLogConfig()
	cfg.SegmentMs = 1000
	l := openTestLog(t, t.TempDir(), cfg, false, clock)
	appendOK(t, l, newBatch(t, batchOpts{}, rec("a", 1)), 0)
	clock.Advance(999 * time.Millisecond)
	appendOK(t, l, newBatch(t, batchOpts{}, rec("b", 1)), 0)
	if l.NumSegments() != 1 {
		t.Fatalf("rolled too early")
	}
	clock.Advance(2 * time.Millisecond)
	appendOK(t, l, newBatch(t, batchOpts{}, rec("c", 1)), 0)
	if l.NumSegments() != 2 || l.activeSegment().baseOffset != 2 {
		t.Fatalf("no roll after segment.ms: %d segments", l.NumSegments())
	}
}

func TestAppendValidation(t *testing.T) {
	t.Parallel()
	cfg := testLogConfig()
	cfg.MaxMessageBytes = 200
	l := openTestLog(t, t.TempDir(), cfg, false, nil)
	good := newBatch(t, batchOpts{}, rec("a", 1))
	tests := []struct {
		name    string
		records []byte
		want    error
	}{
		{"empty", nil, ErrCorruptRecord},
		{"garbage", bytes.Repeat([]byte{0xff}, 80), ErrCorruptRecord},
		{"partial batch", good[:len(good)-1], ErrCorruptRecord},
		{"trailing bytes", append(bytes.Clone(good), 1, 2, 3), ErrCorruptRecord},
		{"count/offset delta mismatch", func() []byte {
			b := bytes.Clone(good)
			binary.BigEndian.PutUint32(b[lastOffsetDeltaOffset:], 1000)
			return b
		}(), ErrCorruptRecord},
		{"over max.message.bytes", newBatch(t, batchOpts{}, rec(string(make([]byte, 300)), 1)), ErrRecordTooLarge},
	}
	for _, tt := range tests {
		if _, err := l.AppendAsLeader(tt.records, 0); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
	if l.LogEndOffset() != 0 || l.Size() != 0 {
		t.Fatalf("rejected appends changed the log: LEO %d size %d", l.LogEndOffset(), l.Size())
	}

	cfg.MaxMessageBytes = 1 << 20
	cfg.SegmentBytes = 100
	l.setConfig(cfg)
	if _, err := l.AppendAsLeader(newBatch(t, batchOpts{}, rec(string(make([]byte, 200)), 1)), 0); !errors.Is(err, ErrRecordTooLarge) {
		t.Errorf("append larger than segment.bytes: %v", err)
	}
}

func TestAppendStampsHeader(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	cfg := testLogConfig()
	l := openTestLog(t, t.TempDir(), cfg, false, clock)
	appendOK(t, l, newBatch(t, batchOpts{}, rec("a", 1), rec("b", 2)), 3)

	cfg.MessageTimestampType = "LogAppendTime"
	l.setConfig(cfg)
	in := concat(newBatch(t, batchOpts{codec: compressionZstd}, rec("c", 5)), newBatch(t, batchOpts{}, rec("d", 6)))
	info := appendOK(t, l, in, 3)
	if info.LogAppendTime != clock.ms() || info.FirstOffset != 2 || info.LastOffset != 3 || info.RecordCount != 2 {
		t.Fatalf("info %+v", info)
	}
	all, _ := l.Read(0, 1<<20, l.HighWatermark(), true)
	defer all.Records.Release()
	b, _ := all.Records.Bytes()
	wantBase := []int64{0, 2, 3}
	for i := 0; len(b) > 0; i++ {
		h, _ := ParseBatchHeader(b)
		if err := VerifyBatchCRC(b[:h.Size()]); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if h.BaseOffset != wantBase[i] || h.PartitionLeaderEpoch != 3 {
			t.Errorf("batch %d: base %d epoch %d", i, h.BaseOffset, h.PartitionLeaderEpoch)
		}
		if wantLAT := i > 0; (h.TimestampType() == 1) != wantLAT || (wantLAT && h.MaxTimestamp != clock.ms()) {
			t.Errorf("batch %d: timestamp type %d max %d", i, h.TimestampType(), h.MaxTimestamp)
		}
		b = b[h.Size():]
	}
}

func TestOffsetForTimestamp(t *testing.T) {
	t.Parallel()
	for _, codec := range []int8{compressionNone, compressionGzip, compressionZstd, compressionLZ4, compressionSnappy} {
		t.Run(fmt.Sprintf("codec%d", codec), func(t *testing.T) {
			t.Parallel()
			cfg := testLogConfig()
			cfg.IndexIntervalBytes = 0
			cfg.SegmentBytes = 400 // several segments
			l := openTestLog(t, t.TempDir(), cfg, false, nil)
			// Timestamps per offset; out of order inside batches, like real producers.
			ts := [][]int64{{100, 90, 110}, {105, 120}, {130}, {125, 140, 135}, {150}, {150, 160}, {200}}
			for _, batch := range ts {
				var recs []testRec
				for _, x := range batch {
					recs = append(recs, rec("v", x))
				}
				appendOK(t, l, newBatch(t, batchOpts{codec: codec}, recs...), 0)
			}
			if l.NumSegments() < 2 {
				t.Fatalf("want several segments, got %d", l.NumSegments())
			}
			tests := []struct {
				target, wantOff, wantTs int64
				ok                      bool
			}{
				{0, 0, 100, true},
				{90, 0, 100, true},
				{100, 0, 100, true},
				{101, 2, 110, true},
				{111, 4, 120, true},
				{121, 5, 130, true},
				{131, 7, 140, true},
				{136, 7, 140, true},
				{141, 9, 150, true},
				{150, 9, 150, true},
				{151, 11, 160, true},
				{161, 12, 200, true},
				{200, 12, 200, true},
				{201, 0, 0, false},
			}
			for _, tt := range tests {
				off, gotTs, ok, err := l.OffsetForTimestamp(tt.target)
				if err != nil || ok != tt.ok || (ok && (off != tt.wantOff || gotTs != tt.wantTs)) {
					t.Errorf("OffsetForTimestamp(%d) = %d, %d, %v, %v; want %d, %d, %v", tt.target, off, gotTs, ok, err, tt.wantOff, tt.wantTs, tt.ok)
				}
			}
			off, gotTs, ok, err := l.OffsetOfMaxTimestamp()
			if err != nil || !ok || off != 12 || gotTs != 200 {
				t.Errorf("OffsetOfMaxTimestamp = %d, %d, %v, %v", off, gotTs, ok, err)
			}
			// The log start offset hides earlier matches.
			if _, err := l.DeleteRecordsBefore(8); err != nil {
				t.Fatal(err)
			}
			if off, _, ok, _ := l.OffsetForTimestamp(0); !ok || off != 8 {
				t.Errorf("after DeleteRecords(8): OffsetForTimestamp(0) = %d, %v", off, ok)
			}
		})
	}
}

func TestOffsetOfMaxTimestamp(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), testLogConfig(), false, nil)
	if _, _, ok, err := l.OffsetOfMaxTimestamp(); ok || err != nil {
		t.Fatalf("empty log: ok=%v err=%v", ok, err)
	}
	if _, _, ok, err := l.OffsetForTimestamp(0); ok || err != nil {
		t.Fatalf("empty log: ok=%v err=%v", ok, err)
	}
	appendOK(t, l, newBatch(t, batchOpts{}, rec("a", 10), rec("b", 50), rec("c", 50)), 0)
	appendOK(t, l, newBatch(t, batchOpts{codec: compressionGzip}, rec("d", 20), rec("e", 30)), 0)
	off, ts, ok, err := l.OffsetOfMaxTimestamp()
	if err != nil || !ok || off != 1 || ts != 50 {
		t.Fatalf("got %d, %d, %v, %v; want 1, 50", off, ts, ok, err)
	}
	cfg := l.Config()
	cfg.MessageTimestampType = "LogAppendTime"
	l.setConfig(cfg)
	info := appendOK(t, l, newBatch(t, batchOpts{}, rec("f", 1), rec("g", 2)), 0)
	off, ts, ok, _ = l.OffsetOfMaxTimestamp()
	if !ok || off != 5 || ts != info.LogAppendTime {
		t.Fatalf("LogAppendTime batch: got %d, %d, %v", off, ts, ok)
	}
}

func TestHighWatermarkAndWatch(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), testLogConfig(), false, nil)
	ch := make(chan struct{}, 1)
	cancel := l.Watch(ch)
	info, err := l.AppendAsLeader(newBatch(t, batchOpts{}, rec("a", 1), rec("b", 1)), 0)
	if err != nil {
		t.Fatal(err)
	}
	if l.HighWatermark() != 0 || l.LastStableOffset() != 0 {
		t.Fatalf("append moved HW to %d", l.HighWatermark())
	}
	select {
	case <-ch:
		t.Fatal("notified without an HW move")
	default:
	}
	if !l.UpdateHighWatermark(100) { // clamped to LEO
		t.Fatal("the move did not report a woken watcher")
	}
	if l.HighWatermark() != info.LastOffset+1 {
		t.Fatalf("HW %d, want %d", l.HighWatermark(), info.LastOffset+1)
	}
	select {
	case <-ch:
	default:
		t.Fatal("no notification")
	}
	if l.UpdateHighWatermark(2) { // unchanged: no notification
		t.Fatal("no move, yet a woken watcher reported")
	}
	select {
	case <-ch:
		t.Fatal("notified without a move")
	default:
	}
	l.UpdateHighWatermark(-5) // clamped to log start
	if l.HighWatermark() != 0 {
		t.Fatalf("HW %d, want 0", l.HighWatermark())
	}
	if l.UpdateHighWatermark(1) { // the signal of the move to 0 is still pending
		t.Fatal("a watcher with a pending signal reported as woken")
	}
	<-ch
	cancel()
	cancel()
	if l.UpdateHighWatermark(2) {
		t.Fatal("woken watcher reported after cancel")
	}
	select {
	case <-ch:
		t.Fatal("notified after cancel")
	default:
	}
	ch2 := make(chan struct{}, 1)
	l.Watch(ch2)
	l.close(false)
	select {
	case <-ch2:
	default:
		t.Fatal("close did not notify")
	}
	if _, err := l.AppendAsLeader(newBatch(t, batchOpts{}, rec("a", 1)), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if _, err := l.Read(0, 100, 2, true); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
}

func TestFlushPolicy(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	cfg := testLogConfig()
	cfg.FlushMessages = 3
	l := openTestLog(t, t.TempDir(), cfg, false, clock)
	appendOK(t, l, newBatch(t, batchOpts{}, rec("a", 1), rec("b", 1)), 0)
	if rp := l.recoveryPoint.Load(); rp != 0 {
		t.Fatalf("flushed early: recovery point %d", rp)
	}
	appendOK(t, l, newBatch(t, batchOpts{}, rec("c", 1)), 0)
	if rp := l.recoveryPoint.Load(); rp != 3 || l.activeSegment().log.dirty.Load() {
		t.Fatalf("flush.messages: recovery point %d", rp)
	}

	cfg.FlushMessages = math.MaxInt64
	cfg.FlushMs = 1000
	l.setConfig(cfg)
	appendOK(t, l, newBatch(t, batchOpts{}, rec("d", 1)), 0)
	l.flushIfDue()
	if rp := l.recoveryPoint.Load(); rp != 3 {
		t.Fatalf("flush.ms flushed early: %d", rp)
	}
	clock.Advance(time.Second)
	l.flushIfDue()
	if rp := l.recoveryPoint.Load(); rp != 4 {
		t.Fatalf("flush.ms: recovery point %d", rp)
	}
}

func TestConcurrentAppendRead(t *testing.T) {
	t.Parallel()
	cfg := testLogConfig()
	cfg.SegmentBytes = 4096
	cfg.IndexIntervalBytes = 200
	l := openTestLog(t, t.TempDir(), cfg, false, nil)
	const appends = 300
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range appends {
			appendOK(t, l, newBatch(t, batchOpts{}, rec(fmt.Sprint(i), int64(i))), 0)
		}
	}()
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := int64(0)
			for next < appends {
				info, err := l.Read(next, 500, l.HighWatermark(), true)
				if err != nil {
					t.Error(err)
					return
				}
				b, err := info.Records.Bytes()
				info.Records.Release()
				if err != nil {
					t.Error(err)
					return
				}
				for len(b) > 0 {
					h, err := ParseBatchHeader(b)
					if err != nil || VerifyBatchCRC(b[:h.Size()]) != nil || h.BaseOffset != next {
						t.Errorf("bad batch at %d: %+v %v", next, h, err)
						return
					}
					next++
					b = b[h.Size():]
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // retention-free flushes and timestamp lookups alongside
		defer wg.Done()
		for l.LogEndOffset() < appends {
			l.Flush()
			l.OffsetForTimestamp(int64(l.LogEndOffset() / 2))
		}
	}()
	wg.Wait()
}

func TestDeleteRecordsBefore(t *testing.T) {
	t.Parallel()
	cfg := testLogConfig()
	b := newBatch(t, batchOpts{}, rec("x", 1))
	cfg.SegmentBytes = int64(2 * len(b))
	l := openTestLog(t, t.TempDir(), cfg, false, nil)
	for range 10 {
		appendOK(t, l, newBatch(t, batchOpts{}, rec("x", 1)), 0)
	}
	if _, err := l.AppendAsLeader(newBatch(t, batchOpts{}, rec("x", 1)), 0); err != nil {
		t.Fatal(err)
	} // offset 10 is above the HW
	if l.NumSegments() != 6 {
		t.Fatalf("%d segments", l.NumSegments())
	}
	if _, err := l.DeleteRecordsBefore(11); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("beyond HW: %v", err)
	}
	if _, err := l.DeleteRecordsBefore(-1); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("negative: %v", err)
	}
	lso, err := l.DeleteRecordsBefore(5)
	if err != nil || lso != 5 || l.LogStartOffset() != 5 {
		t.Fatalf("DeleteRecordsBefore(5) = %d, %v", lso, err)
	}
	// Segments [0,2) and [2,4) go; [4,6) holds offset 5 and stays.
	if l.NumSegments() != 4 || (*l.segments.Load())[0].baseOffset != 4 {
		t.Fatalf("segments after delete: %d, first %d", l.NumSegments(), (*l.segments.Load())[0].baseOffset)
	}
	if lso, _ := l.DeleteRecordsBefore(3); lso != 5 {
		t.Fatalf("log start moved down to %d", lso)
	}
	if lso, _ := l.DeleteRecordsBefore(10); lso != 10 || l.NumSegments() != 1 {
		t.Fatalf("delete to HW: lso %d, %d segments", lso, l.NumSegments())
	}
}

func TestFileRegionOutlivesSegment(t *testing.T) {
	t.Parallel()
	cfg := testLogConfig()
	b := newBatch(t, batchOpts{}, rec("hello", 1))
	cfg.SegmentBytes = int64(len(b))
	dir := t.TempDir()
	l := openTestLog(t, dir, cfg, false, nil)
	for range 3 {
		appendOK(t, l, newBatch(t, batchOpts{}, rec("hello", 1)), 0)
	}
	info, err := l.Read(0, 1<<20, l.HighWatermark(), true)
	if err != nil {
		t.Fatal(err)
	}
	copyRegion := info.Records // copies share one reference
	if _, err := l.DeleteRecordsBefore(2); err != nil {
		t.Fatal(err)
	}
	// Segment 1 was not being read: gone at once. Segment 0 waits for the region.
	deleted := segmentFiles(t, dir, deletedFileSuffix)
	if len(deleted) != 1 || filepath.Base(deleted[0]) != "00000000000000000000.log.deleted" {
		t.Fatalf("deleted files: %v", deleted)
	}
	// The deleted segments' indexes are gone (only a segment that was
	// written to enough has one at all).
	for _, idx := range segmentFiles(t, dir, indexFileSuffix) {
		if filepath.Base(idx) != "00000000000000000002.index" {
			t.Fatalf("index files: %v", segmentFiles(t, dir, indexFileSuffix))
		}
	}
	got, err := info.Records.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(b)
	binary.BigEndian.PutUint64(want, 0)
	binary.BigEndian.PutUint32(want[partitionLeaderEpochOffset:], 0)
	if !bytes.Equal(got, want) {
		t.Fatalf("region bytes changed after deletion")
	}
	info.Records.Release()
	copyRegion.Release() // idempotent
	if _, err := copyRegion.Bytes(); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after release: %v", err)
	}
	if left := segmentFiles(t, dir, deletedFileSuffix); len(left) != 0 {
		t.Fatalf("files left after release: %v", left)
	}
	var zero FileRegion
	zero.Release()
	if b, err := zero.Bytes(); err != nil || len(b) != 0 || zero.Len() != 0 {
		t.Fatal("zero region")
	}
}

func TestLeaderEpochs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := openTestLog(t, dir, testLogConfig(), false, nil)
	if l.LatestEpoch() != -1 {
		t.Fatal("fresh log has an epoch")
	}
	if e, o := l.EndOffsetForEpoch(0); e != -1 || o != -1 {
		t.Fatalf("empty cache: %d %d", e, o)
	}
	for _, epoch := range []int32{0, 0, 2, 2, 5} { // offsets 0..4
		appendOK(t, l, newBatch(t, batchOpts{}, rec("x", 1)), epoch)
	}
	check := func(l *Log, leo int64) {
		t.Helper()
		tests := []struct {
			req, epoch int32
			end        int64
		}{
			{0, 0, 2},
			{1, 0, 2},
			{2, 2, 4},
			{4, 2, 4},
			{5, 5, leo},
			{6, -1, -1},
			{-1, -1, -1},
		}
		for _, tt := range tests {
			if e, o := l.EndOffsetForEpoch(tt.req); e != tt.epoch || o != tt.end {
				t.Errorf("EndOffsetForEpoch(%d) = %d, %d; want %d, %d", tt.req, e, o, tt.epoch, tt.end)
			}
		}
		if l.LatestEpoch() != 5 {
			t.Errorf("LatestEpoch %d", l.LatestEpoch())
		}
	}
	check(l, 5)
	if got := string(readFile(t, filepath.Join(dir, leaderEpochCheckpointFile))); got != "0\n3\n0 0\n2 2\n5 4\n" {
		t.Fatalf("checkpoint file:\n%s", got)
	}
	l.close(true)
	l = openTestLog(t, dir, testLogConfig(), true, nil)
	check(l, 5)
	l.close(true)

	// A torn tail drops the epochs that started in it.
	seg := segmentFiles(t, dir, logFileSuffix)[0]
	fi, _ := os.Stat(seg)
	os.Truncate(seg, fi.Size()-3)
	l = openTestLog(t, dir, testLogConfig(), false, nil)
	if l.LogEndOffset() != 4 || l.LatestEpoch() != 2 {
		t.Fatalf("after truncation: LEO %d latest epoch %d", l.LogEndOffset(), l.LatestEpoch())
	}
	if e, o := l.EndOffsetForEpoch(2); e != 2 || o != 4 {
		t.Fatalf("EndOffsetForEpoch(2) = %d, %d", e, o)
	}
	l.close(true)

	// A lost checkpoint is rebuilt from the batches.
	os.Remove(filepath.Join(dir, leaderEpochCheckpointFile))
	l = openTestLog(t, dir, testLogConfig(), true, nil)
	if e, o := l.EndOffsetForEpoch(0); e != 0 || o != 2 || l.LatestEpoch() != 2 {
		t.Fatalf("rebuilt cache: %d %d latest %d", e, o, l.LatestEpoch())
	}
}

func TestLeaderEpochFileCache(t *testing.T) {
	t.Parallel()
	c := &LeaderEpochFileCache{path: filepath.Join(t.TempDir(), "cp")}
	c.assign(1, 10)
	c.assign(1, 12) // same epoch, later offset: no change
	c.assign(3, 20)
	c.assign(4, 30)
	if got := fmt.Sprint(c.epochs); got != "[{1 10} {3 20} {4 30}]" {
		t.Fatalf("epochs %s", got)
	}
	c.assign(2, 25) // conflicts with everything from epoch 3 / offset 25 on
	if got := fmt.Sprint(c.epochs); got != "[{1 10} {2 25}]" {
		t.Fatalf("after conflicting assign: %s", got)
	}
	c.assign(3, 40)
	c.truncateFromStart(30)
	if got := fmt.Sprint(c.epochs); got != "[{2 30} {3 40}]" {
		t.Fatalf("truncateFromStart: %s", got)
	}
	c.truncateFromEnd(40)
	if got := fmt.Sprint(c.epochs); got != "[{2 30}]" {
		t.Fatalf("truncateFromEnd: %s", got)
	}
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	c2, found, err := loadLeaderEpochCache(c.path)
	if err != nil || !found || fmt.Sprint(c2.epochs) != "[{2 30}]" {
		t.Fatalf("reload: %v %v %v", c2.epochs, found, err)
	}
	for _, bad := range []string{"", "1\n0\n", "0\n2\n1 1\n", "0\n1\nx y\n", "0\n2\n3 10\n2 20\n", "0\n1\n1 1\nextra\n"} {
		os.WriteFile(c.path, []byte(bad), 0o644)
		if _, found, err := loadLeaderEpochCache(c.path); found || err != nil {
			t.Errorf("checkpoint %q accepted", bad)
		}
	}
}

// TestReadLastOffset: Read reports the last offset of the last batch it returns,
// learned from batch headers only, also when the offset index let it skip reading
// the headers of the batches before its jump position.
func TestReadLastOffset(t *testing.T) {
	t.Parallel()
	// Batch i holds i%3+1 records, so sizes and offset spans differ between batches:
	// offsets [0] [1,2] [3,5] [6] [7,8] [9,11] ... [21,23].
	const nBatches, end = 12, 24
	var batches [][]byte
	for i := range nBatches {
		var recs []testRec
		for j := range i%3 + 1 {
			recs = append(recs, rec(fmt.Sprintf("v%d-%d", i, j), int64(i)))
		}
		batches = append(batches, newBatch(t, batchOpts{}, recs...))
	}
	var pos []int64 // batch i starts at pos[i]; pos[nBatches] is the end
	var lastOff []int64
	p, o := int64(0), int64(-1)
	for i, b := range batches {
		pos = append(pos, p)
		p += int64(len(b))
		o += int64(i%3 + 1)
		lastOff = append(lastOff, o)
	}
	pos = append(pos, p)

	open := func(interval int64) *Log {
		cfg := testLogConfig()
		cfg.IndexIntervalBytes = interval
		l := openTestLog(t, t.TempDir(), cfg, false, nil)
		for _, b := range batches {
			appendOK(t, l, b, 0)
		}
		return l
	}
	indexed := open(0)         // an index entry for every batch but the first
	sparse := open(150)        // one every few batches
	unindexed := open(1 << 30) // none: every header is read
	if n := indexed.activeSegment().offsetIndex.entryCount(); n != nBatches-1 {
		t.Fatalf("%d index entries, want %d", n, nBatches-1)
	}

	// jumps reports whether a read uses the offset index to skip batch headers
	// (mirrors LogSegment.read).
	jumps := func(l *Log, offset int64, maxBytes int32, maxOffset int64) bool {
		seg := l.activeSegment()
		start, h, found, err := seg.translateOffset(offset, seg.size())
		if err != nil || !found {
			t.Fatalf("translateOffset(%d): %v %v", offset, found, err)
		}
		next := start + int64(h.Size())
		limit := min(start+int64(maxBytes), seg.size())
		p, ok := seg.offsetIndex.lastBatchStartBefore(next, limit-1, maxOffset)
		return ok && p > next
	}

	tests := []struct {
		name        string
		offset      int64
		maxBytes    int32
		maxOffset   int64
		minOne      bool
		wantBatches int // from the batch holding offset
		wantFirst   int64
		wantLast    int64
		wantJump    bool // on the indexed log
	}{
		{"single batch", 3, int32(len(batches[2])), end, false, 1, 3, 5, false},
		{"single batch, minOneMessage", 4, 1, end, true, 1, 3, 5, false},
		{"several batches, maxBytes cuts", 1, int32(pos[4] - pos[1] + 10), end, false, 3, 1, 6, true},
		{"index jump, next header fits", 0, int32(pos[nBatches]), end, false, nBatches, 0, 23, true},
		{"index jump, header at the jump does not fit", 0, int32(pos[nBatches] - 1), end, false, nBatches - 1, 0, 20, true},
		{"index entry exactly at the limit", 0, int32(pos[6]), end, false, 6, 0, 11, true},
		{"maxOffset cut", 0, 1 << 20, 10, false, 5, 0, 8, true},
		{"maxOffset cut inside the first batch", 10, 1 << 20, 10, false, 0, -1, -1, false},
		{"empty at the end", end, 1 << 20, end, true, 0, -1, -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantBatches > 0 && jumps(indexed, tt.offset, tt.maxBytes, tt.maxOffset) != tt.wantJump {
				t.Fatalf("index jump = %v, want %v", !tt.wantJump, tt.wantJump)
			}
			wantBytes := int64(0)
			if tt.wantBatches > 0 {
				i := 0
				for lastOff[i] < tt.offset {
					i++
				}
				wantBytes = pos[i+tt.wantBatches] - pos[i]
			}
			for _, l := range []*Log{indexed, sparse, unindexed} {
				info, err := l.Read(tt.offset, tt.maxBytes, tt.maxOffset, tt.minOne)
				info.Records.Release()
				if err != nil {
					t.Fatal(err)
				}
				if info.Records.Len() != wantBytes || info.FirstOffset != tt.wantFirst || info.LastOffset != tt.wantLast {
					t.Fatalf("interval %d: %d bytes, offsets [%d, %d]; want %d bytes, [%d, %d]",
						l.Config().IndexIntervalBytes, info.Records.Len(), info.FirstOffset, info.LastOffset, wantBytes, tt.wantFirst, tt.wantLast)
				}
			}
		})
	}

	// Every read agrees, whatever the index holds, and LastOffset is the last offset
	// of the last batch in the returned bytes.
	for offset := int64(0); offset <= end; offset++ {
		for maxBytes := int32(0); maxBytes <= int32(pos[nBatches])+1; maxBytes += 7 {
			for _, maxOffset := range []int64{end, 10, 12} {
				var want []byte
				for k, l := range []*Log{unindexed, sparse, indexed} {
					info, err := l.Read(offset, maxBytes, maxOffset, false)
					if err != nil {
						t.Fatal(err)
					}
					b, err := info.Records.Bytes()
					info.Records.Release()
					if err != nil {
						t.Fatal(err)
					}
					if k == 0 {
						want = b
					} else if !bytes.Equal(b, want) {
						t.Fatalf("Read(%d, %d, %d): interval %d returns %d bytes, unindexed %d",
							offset, maxBytes, maxOffset, l.Config().IndexIntervalBytes, len(b), len(want))
					}
					first, last := int64(-1), int64(-1)
					for r := b; len(r) > 0; {
						h, err := ParseBatchHeader(r)
						if err != nil {
							t.Fatal(err)
						}
						if first < 0 {
							first = h.BaseOffset
						}
						last = h.LastOffset()
						r = r[h.Size():]
					}
					if info.FirstOffset != first || info.LastOffset != last {
						t.Fatalf("Read(%d, %d, %d) on interval %d: offsets [%d, %d], batches span [%d, %d]",
							offset, maxBytes, maxOffset, l.Config().IndexIntervalBytes, info.FirstOffset, info.LastOffset, first, last)
					}
				}
			}
		}
	}
}
