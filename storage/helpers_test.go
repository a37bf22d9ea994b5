package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// testRec is a record to encode into a test batch.
type testRec struct {
	key, value []byte
	ts         int64
	headers    []RecordHeader
}

func rec(value string, ts int64) testRec {
	return testRec{key: []byte("k"), value: []byte(value), ts: ts}
}

// batchOpts shape a test batch.
type batchOpts struct {
	codec  int8
	xerial bool // snappy with the Java client's framing
}

// newBatch encodes a RecordBatch v2 with kmsg (base offset 0, no producer id) and
// computes its CRC, as a producer would send it.
func newBatch(t testing.TB, o batchOpts, recs ...testRec) []byte {
	t.Helper()
	if len(recs) == 0 {
		t.Fatal("newBatch needs records")
	}
	baseTs, maxTs := recs[0].ts, recs[0].ts
	for _, r := range recs {
		baseTs, maxTs = min(baseTs, r.ts), max(maxTs, r.ts)
	}
	var raw []byte
	for i, r := range recs {
		kr := kmsg.Record{TimestampDelta64: r.ts - baseTs, OffsetDelta: int32(i), Key: r.key, Value: r.value}
		for _, h := range r.headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		body := kr.AppendTo(nil) // with Length 0: a one-byte varint to drop
		kr.Length = int32(len(body) - 1)
		raw = kr.AppendTo(raw)
	}
	b := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           int16(o.codec),
		LastOffsetDelta:      int32(len(recs) - 1),
		FirstTimestamp:       baseTs,
		MaxTimestamp:         maxTs,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           int32(len(recs)),
		Records:              compressForTest(t, o, raw),
	}
	b.Length = int32(BatchHeaderSize - logOverhead + len(b.Records))
	out := b.AppendTo(nil)
	setBatchCRC(out)
	return out
}

func compressForTest(t testing.TB, o batchOpts, raw []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch o.codec {
	case compressionNone:
		return raw
	case compressionGzip:
		w := gzip.NewWriter(&buf)
		w.Write(raw)
		w.Close()
	case compressionSnappy:
		if !o.xerial {
			return snappy.Encode(nil, raw)
		}
		buf.Write(xerialMagic)
		binary.Write(&buf, binary.BigEndian, int32(1))
		binary.Write(&buf, binary.BigEndian, int32(1))
		for len(raw) > 0 { // several blocks, as xerial writes 32 KiB chunks
			n := min(len(raw), 64)
			blk := snappy.Encode(nil, raw[:n])
			binary.Write(&buf, binary.BigEndian, int32(len(blk)))
			buf.Write(blk)
			raw = raw[n:]
		}
	case compressionLZ4:
		w := lz4.NewWriter(&buf)
		w.Write(raw)
		w.Close()
	case compressionZstd:
		enc, err := zstd.NewWriter(nil)
		if err != nil {
			t.Fatal(err)
		}
		out := enc.EncodeAll(raw, nil)
		enc.Close()
		return out
	default:
		t.Fatalf("codec %d", o.codec)
	}
	return buf.Bytes()
}

// concat joins batches into one append.
func concat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// fakeClock is an injectable Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.UnixMilli(1_700_000_000_000)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) ms() int64 { return c.Now().UnixMilli() }

var discardLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// testLogConfig is the default config with small, test-friendly sizes.
func testLogConfig() LogConfig {
	c := DefaultLogConfig()
	c.SegmentBytes = 1 << 20
	return c
}

// openTestLog opens a Log directly on dir (no LogManager). It is closed at cleanup.
func openTestLog(t testing.TB, dir string, cfg LogConfig, clean bool, clock *fakeClock) *Log {
	t.Helper()
	now := time.Now
	if clock != nil {
		now = clock.Now
	}
	l, err := openLog(logParams{dir: dir, topic: "t", partition: 0, config: cfg, cleanShutdown: clean, now: now, logger: discardLogger})
	if err != nil {
		t.Fatalf("openLog: %v", err)
	}
	t.Cleanup(func() { l.close(false) })
	return l
}

// appendOK appends and advances the high watermark, as the broker does on one node.
func appendOK(t testing.TB, l *Log, records []byte, epoch int32) LogAppendInfo {
	t.Helper()
	info, err := l.AppendAsLeader(records, epoch)
	if err != nil {
		t.Fatalf("AppendAsLeader: %v", err)
	}
	l.UpdateHighWatermark(info.LastOffset + 1)
	return info
}

// readRecords reads everything in [from, HW) with consecutive Reads and decodes it,
// checking that every Read returns whole, CRC-valid batches.
func readRecords(t testing.TB, l *Log, from int64) []Record {
	t.Helper()
	var out []Record
	for off := from; off < l.HighWatermark(); {
		info, err := l.Read(off, 1000, l.HighWatermark(), true)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		b, err := info.Records.Bytes()
		info.Records.Release()
		if err != nil {
			t.Fatalf("Bytes: %v", err)
		}
		if len(b) == 0 {
			t.Fatalf("Read(%d) returned nothing below HW %d", off, l.HighWatermark())
		}
		for len(b) > 0 {
			h, err := ParseBatchHeader(b)
			if err != nil {
				t.Fatalf("ParseBatchHeader: %v", err)
			}
			if err := VerifyBatchCRC(b[:h.Size()]); err != nil {
				t.Fatalf("VerifyBatchCRC: %v", err)
			}
			err = Records(b[:h.Size()], func(r Record) bool {
				if r.Offset >= off {
					r.Key, r.Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
					out = append(out, r)
				}
				return true
			})
			if err != nil {
				t.Fatalf("Records: %v", err)
			}
			off = h.LastOffset() + 1
			b = b[h.Size():]
		}
	}
	return out
}

// segmentFiles lists the files in dir with the given suffix.
func segmentFiles(t testing.TB, dir, suffix string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readIndexFile reads an index file; a missing one (never written) is empty.
func readIndexFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return b
}

func openTestManager(t testing.TB, dir string, clock *fakeClock, defaults LogConfig) *LogManager {
	t.Helper()
	opts := LogManagerOptions{Dir: dir, Defaults: defaults, Logger: discardLogger, RetentionCheckInterval: time.Hour, FlushCheckInterval: time.Hour}
	if clock != nil {
		opts.Now = clock.Now
	}
	m, err := OpenLogManager(opts)
	if err != nil {
		t.Fatalf("OpenLogManager: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func itoa(n int) string { return fmt.Sprint(n) }

// cloneRecord copies what Records only lends for the length of its callback.
func cloneRecord(r Record) Record {
	r.Key, r.Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
	r.Headers = slices.Clone(r.Headers)
	for i := range r.Headers {
		r.Headers[i].Value = bytes.Clone(r.Headers[i].Value)
	}
	return r
}
