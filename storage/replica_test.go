package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kbroker/kbroker/idempotence"
)

// replicaLogConfig rolls every few batches and indexes often, so that
// replication and truncation cross segment and index boundaries.
func replicaLogConfig() LogConfig {
	cfg := testLogConfig()
	cfg.SegmentBytes = 500
	cfg.IndexIntervalBytes = 100
	return cfg
}

// pbatch is a batch of producer pid (epoch, first sequence seq), transactional
// or not, as an idempotent producer sends it.
func pbatch(t testing.TB, o batchOpts, pid int64, epoch int16, seq int32, txn bool, recs ...testRec) []byte {
	t.Helper()
	b := newBatch(t, o, recs...)
	binary.BigEndian.PutUint64(b[producerIDOffset:], uint64(pid))
	binary.BigEndian.PutUint16(b[producerEpochOffset:], uint16(epoch))
	binary.BigEndian.PutUint32(b[baseSequenceOffset:], uint32(seq))
	if txn {
		binary.BigEndian.PutUint16(b[attributesOffset:], binary.BigEndian.Uint16(b[attributesOffset:])|transactionalFlagBit)
	}
	setBatchCRC(b)
	return b
}

func markerOK(t testing.TB, l *Log, pid int64, commit bool, epoch int32) LogAppendInfo {
	t.Helper()
	info, err := l.AppendTxnMarker(EndTxnMarker{ProducerID: pid, Commit: commit}, epoch)
	if err != nil {
		t.Fatalf("AppendTxnMarker: %v", err)
	}
	l.UpdateHighWatermark(info.LastOffset + 1)
	return info
}

// fillLeader writes what a partition leader sees across three leader epochs:
// plain batches of every codec, an idempotent producer (1), a committed
// transaction (2), an aborted one (3) interleaved with other writes, and one
// still open at the end (4). The log rolls several times.
func fillLeader(t testing.TB, l *Log) {
	t.Helper()
	for i := range 5 {
		appendOK(t, l, newBatch(t, batchOpts{codec: int8(i)}, rec(fmt.Sprintf("plain-%d", i), int64(100+i)), rec("second", int64(101+i))), 0)
	}
	for seq := range int32(3) {
		appendOK(t, l, pbatch(t, batchOpts{codec: compressionLZ4}, 1, 0, seq, false, rec("idem", 200+int64(seq))), 0)
	}
	appendOK(t, l, pbatch(t, batchOpts{}, 2, 0, 0, true, rec("txn2-a", 300), rec("txn2-b", 301)), 3)
	appendOK(t, l, pbatch(t, batchOpts{}, 3, 0, 0, true, rec("txn3-a", 302)), 3)
	appendOK(t, l, newBatch(t, batchOpts{codec: compressionZstd}, rec("between", 303)), 3)
	appendOK(t, l, pbatch(t, batchOpts{}, 2, 0, 2, true, rec("txn2-c", 304)), 3)
	markerOK(t, l, 2, true, 3)
	appendOK(t, l, pbatch(t, batchOpts{codec: compressionGzip}, 3, 0, 1, true, rec("txn3-b", 305)), 3)
	markerOK(t, l, 3, false, 3)
	appendOK(t, l, pbatch(t, batchOpts{}, 1, 0, 3, false, rec("idem", 400)), 5)
	appendOK(t, l, pbatch(t, batchOpts{}, 4, 0, 0, true, rec("txn4", 401)), 5)
	appendOK(t, l, newBatch(t, batchOpts{codec: compressionSnappy}, rec("last", 402), rec("last2", 403)), 5)
	if l.NumSegments() < 4 {
		t.Fatalf("leader has %d segments, want several", l.NumSegments())
	}
}

// fetchAll reads [from, LEO) of l the way a follower's fetches do: Reads of
// at most maxBytes up to the log end offset, each from one segment.
func fetchAll(t testing.TB, l *Log, from int64, maxBytes int32) [][]byte {
	t.Helper()
	var out [][]byte
	for off := from; off < l.LogEndOffset(); {
		info, err := l.Read(off, maxBytes, l.LogEndOffset(), true)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		b, err := info.Records.Bytes()
		info.Records.Release()
		if err != nil || len(b) == 0 {
			t.Fatalf("Read(%d): %d bytes, %v", off, len(b), err)
		}
		out = append(out, b)
		off = info.LastOffset + 1
	}
	return out
}

