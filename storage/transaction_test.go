package storage

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kbroker/kbroker/idempotence"
)

// producerBatch is a one-record batch of producer pid at epoch and seq.
func producerBatch(t testing.TB, pid int64, epoch int16, seq int32, txn bool) []byte {
	t.Helper()
	b := newBatch(t, batchOpts{}, rec("v", 1000))
	binary.BigEndian.PutUint64(b[producerIDOffset:], uint64(pid))
	binary.BigEndian.PutUint16(b[producerEpochOffset:], uint16(epoch))
	binary.BigEndian.PutUint32(b[baseSequenceOffset:], uint32(seq))
	if txn {
		attrs := binary.BigEndian.Uint16(b[attributesOffset:]) | transactionalFlagBit
		binary.BigEndian.PutUint16(b[attributesOffset:], attrs)
	}
	setBatchCRC(b)
	return b
}

func TestIdempotentAppend(t *testing.T) {
	l := openTestLog(t, t.TempDir(), testLogConfig(), false, nil)
	appendOK(t, l, newBatch(t, batchOpts{}, rec("plain", 1)), 0)
	first := appendOK(t, l, producerBatch(t, 7, 0, 0, false), 0)
	appendOK(t, l, producerBatch(t, 7, 0, 1, false), 0)
	dup, err := l.AppendAsLeader(producerBatch(t, 7, 0, 0, false), 0)
	if err != nil || !dup.Duplicate || dup.FirstOffset != first.FirstOffset || dup.LastOffset != first.LastOffset {
		t.Fatalf("retry of the first batch: %+v, %v; want a duplicate at %d", dup, err, first.FirstOffset)
	}
	if l.LogEndOffset() != 3 {
		t.Errorf("the duplicate was appended: LEO %d", l.LogEndOffset())
	}
	if _, err := l.AppendAsLeader(producerBatch(t, 7, 0, 5, false), 0); !errors.Is(err, idempotence.ErrOutOfOrderSequence) {
		t.Errorf("gap: %v", err)
	}
	if _, err := l.AppendAsLeader(producerBatch(t, 7, 1, 0, false), 0); err != nil {
		t.Errorf("new epoch at 0: %v", err)
	}
	if _, err := l.AppendAsLeader(producerBatch(t, 7, 0, 2, false), 0); !errors.Is(err, idempotence.ErrInvalidProducerEpoch) {
		t.Errorf("old epoch: %v", err)
	}
}

func TestTransactionMarkers(t *testing.T) {
	l := openTestLog(t, t.TempDir(), testLogConfig(), false, nil)
	appendOK(t, l, producerBatch(t, 1, 0, 0, true), 0)           // 0: txn of producer 1
	appendOK(t, l, newBatch(t, batchOpts{}, rec("plain", 1)), 0) // 1
	appendOK(t, l, producerBatch(t, 2, 0, 0, true), 0)           // 2: txn of producer 2
	appendOK(t, l, producerBatch(t, 1, 0, 1, true), 0)           // 3
	if l.HighWatermark() != 4 || l.LastStableOffset() != 0 {
		t.Fatalf("HW %d LSO %d, want 4 and 0", l.HighWatermark(), l.LastStableOffset())
	}
	marker := func(pid int64, commit bool) LogAppendInfo {
		info, err := l.AppendTxnMarker(EndTxnMarker{ProducerID: pid, Commit: commit}, 0)
		if err != nil {
			t.Fatal(err)
		}
		l.UpdateHighWatermark(info.LastOffset + 1)
		return info
	}
	if m := marker(1, false); m.FirstOffset != 4 { // 4: abort of producer 1
		t.Fatalf("marker at %d", m.FirstOffset)
	}
	if l.LastStableOffset() != 2 {
		t.Errorf("LSO %d after the abort, want 2 (producer 2 still open)", l.LastStableOffset())
	}
	marker(2, true) // 5: commit of producer 2
	if l.LastStableOffset() != 6 {
		t.Errorf("LSO %d with no open transaction, want the HW 6", l.LastStableOffset())
	}
	want := []AbortedTxn{{ProducerID: 1, FirstOffset: 0, LastOffset: 4, LastStableOffset: 2}}
	if got := l.CollectAbortedTxns(0, 6); len(got) != 1 || got[0] != want[0] {
		t.Errorf("aborted %+v, want %+v", got, want)
	}
	if got := l.CollectAbortedTxns(5, 6); len(got) != 0 {
		t.Errorf("aborted after the marker: %+v", got)
	}
	// The marker is a control batch a consumer can decode.
	info, err := l.Read(4, 1000, 5, true)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := info.Records.Bytes()
	info.Records.Release()
	if err := VerifyBatchCRC(b); err != nil {
		t.Fatal(err)
	}
	if m, err := DecodeEndTxnMarker(b); err != nil || m.Commit || m.ProducerID != 1 {
		t.Errorf("marker %+v, %v", m, err)
	}
	// A zombie coordinator's marker with an older producer epoch is refused.
	appendOK(t, l, producerBatch(t, 3, 4, 0, true), 0)
	if _, err := l.AppendTxnMarker(EndTxnMarker{ProducerID: 3, ProducerEpoch: 3}, 0); !errors.Is(err, idempotence.ErrInvalidProducerEpoch) {
		t.Errorf("marker of an older epoch: %v", err)
	}
}

