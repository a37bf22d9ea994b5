package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

func TestParseBatchHeader(t *testing.T) {
	t.Parallel()
	good := newBatch(t, batchOpts{}, rec("a", 10), rec("b", 30), rec("c", 20))
	h, err := ParseBatchHeader(good)
	if err != nil {
		t.Fatal(err)
	}
	if h.Size() != len(good) || h.LastOffset() != 2 || h.RecordCount != 3 || h.MaxTimestamp != 30 ||
		h.BaseTimestamp != 10 || h.Magic != 2 || h.ProducerID != -1 || h.Compression() != 0 {
		t.Fatalf("unexpected header %+v", h)
	}

	tests := []struct {
		name   string
		mutate func([]byte) []byte
	}{
		{"short", func(b []byte) []byte { return b[:BatchHeaderSize-1] }},
		{"empty", func(b []byte) []byte { return nil }},
		{"magic 1", func(b []byte) []byte { b[magicOffset] = 1; return b }},
		{"length below header", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[batchLengthOffset:], minBatchLength-1)
			return b
		}},
		{"negative length", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[batchLengthOffset:], 0xffffffff)
			return b
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseBatchHeader(tt.mutate(bytes.Clone(good)))
			if !errors.Is(err, ErrCorruptRecord) {
				t.Fatalf("err = %v, want ErrCorruptRecord", err)
			}
		})
	}
}

func TestBatchAttributes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		attrs         int16
		codec         int8
		txn, ctl      bool
		timestampType int8
	}{
		{0, 0, false, false, 0},
		{4, 4, false, false, 0},
		{0x08 | 1, 1, false, false, 1},
		{0x10, 0, true, false, 0},
		{0x30, 0, true, true, 0},
	}
	for _, tt := range tests {
		h := BatchHeader{Attributes: tt.attrs}
		if h.Compression() != tt.codec || h.IsTransactional() != tt.txn || h.IsControl() != tt.ctl || h.TimestampType() != tt.timestampType {
			t.Errorf("attributes %#x: got codec %d txn %v control %v tstype %d", tt.attrs, h.Compression(), h.IsTransactional(), h.IsControl(), h.TimestampType())
		}
	}
}

func TestVerifyBatchCRC(t *testing.T) {
	t.Parallel()
	good := newBatch(t, batchOpts{}, rec("hello", 1))
	if err := VerifyBatchCRC(good); err != nil {
		t.Fatal(err)
	}
	// Base offset and leader epoch are outside the CRC.
	b := bytes.Clone(good)
	binary.BigEndian.PutUint64(b, 12345)
	binary.BigEndian.PutUint32(b[partitionLeaderEpochOffset:], 7)
	if err := VerifyBatchCRC(b); err != nil {
		t.Fatalf("stamped batch: %v", err)
	}
	for _, tt := range []struct {
		name  string
		batch []byte
	}{
		{"flipped record byte", func() []byte { b := bytes.Clone(good); b[len(b)-1] ^= 1; return b }()},
		{"flipped attribute", func() []byte { b := bytes.Clone(good); b[attributesOffset+1] ^= 8; return b }()},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"truncated", good[:len(good)-1]},
	} {
		if err := VerifyBatchCRC(tt.batch); !errors.Is(err, ErrCorruptRecord) {
			t.Errorf("%s: err = %v, want ErrCorruptRecord", tt.name, err)
		}
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	t.Parallel()
	recs := []testRec{
		{key: []byte("k1"), value: []byte("v1"), ts: 1000},
		{key: nil, value: []byte("null key"), ts: 1005},
		{key: []byte("k3"), value: nil, ts: 999, headers: []RecordHeader{{Key: "h1", Value: []byte("x")}, {Key: "h2", Value: nil}}},
		{key: []byte{}, value: bytes.Repeat([]byte("long value "), 500), ts: 1010},
	}
	codecs := []struct {
		name string
		o    batchOpts
	}{
		{"none", batchOpts{codec: compressionNone}},
		{"gzip", batchOpts{codec: compressionGzip}},
		{"snappy", batchOpts{codec: compressionSnappy}},
		{"snappy-xerial", batchOpts{codec: compressionSnappy, xerial: true}},
		{"lz4", batchOpts{codec: compressionLZ4}},
		{"zstd", batchOpts{codec: compressionZstd}},
	}
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			batch := newBatch(t, c.o, recs...)
			binary.BigEndian.PutUint64(batch, 100) // base offset
			var got []Record
			if err := Records(batch, func(r Record) bool { got = append(got, cloneRecord(r)); return true }); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(recs) {
				t.Fatalf("%d records, want %d", len(got), len(recs))
			}
			for i, r := range got {
				want := recs[i]
				if r.Offset != 100+int64(i) || r.Timestamp != want.ts || !bytes.Equal(r.Key, want.key) ||
					(r.Key == nil) != (want.key == nil) || !bytes.Equal(r.Value, want.value) || (r.Value == nil) != (want.value == nil) {
					t.Errorf("record %d = %+v, want %+v", i, r, want)
				}
				if fmt.Sprint(r.Headers) != fmt.Sprint(want.headers) {
					t.Errorf("record %d headers = %v, want %v", i, r.Headers, want.headers)
				}
			}
			// Early stop is not an error.
			n := 0
			if err := Records(batch, func(Record) bool { n++; return false }); err != nil || n != 1 {
				t.Fatalf("early stop: n=%d err=%v", n, err)
			}
		})
	}
}