// follow appends to follower whatever leader holds past the follower's log
// end offset, and takes over the leader's high watermark.
func follow(t testing.TB, follower, leader *Log, maxBytes int32) {
	t.Helper()
	for _, b := range fetchAll(t, leader, follower.LogEndOffset(), maxBytes) {
		if _, err := follower.AppendAsFollower(b); err != nil {
			t.Fatalf("AppendAsFollower: %v", err)
		}
	}
	follower.UpdateHighWatermark(leader.HighWatermark())
}

func epochEntries(l *Log) []epochEntry {
	l.epochs.mu.RLock()
	defer l.epochs.mu.RUnlock()
	return slices.Clone(l.epochs.epochs)
}

// producerSummary renders the producer state as a snapshot keeps it: per
// producer its epoch, last batch, last timestamp, coordinator epoch and open
// transaction. (The live state also remembers up to four earlier batches and
// each batch's own timestamp, which a state loaded from a snapshot does not.)
func producerSummary(l *Log) string {
	ps := l.ProducerStates()
	slices.SortFunc(ps, func(a, b idempotence.ProducerStateEntry) int { return int(a.ProducerID - b.ProducerID) })
	var sb strings.Builder
	for _, e := range ps {
		last := idempotence.BatchMetadata{FirstSeq: -1, LastSeq: -1, FirstOffset: -1, LastOffset: -1}
		if n := len(e.Batches); n > 0 {
			last = e.Batches[n-1]
			last.Timestamp = 0 // a snapshot keeps the producer's last timestamp only
		}
		fmt.Fprintf(&sb, "pid %d epoch %d last %+v ts %d coord %d txn %d\n",
			e.ProducerID, e.ProducerEpoch, last, e.LastTimestamp, e.CoordinatorEpoch, e.CurrentTxnFirstOffset)
	}
	return sb.String()
}

// logImage is what two replicas of one partition must agree on.
type logImage struct {
	bases                []int64
	logFiles, indexFiles [][]byte
	all                  []byte // the .log files one after the other
	logStart, logEnd, hw int64
	lso                  int64
	epochs               []epochEntry
	producers            string
	aborted              []AbortedTxn
}

// imageOf takes a log's image. A trailing empty segment is left out: a
// truncation at a segment boundary keeps one where a replica that never went
// past the boundary has not rolled yet.
func imageOf(t testing.TB, l *Log) logImage {
	t.Helper()
	im := logImage{
		logStart: l.LogStartOffset(), logEnd: l.LogEndOffset(), hw: l.HighWatermark(), lso: l.LastStableOffset(),
		epochs: epochEntries(l), producers: producerSummary(l), aborted: l.CollectAbortedTxns(0, l.LogEndOffset()),
	}
	for _, seg := range *l.segments.Load() {
		b := readFile(t, seg.log.path)
		im.all = append(im.all, b...)
		if len(b) == 0 {
			continue
		}
		im.bases = append(im.bases, seg.baseOffset)
		im.logFiles = append(im.logFiles, b)
		im.indexFiles = append(im.indexFiles, readIndexFile(t, seg.offsetIndex.path))
	}
	return im
}