// TestProducerStateRecovery crashes a log (no clean close), loses its
// transaction index, and checks that a restart rebuilds both the producer
// state and the index from the log; then that a clean close leaves a
// snapshot the next start loads instead.
func TestProducerStateRecovery(t *testing.T) {
	dir := t.TempDir()
	cfg := testLogConfig()
	l, err := openLog(logParams{dir: dir, topic: "t", config: cfg, now: newFakeClock().Now, logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.close(false) })
	appendOK(t, l, producerBatch(t, 1, 0, 0, false), 0) // 0
	appendOK(t, l, producerBatch(t, 2, 0, 0, true), 0)  // 1
	info, _ := l.AppendTxnMarker(EndTxnMarker{ProducerID: 2}, 0)
	l.UpdateHighWatermark(info.LastOffset + 1)         // 2: abort
	appendOK(t, l, producerBatch(t, 3, 0, 0, true), 0) // 3: open
	// A crash: the files stay as they are, the index of the abort is lost.
	for _, seg := range *l.segments.Load() {
		seg.log.file.Sync()
	}
	os.Remove(segmentFile(dir, 0, txnIndexFileSuffix))

	check := func(l *Log) {
		t.Helper()
		l.UpdateHighWatermark(l.LogEndOffset())
		if got := l.LastStableOffset(); got != 3 {
			t.Errorf("LSO %d, want 3", got)
		}
		if got := l.CollectAbortedTxns(0, 4); len(got) != 1 || got[0].ProducerID != 2 || got[0].LastOffset != 2 {
			t.Errorf("aborted %+v", got)
		}
		dup, err := l.AppendAsLeader(producerBatch(t, 1, 0, 0, false), 0)
		if err != nil || !dup.Duplicate || dup.FirstOffset != 0 {
			t.Errorf("a retry after the restart: %+v, %v", dup, err)
		}
	}
	r := openTestLog(t, dir, cfg, false, nil)
	check(r)
	if err := r.close(true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(idempotence.SnapshotPath(dir, 4)); err != nil {
		t.Fatalf("no snapshot after a clean close: %v", err)
	}
	again := openTestLog(t, dir, cfg, true, nil)
	if got := again.snapshotOffset.Load(); got != 4 {
		t.Errorf("state loaded from the snapshot at %d, want the one at 4", got)
	}
	check(again)
}

func FuzzDecodeEndTxnMarker(f *testing.F) {
	f.Add(encodeEndTxnMarker(EndTxnMarker{ProducerID: 5, ProducerEpoch: 2, CoordinatorEpoch: 9, Commit: true}, 1000))
	f.Add(newBatch(f, batchOpts{}, rec("v", 1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeEndTxnMarker(b)
		if err != nil {
			return
		}
		again, err := DecodeEndTxnMarker(encodeEndTxnMarker(m, 0))
		if err != nil || again != m {
			t.Fatalf("round trip %+v -> %+v, %v", m, again, err)
		}
	})
}

func FuzzTransactionIndex(f *testing.F) {
	f.Add(appendAbortedTxn(appendAbortedTxn(nil, AbortedTxn{1, 0, 4, 2}), AbortedTxn{2, 3, 9, 10}))
	f.Add([]byte{0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "0.txnindex")
		os.WriteFile(path, b, 0o644)
		x, err := openTransactionIndex(path, true)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range x.entries {
			if e.FirstOffset > e.LastOffset || (i > 0 && e.LastOffset <= x.entries[i-1].LastOffset) {
				t.Fatalf("entry %d %+v accepted", i, e)
			}
		}
		// What was kept is what the file now holds.
		reread, _ := os.ReadFile(path)
		if len(reread) != len(x.entries)*txnIndexEntrySize {
			t.Fatalf("file of %d bytes for %d entries", len(reread), len(x.entries))
		}
	})
}

// While transactions open and close, a high watermark moved concurrently
// to the log end (as a follower's fetch moves it in a cluster) never lets
// the last stable offset pass the start of an open transaction: the move
// waits for an append's producer state.
func TestHighWatermarkNeverExposesOpenTransaction(t *testing.T) {
	l := openTestLog(t, t.TempDir(), testLogConfig(), false, nil)
	const txns = 2000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range txns {
			if _, err := l.AppendAsLeader(producerBatch(t, 1, 0, int32(i), true), 0); err != nil {
				t.Error(err)
				return
			}
			if _, err := l.AppendTxnMarker(EndTxnMarker{ProducerID: 1, Commit: true}, 0); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
		}
		l.UpdateHighWatermark(l.LogEndOffset())
		lso := l.LastStableOffset()
		for _, p := range l.ProducerStates() {
			if p.CurrentTxnFirstOffset >= 0 && p.CurrentTxnFirstOffset < lso {
				t.Fatalf("last stable offset %d passes the open transaction at %d", lso, p.CurrentTxnFirstOffset)
			}
		}
	}
}
