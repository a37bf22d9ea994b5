package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// fuzzSeeds are batches of every codec plus damaged variants.
func fuzzSeeds(t testing.TB) [][]byte {
	recs := []testRec{
		{key: []byte("k"), value: []byte("v"), ts: 5, headers: []RecordHeader{{Key: "h", Value: []byte("x")}}},
		{key: nil, value: bytes.Repeat([]byte("ab"), 40), ts: 3},
	}
	var seeds [][]byte
	for _, o := range []batchOpts{{}, {codec: compressionGzip}, {codec: compressionSnappy}, {codec: compressionSnappy, xerial: true}, {codec: compressionLZ4}, {codec: compressionZstd}} {
		b := newBatch(t, o, recs...)
		seeds = append(seeds, b, b[:len(b)-1], append(bytes.Clone(b), 0))
	}
	seeds = append(seeds, nil, make([]byte, BatchHeaderSize), bytes.Repeat([]byte{0xff}, 80))
	return seeds
}

// FuzzParseBatchHeader: never panics; an accepted header has magic 2, a size that
// covers the header, and re-encodes to the same 61 bytes.
func FuzzParseBatchHeader(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseBatchHeader(b)
		if err != nil {
			if !errors.Is(err, ErrCorruptRecord) {
				t.Fatalf("error not ErrCorruptRecord: %v", err)
			}
			return
		}
		if h.Magic != 2 || h.Size() < BatchHeaderSize {
			t.Fatalf("accepted %+v", h)
		}
		kb := kmsg.RecordBatch{
			FirstOffset: h.BaseOffset, Length: h.BatchLength, PartitionLeaderEpoch: h.PartitionLeaderEpoch, Magic: h.Magic,
			CRC: int32(h.CRC), Attributes: h.Attributes, LastOffsetDelta: h.LastOffsetDelta, FirstTimestamp: h.BaseTimestamp,
			MaxTimestamp: h.MaxTimestamp, ProducerID: h.ProducerID, ProducerEpoch: h.ProducerEpoch, FirstSequence: h.BaseSequence,
			NumRecords: h.RecordCount,
		}
		if enc := kb.AppendTo(nil); !bytes.Equal(enc, b[:BatchHeaderSize]) {
			t.Fatalf("header does not round-trip:\n%x\n%x", enc, b[:BatchHeaderSize])
		}
		_ = VerifyBatchCRC(b) // must not panic
	})
}

// FuzzRecords: never panics; errors are ErrCorruptRecord; an accepted batch yields
// exactly RecordCount records, and re-encoding them uncompressed gives a batch that
// is accepted again with the same records. Skipping headers accepts and
// refuses the same batches and gives the same records, without headers.
func FuzzRecords(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got, skipped []Record
		err := recordsLimit(b, 1<<20, true, func(r Record) bool { got = append(got, cloneRecord(r)); return true })
		skipErr := recordsLimit(b, 1<<20, false, func(r Record) bool { skipped = append(skipped, cloneRecord(r)); return true })
		if (err == nil) != (skipErr == nil) {
			t.Fatalf("with headers: %v; skipping them: %v", err, skipErr)
		}
		if len(skipped) != len(got) {
			t.Fatalf("%d records skipping headers, %d with them", len(skipped), len(got))
		}
		for i := range got {
			want := got[i]
			want.Headers = nil
			if skipped[i].Headers != nil || !reflect.DeepEqual(normalize([]Record{want}), normalize(skipped[i:i+1])) {
				t.Fatalf("record %d skipping headers: %+v, with them: %+v", i, skipped[i], got[i])
			}
		}
		if err != nil {
			if !errors.Is(err, ErrCorruptRecord) {
				t.Fatalf("error not ErrCorruptRecord: %v", err)
			}
			return
		}
		h, _ := ParseBatchHeader(b)
		if len(got) != int(h.RecordCount) {
			t.Fatalf("%d records, header says %d", len(got), h.RecordCount)
		}
		if h.TimestampType() == 1 {
			return // record timestamps were replaced by the batch's; nothing to re-encode
		}
		var raw []byte
		for _, r := range got {
			kr := kmsg.Record{TimestampDelta64: r.Timestamp - h.BaseTimestamp, OffsetDelta: int32(r.Offset - h.BaseOffset), Key: r.Key, Value: r.Value}
			for _, hd := range r.Headers {
				kr.Headers = append(kr.Headers, kmsg.Header{Key: hd.Key, Value: hd.Value})
			}
			kr.Length = int32(len(kr.AppendTo(nil)) - 1)
			raw = kr.AppendTo(raw)
		}
		re := append(bytes.Clone(b[:BatchHeaderSize]), raw...)
		binary.BigEndian.PutUint32(re[batchLengthOffset:], uint32(len(re)-logOverhead))
		re[attributesOffset+1] &^= compressionMask
		var again []Record
		if err := Records(re, func(r Record) bool { again = append(again, cloneRecord(r)); return true }); err != nil {
			t.Fatalf("re-encoded batch rejected: %v", err)
		}
		if !reflect.DeepEqual(normalize(got), normalize(again)) {
			t.Fatalf("records differ after re-encoding:\n%+v\n%+v", got, again)
		}
	})
}