// assertSameImage compares two logs' images. With sameSegments the segments
// must match too, .log and .index files byte for byte; without, only the
// bytes of all segments together (replicas may roll at different offsets).
func assertSameImage(t testing.TB, got, want logImage, sameSegments bool) {
	t.Helper()
	if !bytes.Equal(got.all, want.all) {
		t.Fatalf("log bytes differ (%d vs %d bytes)", len(got.all), len(want.all))
	}
	if sameSegments && !slices.Equal(got.bases, want.bases) {
		t.Fatalf("segments %v, want %v", got.bases, want.bases)
	}
	for i := range got.logFiles {
		if !sameSegments {
			break
		}
		if !bytes.Equal(got.logFiles[i], want.logFiles[i]) {
			t.Fatalf("segment %d: .log differs (%d vs %d bytes)", got.bases[i], len(got.logFiles[i]), len(want.logFiles[i]))
		}
		if !bytes.Equal(got.indexFiles[i], want.indexFiles[i]) {
			t.Fatalf("segment %d: .index differs:\n got %x\nwant %x", got.bases[i], got.indexFiles[i], want.indexFiles[i])
		}
	}
	if got.logStart != want.logStart || got.logEnd != want.logEnd || got.hw != want.hw || got.lso != want.lso {
		t.Fatalf("log start/end/HW/LSO %d %d %d %d, want %d %d %d %d",
			got.logStart, got.logEnd, got.hw, got.lso, want.logStart, want.logEnd, want.hw, want.lso)
	}
	if !slices.Equal(got.epochs, want.epochs) {
		t.Fatalf("leader epochs %v, want %v", got.epochs, want.epochs)
	}
	if got.producers != want.producers {
		t.Fatalf("producers:\n%s\nwant:\n%s", got.producers, want.producers)
	}
	if !slices.Equal(got.aborted, want.aborted) {
		t.Fatalf("aborted %+v, want %+v", got.aborted, want.aborted)
	}
}

func TestAppendAsFollowerReplicatesLeader(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	cfg := replicaLogConfig()
	leader := openTestLog(t, t.TempDir(), cfg, false, clock)
	fillLeader(t, leader)
	want := imageOf(t, leader)
	if want.lso == want.hw || len(want.aborted) != 1 {
		t.Fatalf("leader: LSO %d HW %d aborted %v; the test wants an open and an aborted transaction", want.lso, want.hw, want.aborted)
	}
	for _, maxBytes := range []int32{1, 300, 1 << 20} { // one batch per fetch, a few, a segment
		t.Run(fmt.Sprintf("fetch %d bytes", maxBytes), func(t *testing.T) {
			t.Parallel()
			follower := openTestLog(t, t.TempDir(), cfg, false, clock)
			follow(t, follower, leader, maxBytes)
			assertSameImage(t, imageOf(t, follower), want, true)
			if got, want := readRecords(t, follower, 0), readRecords(t, leader, 0); !slices.EqualFunc(got, want, func(a, b Record) bool {
				return a.Offset == b.Offset && a.Timestamp == b.Timestamp && bytes.Equal(a.Value, b.Value)
			}) {
				t.Fatalf("records differ")
			}
			// A fetch of what it has already changes nothing.
			for _, b := range fetchAll(t, leader, 0, 1<<20) {
				info, err := follower.AppendAsFollower(b)
				if err != nil || info.FirstOffset != -1 || info.RecordCount != 0 {
					t.Fatalf("refetch: %+v, %v", info, err)
				}
			}
			assertSameImage(t, imageOf(t, follower), want, true)
			// The follower, now leader, dedupes a retry of producer 1's last
			// batch and continues producer 4's transaction.
			dup, err := follower.AppendAsLeader(pbatch(t, batchOpts{}, 1, 0, 3, false, rec("idem", 400)), 7)
			if err != nil || !dup.Duplicate {
				t.Fatalf("retry on the new leader: %+v, %v", dup, err)
			}
			markerOK(t, follower, 4, false, 7)
			if follower.LastStableOffset() != follower.HighWatermark() {
				t.Fatalf("LSO %d after the abort, HW %d", follower.LastStableOffset(), follower.HighWatermark())
			}
		})
	}
}

func TestAppendAsFollowerReturns(t *testing.T) {
	t.Parallel()
	leader := openTestLog(t, t.TempDir(), testLogConfig(), false, nil)
	for i := range 3 {
		appendOK(t, leader, newBatch(t, batchOpts{}, rec("a", 1), rec("b", 2), rec(itoa(i), 3)), 2)
	}
	follower := openTestLog(t, t.TempDir(), testLogConfig(), false, nil)
	chunks := fetchAll(t, leader, 0, 1<<20)
	info, err := follower.AppendAsFollower(chunks[0])
	if err != nil || info.FirstOffset != 0 || info.LastOffset != 8 || info.RecordCount != 9 || info.LogAppendTime != -1 {
		t.Fatalf("AppendAsFollower: %+v, %v", info, err)
	}
	if follower.HighWatermark() != 0 {
		t.Fatalf("the high watermark moved to %d", follower.HighWatermark())
	}
	if follower.LatestEpoch() != 2 {
		t.Fatalf("latest epoch %d", follower.LatestEpoch())
	}
}