func TestRecordsLogAppendTime(t *testing.T) {
	t.Parallel()
	b := newBatch(t, batchOpts{}, rec("a", 1), rec("b", 2))
	binary.BigEndian.PutUint16(b[attributesOffset:], timestampTypeMask)
	binary.BigEndian.PutUint64(b[maxTimestampOffset:], 777)
	err := Records(b, func(r Record) bool {
		if r.Timestamp != 777 {
			t.Errorf("timestamp %d, want the batch's LogAppendTime 777", r.Timestamp)
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRecordsCorrupt(t *testing.T) {
	t.Parallel()
	good := newBatch(t, batchOpts{}, rec("a", 1), rec("b", 2))
	fix := func(b []byte) []byte { // keep the batch length consistent
		binary.BigEndian.PutUint32(b[batchLengthOffset:], uint32(len(b)-logOverhead))
		return b
	}
	tests := []struct {
		name  string
		batch []byte
	}{
		{"count too high", func() []byte { b := bytes.Clone(good); binary.BigEndian.PutUint32(b[recordCountOffset:], 3); return b }()},
		{"count too low", func() []byte { b := bytes.Clone(good); binary.BigEndian.PutUint32(b[recordCountOffset:], 1); return b }()},
		{"negative count", func() []byte {
			b := bytes.Clone(good)
			binary.BigEndian.PutUint32(b[recordCountOffset:], 0xffffffff)
			return b
		}()},
		{"trailing bytes", fix(append(bytes.Clone(good), 0, 0))},
		{"truncated record", fix(bytes.Clone(good[:len(good)-2]))},
		{"length mismatch", append(bytes.Clone(good), 1)},
		{"unknown codec", func() []byte { b := bytes.Clone(good); b[attributesOffset+1] |= 5; return b }()},
		{"bad gzip", func() []byte { b := bytes.Clone(good); b[attributesOffset+1] |= compressionGzip; return b }()},
		{"bad zstd", func() []byte { b := bytes.Clone(good); b[attributesOffset+1] |= compressionZstd; return b }()},
		{"bad lz4", func() []byte { b := bytes.Clone(good); b[attributesOffset+1] |= compressionLZ4; return b }()},
		{"bad snappy", func() []byte { b := bytes.Clone(good); b[attributesOffset+1] |= compressionSnappy; return b }()},
		{"record length overruns", func() []byte { b := bytes.Clone(good); b[BatchHeaderSize] = 0x7e; return b }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Records(tt.batch, func(Record) bool { return true })
			if !errors.Is(err, ErrCorruptRecord) {
				t.Fatalf("err = %v, want ErrCorruptRecord", err)
			}
		})
	}
}

func TestVarint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   []byte
		v    int32
		n    int
		long bool
	}{
		{[]byte{0x00}, 0, 1, false},
		{[]byte{0x01}, -1, 1, false},
		{[]byte{0x02}, 1, 1, false},
		{[]byte{0xfe, 0xff, 0xff, 0xff, 0x0f}, 2147483647, 5, false},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, -2147483648, 5, false},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x1f}, 0, -1, false}, // 33 bits
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, 0, -1, false},
		{[]byte{0x80}, 0, 0, false}, // truncated
	}
	for _, tt := range tests {
		v, n := varint(tt.in)
		if v != tt.v || n != tt.n {
			t.Errorf("varint(%x) = %d, %d; want %d, %d", tt.in, v, n, tt.v, tt.n)
		}
	}
	if v, n := varlong([]byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}); v != 1<<63-1 || n != 10 {
		t.Errorf("varlong max = %d, %d", v, n)
	}
	if _, n := varlong([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}); n != -1 {
		t.Errorf("varlong overflow accepted")
	}
}

func TestDecompressLimit(t *testing.T) {
	t.Parallel()
	raw := bytes.Repeat([]byte{0}, 1<<16)
	for _, codec := range []int8{compressionGzip, compressionSnappy, compressionLZ4, compressionZstd} {
		c := compressForTest(t, batchOpts{codec: codec}, raw)
		if out, err := decompressLimit(codec, c, len(raw), nil); err != nil || len(out) != len(raw) {
			t.Errorf("codec %d at limit: %d bytes, %v", codec, len(out), err)
		}
		if _, err := decompressLimit(codec, c, len(raw)-1, nil); !errors.Is(err, ErrCorruptRecord) {
			t.Errorf("codec %d over limit: err = %v", codec, err)
		}
	}
}