// normalize makes empty and nil header slices compare equal.
func normalize(rs []Record) []Record {
	out := make([]Record, len(rs))
	for i, r := range rs {
		if len(r.Headers) == 0 {
			r.Headers = nil
		}
		out[i] = r
	}
	return out
}

// FuzzRecoverSegment: arbitrary bytes as a segment's .log; recovery (the procedure
// openLog runs on the active segment after an unclean shutdown) never panics and
// leaves a file that is a prefix of the input made of whole, CRC-valid batches with
// growing offsets (a compacted segment has gaps), with the next offset it reports. (TestRecoverActiveSegment
// covers the same through openLog; this target skips its fsyncs to run fast.)
func FuzzRecoverSegment(f *testing.F) {
	var valid []byte // the intact seed batches, stamped with continuous offsets
	for i, s := range fuzzSeeds(f)[:18] {
		if i%3 == 0 {
			s = bytes.Clone(s)
			binary.BigEndian.PutUint64(s, uint64(offsetAfter(valid)))
			valid = append(valid, s...)
		}
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-9])
	f.Add(append(bytes.Clone(valid), "trailing garbage"...))
	f.Add(valid[:BatchHeaderSize+3])
	f.Add([]byte{})
	flipped := bytes.Clone(valid)
	flipped[len(flipped)/2] ^= 0x10
	f.Add(flipped)
	dir := f.TempDir()
	logPath := segmentFile(dir, 0, logFileSuffix)
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(logPath, data, 0o644); err != nil {
			t.Fatal(err)
		}
		seg, _, err := openSegment(dir, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		next, truncated, err := seg.recover(4096, &LeaderEpochFileCache{})
		seg.close()
		if err != nil {
			t.Fatalf("recover: %v", err)
		}
		got := readFile(t, logPath)
		if !bytes.HasPrefix(data, got) || int64(len(data)-len(got)) != truncated {
			t.Fatalf("recovered file is not a prefix of the input")
		}
		want := int64(0)
		for p := got; len(p) > 0; {
			h, err := ParseBatchHeader(p)
			if err != nil || h.Size() > len(p) || VerifyBatchCRC(p[:h.Size()]) != nil || h.BaseOffset < want || h.LastOffsetDelta < 0 {
				t.Fatalf("invalid batch kept at offset %d: %v", want, err)
			}
			want = h.LastOffset() + 1
			p = p[h.Size():]
		}
		if next != want {
			t.Fatalf("recover reports next offset %d, batches end at %d", next, want)
		}
	})
}

// offsetAfter is the end offset of a sequence of batches.
func offsetAfter(b []byte) int64 {
	var next int64
	for len(b) > 0 {
		h, _ := ParseBatchHeader(b)
		next = h.LastOffset() + 1
		b = b[h.Size():]
	}
	return next
}