func TestAppendAsFollowerLogAppendTime(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	cfg := testLogConfig()
	cfg.MessageTimestampType = "LogAppendTime"
	leader := openTestLog(t, t.TempDir(), cfg, false, clock)
	appendOK(t, leader, newBatch(t, batchOpts{}, rec("x", 5)), 0)
	clock.Advance(1000) // the follower must not stamp its own time
	for _, fcfg := range []LogConfig{cfg, testLogConfig()} {
		follower := openTestLog(t, t.TempDir(), fcfg, false, clock)
		follow(t, follower, leader, 1<<20)
		assertSameImage(t, imageOf(t, follower), imageOf(t, leader), true)
	}
}

func TestAppendAsFollowerRefuses(t *testing.T) {
	t.Parallel()
	leader := openTestLog(t, t.TempDir(), testLogConfig(), false, nil)
	for i := range 6 {
		appendOK(t, leader, newBatch(t, batchOpts{codec: int8(i % 5)}, rec("v"+itoa(i), 1), rec("w", 2)), 1)
	}
	var batches [][]byte // each batch alone, offsets 0-1, 2-3, ...
	for _, b := range fetchAll(t, leader, 0, 1) {
		batches = append(batches, b)
	}
	at := func(b []byte, base int64) []byte { // the same batch at another offset (outside the CRC)
		b = bytes.Clone(b)
		binary.BigEndian.PutUint64(b, uint64(base))
		return b
	}
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 0x10; return b }
	small := testLogConfig()
	small.MaxMessageBytes = int32(len(batches[2]) - 1)

	tests := []struct {
		name    string
		cfg     *LogConfig
		records []byte
		want    error
	}{
		{"overlaps the log end", nil, at(batches[2], 3), ErrUnexpectedAppendOffset},
		{"second batch overlaps", nil, concat(batches[2], at(batches[3], 5)), ErrUnexpectedAppendOffset},
		{"second batch goes back", nil, concat(batches[2], batches[1]), ErrUnexpectedAppendOffset},
		{"crc of the first batch", nil, flip(batches[2], len(batches[2])-1), ErrCorruptRecord},
		{"crc of the second batch", nil, concat(batches[2], flip(batches[3], attributesOffset+2)), ErrCorruptRecord},
		{"truncated", nil, batches[2][:len(batches[2])-1], ErrCorruptRecord},
		{"truncated second batch", nil, concat(batches[2], batches[3][:BatchHeaderSize+2]), ErrCorruptRecord},
		{"trailing bytes", nil, concat(batches[2], []byte{0, 0, 0}), ErrCorruptRecord},
		{"short header", nil, batches[2][:BatchHeaderSize-1], ErrCorruptRecord},
		{"magic 1", nil, func() []byte { b := bytes.Clone(batches[2]); b[magicOffset] = 1; return b }(), ErrCorruptRecord},
		{"count does not match offsets", nil, func() []byte {
			b := bytes.Clone(batches[2])
			binary.BigEndian.PutUint32(b[recordCountOffset:], 3)
			setBatchCRC(b)
			return b
		}(), ErrCorruptRecord},
		{"negative base offset", nil, at(batches[2], -2), ErrCorruptRecord},
		{"empty", nil, nil, ErrCorruptRecord},
		{"max.message.bytes", &small, batches[2], ErrRecordTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			follower := openTestLog(t, t.TempDir(), testLogConfig(), false, nil)
			if _, err := follower.AppendAsFollower(concat(batches[0], batches[1])); err != nil {
				t.Fatal(err)
			}
			before := imageOf(t, follower)
			if tt.cfg != nil {
				follower.setConfig(*tt.cfg)
			}
			_, err := follower.AppendAsFollower(tt.records)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			assertSameImage(t, imageOf(t, follower), before, true)
			follower.setConfig(testLogConfig())
			// The log goes on from where it was.
			if _, err := follower.AppendAsFollower(concat(batches[1], batches[2])); err != nil || follower.LogEndOffset() != 6 {
				t.Fatalf("append after the refusal: LEO %d, %v", follower.LogEndOffset(), err)
			}
		})
	}
	var uerr *UnexpectedAppendOffsetError
	follower := openTestLog(t, t.TempDir(), testLogConfig(), false, nil)
	if _, err := follower.AppendAsFollower(batches[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := follower.AppendAsFollower(at(batches[1], 1)); !errors.As(err, &uerr) || *uerr != (UnexpectedAppendOffsetError{1, 2, 2}) {
		t.Fatalf("got %v, want offsets [1, 2] at 2", err)
	}
}

// FuzzAppendAsFollower feeds arbitrary bytes to a follower that already holds
// two batches (offsets 0-2). Invariants: never panics; a refusal leaves the
// log exactly as it was; what is accepted continues the log, and a crash
// recovery afterwards keeps every byte of it (recovery accepts whatever
// AppendAsFollower accepted).
func FuzzAppendAsFollower(f *testing.F) {
	leader := openTestLog(f, f.TempDir(), testLogConfig(), false, nil)
	appendOK(f, leader, newBatch(f, batchOpts{}, rec("a", 1), rec("b", 2)), 0)
	appendOK(f, leader, pbatch(f, batchOpts{codec: compressionGzip}, 7, 0, 0, true, rec("t", 3)), 1)
	appendOK(f, leader, pbatch(f, batchOpts{codec: compressionSnappy}, 7, 0, 1, true, rec("u", 4), rec("v", 5)), 2)
	markerOK(f, leader, 7, false, 2)
	appendOK(f, leader, newBatch(f, batchOpts{codec: compressionZstd}, rec("z", 6)), 3)
	chunks := fetchAll(f, leader, 0, 1)
	prefix := concat(chunks[:2]...)
	rest := concat(chunks[2:]...)
	f.Add(rest)
	f.Add(chunks[2])
	f.Add(concat(chunks[1], chunks[2]))
	f.Add(chunks[0])
	f.Add(rest[:len(rest)-1])
	f.Add(chunks[3][:BatchHeaderSize])
	f.Add(bytes.Repeat([]byte{0xff}, 80))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		l := openTestLog(t, dir, testLogConfig(), false, nil)
		if _, err := l.AppendAsFollower(prefix); err != nil {
			t.Fatal(err)
		}
		before := imageOf(t, l)
		info, err := l.AppendAsFollower(bytes.Clone(b))
		if err != nil {
			assertSameImage(t, imageOf(t, l), before, true)
			return
		}
		if info.FirstOffset >= 0 && (info.FirstOffset != before.logEnd || l.LogEndOffset() != info.LastOffset+1) {
			t.Fatalf("appended %+v to a log ending at %d, now at %d", info, before.logEnd, l.LogEndOffset())
		}
		after := imageOf(t, l)
		l.close(false)
		r := openTestLog(t, dir, testLogConfig(), false, nil)
		r.UpdateHighWatermark(after.hw)
		assertSameImage(t, imageOf(t, r), after, false)
	})
}

// batchRange is one batch of a log: its offsets.
type batchRange struct{ base, last int64 }

func batchesOf(t testing.TB, l *Log) []batchRange {
	t.Helper()
	var out []batchRange
	for _, b := range fetchAll(t, l, l.LogStartOffset(), 1) {
		h, _ := ParseBatchHeader(b)
		out = append(out, batchRange{h.BaseOffset, h.LastOffset()})
	}
	return out
}

// reopenBoth closes two logs (flushed or as a crash leaves them) and opens
// them again from their directories.
func reopenBoth(t *testing.T, a, b *Log, cfg LogConfig, clean bool) (*Log, *Log) {
	t.Helper()
	a.close(clean)
	b.close(clean)
	return openTestLog(t, a.dir, cfg, clean, nil), openTestLog(t, b.dir, cfg, clean, nil)
}

func TestTruncateTo(t *testing.T) {
	t.Parallel()
	cfg := replicaLogConfig()
	// The layout fillLeader makes, to pick offsets from.
	probe := openTestLog(t, t.TempDir(), cfg, false, newFakeClock())
	fillLeader(t, probe)
	batches := batchesOf(t, probe)
	var multi, abortMarker batchRange // a batch of several records in a later segment; the abort
	for _, b := range batches[6:] {
		if b.last > b.base && multi == (batchRange{}) {
			multi = b
		}
	}
	for _, a := range probe.CollectAbortedTxns(0, probe.LogEndOffset()) {
		abortMarker = batchRange{a.LastOffset, a.LastOffset}
	}
	segBases := segmentBases(probe)
	leo := probe.LogEndOffset()

	tests := []struct {
		name   string
		offset int64
		cut    int64 // where the log ends after
	}{
		{"inside a batch", multi.base + 1, multi.base},
		{"at a batch boundary", batches[3].base, batches[3].base},
		{"inside the first batch", 1, 0},
		{"at zero", 0, 0},
		{"at a segment boundary", segBases[2], segBases[2]},
		{"inside the last batch of a segment", segBases[2] - 1, batches[slices.IndexFunc(batches, func(b batchRange) bool { return b.last == segBases[2]-1 })].base},
		{"at the abort marker", abortMarker.base, abortMarker.base},
		{"after the abort marker", abortMarker.base + 1, abortMarker.base + 1},
		{"at the last batch", batches[len(batches)-1].base, batches[len(batches)-1].base},
		{"at the log end", leo, leo},
		{"past the log end", leo + 10, leo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			l := openTestLog(t, t.TempDir(), cfg, false, clock)
			fillLeader(t, l)
			// The reference: a replica that only ever had the batches below the cut.
			ref := openTestLog(t, t.TempDir(), cfg, false, clock)
			for _, b := range fetchAll(t, l, 0, 1) {
				if h, _ := ParseBatchHeader(b); h.LastOffset() < tt.cut {
					if _, err := ref.AppendAsFollower(b); err != nil {
						t.Fatal(err)
					}
				}
			}
			ref.UpdateHighWatermark(tt.cut)

			if err := l.TruncateTo(tt.offset); err != nil {
				t.Fatalf("TruncateTo(%d): %v", tt.offset, err)
			}
			assertSameImage(t, imageOf(t, l), imageOf(t, ref), true)
			if left := segmentFiles(t, l.dir, logFileSuffix); len(left) != l.NumSegments() {
				t.Fatalf("segment files %v for %d segments", left, l.NumSegments())
			}
			for _, b := range batchesOf(t, l) { // the indexes find every batch
				info, err := l.Read(b.last, 1, l.LogEndOffset(), true)
				if err != nil || info.FirstOffset != b.base {
					t.Fatalf("Read(%d): first %d, %v; want %d", b.last, info.FirstOffset, err, b.base)
				}
				info.Records.Release()
			}
			if off, _, ok, err := l.OffsetForTimestamp(0); tt.cut > 0 && (!ok || err != nil || off != 0) {
				t.Fatalf("OffsetForTimestamp(0) = %d %v %v", off, ok, err)
			}

			// Both go on alike, as leaders and as followers: a retry of producer
			// 1's last surviving batch is a duplicate, one of a batch that was
			// cut is new.
			for _, x := range []*Log{l, ref} {
				var next int32
				for _, p := range x.ProducerStates() {
					if p.ProducerID == 1 {
						last := p.Batches[len(p.Batches)-1].LastSeq
						if dup, err := x.AppendAsLeader(pbatch(t, batchOpts{}, 1, 0, last, false, rec("idem", 400)), 9); err != nil || !dup.Duplicate {
							t.Fatalf("retry of sequence %d: %+v, %v", last, dup, err)
						}
						next = last + 1
					}
				}
				if info, err := x.AppendAsLeader(pbatch(t, batchOpts{}, 1, 0, next, false, rec("idem", 400)), 9); err != nil || info.Duplicate || info.FirstOffset != tt.cut {
					t.Fatalf("sequence %d after the truncation: %+v, %v", next, info, err)
				}
				x.UpdateHighWatermark(x.LogEndOffset())
				if _, err := x.AppendAsFollower(at(t, newBatch(t, batchOpts{codec: compressionLZ4}, rec("f", 500)), x.LogEndOffset(), 11)); err != nil {
					t.Fatal(err)
				}
				x.UpdateHighWatermark(x.LogEndOffset())
			}
			assertSameImage(t, imageOf(t, l), imageOf(t, ref), false)
			if e, end := l.EndOffsetForEpoch(9); e != 9 || end != tt.cut+1 {
				t.Fatalf("EndOffsetForEpoch(9) = %d, %d", e, end)
			}

			for _, clean := range []bool{true, false} {
				l, ref = reopenBoth(t, l, ref, cfg, clean)
				assertSameImage(t, imageOf(t, l), imageOf(t, ref), false)
			}
		})
	}
}

// at places a batch at base offset base with leader epoch epoch, as a leader
// would have (neither is covered by the CRC).
func at(t testing.TB, b []byte, base int64, epoch int32) []byte {
	t.Helper()
	binary.BigEndian.PutUint64(b[baseOffsetOffset:], uint64(base))
	binary.BigEndian.PutUint32(b[partitionLeaderEpochOffset:], uint32(epoch))
	return b
}

func TestTruncateFullyAndStartAt(t *testing.T) {
	t.Parallel()
	cfg := replicaLogConfig()
	tests := []struct {
		name        string
		deleteUntil int64 // DeleteRecordsBefore first, 0: no
		offset      int64
		truncateTo  bool // through TruncateTo below the log start offset
	}{
		{"past the log end", 0, 100, false},
		{"inside the log", 0, 7, false},
		{"at zero", 0, 0, false},
		{"below a deleted prefix", 12, 4, false},
		{"TruncateTo below the log start", 12, 10, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			m := openTestManager(t, dir, newFakeClock(), LogConfig{})
			tp, err := m.CreateTopic("f", 1, map[string]string{"segment.bytes": itoa(int(cfg.SegmentBytes)), "index.interval.bytes": "100"})
			if err != nil {
				t.Fatal(err)
			}
			l := tp.Partitions[0]
			fillLeader(t, l)
			if tt.deleteUntil > 0 {
				if _, err := l.DeleteRecordsBefore(tt.deleteUntil); err != nil {
					t.Fatal(err)
				}
			}
			if tt.truncateTo {
				err = l.TruncateTo(tt.offset)
			} else {
				err = l.TruncateFullyAndStartAt(tt.offset)
			}
			if err != nil {
				t.Fatal(err)
			}
			check := func(l *Log) {
				t.Helper()
				if l.LogStartOffset() != tt.offset || l.LogEndOffset() != tt.offset || l.HighWatermark() != tt.offset ||
					l.LastStableOffset() != tt.offset || l.NumSegments() != 1 || l.Size() != 0 {
					t.Fatalf("log start %d end %d HW %d LSO %d, %d segments of %d bytes", l.LogStartOffset(), l.LogEndOffset(),
						l.HighWatermark(), l.LastStableOffset(), l.NumSegments(), l.Size())
				}
				if l.LatestEpoch() != -1 || len(l.ProducerStates()) != 0 || len(l.CollectAbortedTxns(0, 1000)) != 0 {
					t.Fatalf("epoch %d, producers %v, aborted %v", l.LatestEpoch(), l.ProducerStates(), l.CollectAbortedTxns(0, 1000))
				}
				if snaps := segmentFiles(t, l.dir, ".snapshot"); len(snaps) != 0 {
					t.Fatalf("snapshots left: %v", snaps)
				}
				if _, err := l.Read(tt.offset-1, 1000, tt.offset, true); tt.offset > 0 && !errors.Is(err, ErrOffsetOutOfRange) {
					t.Fatalf("read below the start: %v", err)
				}
			}
			check(l)
			if files := segmentFiles(t, l.dir, ""); len(files) > 5 { // .log .index .timeindex, no leftovers
				t.Fatalf("files left: %v", files)
			}
			crash(m) // the new start is durable before it returns
			m = openTestManager(t, dir, newFakeClock(), LogConfig{})
			tp, _ = m.Topic("f")
			l = tp.Partitions[0]
			check(l)
			// It continues at offset, as a follower and as a leader, and a
			// retry of producer 1 is new to it.
			b := at(t, pbatch(t, batchOpts{}, 1, 0, 3, false, rec("idem", 400)), tt.offset, 6)
			setBatchCRC(b)
			if info, err := l.AppendAsFollower(b); err != nil || info.FirstOffset != tt.offset {
				t.Fatalf("AppendAsFollower: %+v, %v", info, err)
			}
			if info := appendOK(t, l, pbatch(t, batchOpts{}, 1, 0, 4, false, rec("idem", 401)), 7); info.FirstOffset != tt.offset+1 || info.Duplicate {
				t.Fatalf("AppendAsLeader: %+v", info)
			}
			if e, end := l.EndOffsetForEpoch(6); e != 6 || end != tt.offset+1 {
				t.Fatalf("EndOffsetForEpoch(6) = %d, %d", e, end)
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			m = openTestManager(t, dir, newFakeClock(), LogConfig{})
			tp, _ = m.Topic("f")
			if l := tp.Partitions[0]; l.LogStartOffset() != tt.offset || l.LogEndOffset() != tt.offset+2 || len(readRecords(t, l, tt.offset)) != 2 {
				t.Fatalf("after a clean restart: log start %d end %d", l.LogStartOffset(), l.LogEndOffset())
			}
		})
	}
}

// TestTruncateCrashLeavesPrefix recovers the states a crash in the middle of
// TruncateTo can leave on disk (segments above the cut gone or not, the
// holding segment cut or not, the epoch checkpoint and producer snapshots
// not yet updated) and checks each is a prefix of the log, with the epochs,
// producers and aborted transactions of a replica that only had that prefix.
func TestTruncateCrashLeavesPrefix(t *testing.T) {
	t.Parallel()
	cfg := replicaLogConfig()
	dir := t.TempDir()
	orig := openTestLog(t, dir, cfg, false, newFakeClock())
	fillLeader(t, orig)
	bases := segmentBases(orig)
	var all []byte
	for _, seg := range *orig.segments.Load() {
		all = append(all, readFile(t, seg.log.path)...)
	}
	orig.close(true)
	orig = openTestLog(t, dir, cfg, true, nil)
	holding := readFile(t, segmentFile(dir, bases[1], logFileSuffix))
	first, _ := ParseBatchHeader(holding)
	cutPos := first.Size() // the cut: the second batch of the second segment

	removeTop := func(d string) {
		for _, base := range bases[2:] {
			for _, suffix := range []string{logFileSuffix, indexFileSuffix, timeIndexFileSuffix, txnIndexFileSuffix} {
				os.Remove(segmentFile(d, base, suffix))
			}
		}
	}
	cutHolding := func(d string) { os.Truncate(segmentFile(d, bases[1], logFileSuffix), int64(cutPos)) }
	tests := []struct {
		name   string
		mutate func(d string)
	}{
		{"segments above deleted", removeTop},
		{"holding segment cut, segments above still there", cutHolding},
		{"all cut, checkpoint and snapshots stale", func(d string) { removeTop(d); cutHolding(d) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				os.WriteFile(filepath.Join(d, e.Name()), readFile(t, filepath.Join(dir, e.Name())), 0o644)
			}
			tt.mutate(d)
			r := openTestLog(t, d, cfg, false, nil)
			checkValidPrefix(t, r, all)
			ref := openTestLog(t, t.TempDir(), cfg, false, nil)
			for _, b := range fetchAll(t, orig, 0, 1) {
				if h, _ := ParseBatchHeader(b); h.LastOffset() < r.LogEndOffset() {
					if _, err := ref.AppendAsFollower(b); err != nil {
						t.Fatal(err)
					}
				}
			}
			ref.UpdateHighWatermark(ref.LogEndOffset())
			assertSameImage(t, imageOf(t, r), imageOf(t, ref), false)
		})
	}
}
