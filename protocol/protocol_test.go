package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/storage"
)

// encodeRequest frames req as a client would.
func encodeRequest(req kmsg.Request, corr int32) []byte {
	body := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	body = binary.BigEndian.AppendUint16(body, uint16(req.GetVersion()))
	body = binary.BigEndian.AppendUint32(body, uint32(corr))
	body = binary.BigEndian.AppendUint16(body, 1)
	body = append(body, 'c')
	if req.IsFlexible() {
		body = append(body, 0)
	}
	body = req.AppendTo(body)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

func TestParseRequestRoundTrip(t *testing.T) {
	for _, v := range []int16{0, 4, 9, 13} {
		req := kmsg.NewPtrMetadataRequest()
		req.Version = v
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr("orders")
		req.Topics = append(req.Topics, rt)
		frame, err := ReadFrame(bytes.NewReader(encodeRequest(req, 42)), 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseRequest(frame)
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		m := got.Body.(*kmsg.MetadataRequest)
		if got.CorrelationID != 42 || got.ClientID != "c" || *m.Topics[0].Topic != "orders" || m.Version != v {
			t.Fatalf("v%d: parsed %+v / %+v", v, got.RequestHeader, m)
		}
	}
}

func TestParseRequestRefusals(t *testing.T) {
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 3 // below the supported range
	old := encodeRequest(fetch, 1)[4:]
	unknown := []byte{0x7F, 0x00, 0, 0, 0, 0, 0, 1, 0xFF, 0xFF}
	av := kmsg.NewPtrApiVersionsRequest()
	av.Version = 4
	avFrame := encodeRequest(av, 1)[4:]
	binary.BigEndian.PutUint16(avFrame[2:], 77) // unknown ApiVersions version

	for name, tc := range map[string]struct {
		frame []byte
		want  error
	}{
		"old fetch":   {old, ErrUnsupportedVersion},
		"unknown key": {unknown, ErrUnknownAPIKey},
		"short":       {[]byte{0, 3, 0}, ErrFrameInvalid},
		"bad body":    {[]byte{0, 3, 0, 9, 0, 0, 0, 1, 0, 0, 0x80}, ErrMalformedRequest},
	} {
		if _, err := ParseRequest(tc.frame); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	req, err := ParseRequest(avFrame)
	if err != nil || req.Body != nil || req.Key != ApiVersionsKey {
		t.Fatalf("unknown ApiVersions version: %+v %v; want a nil body to answer in v0", req, err)
	}
}

func TestReadFrameLimits(t *testing.T) {
	if _, err := ReadFrame(bytes.NewReader([]byte{0x10, 0, 0, 0}), 1<<20, nil); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{0xFF, 0xFF, 0xFF, 0xFF}), 1<<20, nil); !errors.Is(err, ErrFrameInvalid) {
		t.Fatalf("negative: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{0, 0, 0, 20, 1, 2}), 1<<20, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short body: %v", err)
	}
}

func TestApiVersionsKeysMatchTable(t *testing.T) {
	keys := ApiVersionsKeys()
	if len(keys) != len(supported) {
		t.Fatalf("%d keys listed, %d in the table", len(keys), len(supported))
	}
	for i, k := range keys {
		if i > 0 && keys[i-1].ApiKey >= k.ApiKey {
			t.Fatal("keys not in order")
		}
		if k.MaxVersion > kmsg.RequestForKey(k.ApiKey).MaxVersion() {
			t.Fatalf("key %d advertised beyond what kmsg decodes", k.ApiKey)
		}
	}
}

// memRegion is a FileRegion over bytes, for tests.
type memRegion struct {
	b        []byte
	released *int
}

func (r memRegion) Len() int64                         { return int64(len(r.b)) }
func (r memRegion) SendTo(syscall.Conn) (int64, error) { return 0, errors.New("not a socket") }
func (r memRegion) ReadAt(p []byte, off int64) (int, error) {
	n := copy(p, r.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
func (r memRegion) Release() { *r.released++ }

// A fetch response built with placeholders decodes, after splicing, to the
// region bytes, in both the non-flexible and the flexible encodings.
func TestResponseBuilderSplicesRegions(t *testing.T) {
	for _, v := range []int16{4, 11, 12, 17} {
		released := 0
		var rb ResponseBuilder
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = v
		regions := [][]byte{bytes.Repeat([]byte{1}, 300), {}, bytes.Repeat([]byte{3}, 70000)}
		for i, r := range regions {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic = "t"
			rt.TopicID = [16]byte{1}
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.Partition = int32(i)
			rp.HighWatermark = 99
			rp.RecordBatches = rb.Placeholder(memRegion{r, &released})
			rt.Partitions = append(rt.Partitions, rp)
			resp.Topics = append(resp.Topics, rt)
		}
		frame, err := rb.Build(5, resp)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := frame.WriteTo(&out); err != nil {
			t.Fatal(err)
		}
		if released != len(regions) {
			t.Fatalf("v%d: %d regions released, want %d", v, released, len(regions))
		}
		raw := out.Bytes()
		if int(binary.BigEndian.Uint32(raw)) != len(raw)-4 {
			t.Fatalf("v%d: size prefix %d, frame %d", v, binary.BigEndian.Uint32(raw), len(raw)-4)
		}
		body := raw[8:]
		if v >= 12 {
			body = body[1:] // response header tags
		}
		got := kmsg.NewPtrFetchResponse()
		got.Version = v
		if err := got.ReadFrom(body); err != nil {
			t.Fatalf("v%d: decode: %v", v, err)
		}
		for i, r := range regions {
			p := got.Topics[i].Partitions[0]
			if !bytes.Equal(p.RecordBatches, r) || p.HighWatermark != 99 {
				t.Fatalf("v%d: partition %d: %d record bytes, want %d", v, i, len(p.RecordBatches), len(r))
			}
		}
	}
}

// socketBuffer is a socket for Frame.WriteTo (a syscall.Conn) that
// collects what is written and counts the regions sent with sendfile.
type socketBuffer struct {
	bytes.Buffer
	sendfiles int
}

func (*socketBuffer) SyscallConn() (syscall.RawConn, error) { return nil, errors.New("not a socket") }

// sendRegion is a memRegion whose SendTo writes to a socketBuffer.
type sendRegion struct{ memRegion }

func (r sendRegion) SendTo(c syscall.Conn) (int64, error) {
	s := c.(*socketBuffer)
	s.sendfiles++
	n, err := s.Write(r.b)
	return int64(n), err
}

// On a socket, a frame's small regions, up to copyRegionsMax bytes in all,
// go out with the bytes around them; the rest with sendfile. A region whose
// file turns out shorter fails the write, rather than sending zeros.
func TestFrameCopiesSmallRegions(t *testing.T) {
	const k = copyRegionsMax / 2
	for _, c := range []struct {
		sizes     []int
		sendfiles int
	}{
		{[]int{1}, 0},
		{[]int{k, k}, 0},
		{[]int{k, k, 1}, 1},      // the budget is spent
		{[]int{k + 1, k - 1}, 0}, // fit exactly
		{[]int{k + 1, k}, 1},
		{[]int{copyRegionsMax + 1, 1}, 1},
	} {
		released := 0
		f := &Frame{}
		var want []byte
		for i, n := range c.sizes {
			b := bytes.Repeat([]byte{byte(i + 1)}, n)
			f.pieces = append(f.pieces, framePiece{bytes: []byte{0xee, byte(i)}}, framePiece{region: sendRegion{memRegion{b, &released}}})
			want = append(append(want, 0xee, byte(i)), b...)
		}
		var sock socketBuffer
		n, err := f.WriteTo(&sock)
		if err != nil || n != int64(len(want)) || !bytes.Equal(sock.Bytes(), want) {
			t.Errorf("%v: wrote %d bytes (%v), want %d as built", c.sizes, n, err, len(want))
		}
		if sock.sendfiles != c.sendfiles || released != len(c.sizes) {
			t.Errorf("%v: %d regions sent with sendfile, %d released; want %d, %d", c.sizes, sock.sendfiles, released, c.sendfiles, len(c.sizes))
		}
	}

	released := 0
	short := memRegion{bytes.Repeat([]byte{1}, 10), &released}
	f := &Frame{pieces: []framePiece{{bytes: []byte{0xee}}, {region: truncatedRegion{short}}}}
	if _, err := f.WriteTo(&socketBuffer{}); !errors.Is(err, io.ErrUnexpectedEOF) || released != 1 {
		t.Errorf("region shorter than its length: %v, %d released", err, released)
	}
}

// truncatedRegion claims more bytes than its file has.
type truncatedRegion struct{ memRegion }

func (r truncatedRegion) Len() int64 { return int64(len(r.b)) + 5 }

// testBatch builds a valid uncompressed batch with n records.
func testBatch(n int) []byte { return testBatchWithHeaders(n, 0) }

// testBatchWithHeaders is testBatch with headers headers on every record.
func testBatchWithHeaders(n, headers int) []byte {
	now := time.Now().UnixMilli()
	var records []byte
	for i := range n {
		r := kmsg.Record{OffsetDelta: int32(i), Value: []byte("v")}
		for h := range headers {
			r.Headers = append(r.Headers, kmsg.Header{Key: "trace-" + strconv.Itoa(h), Value: []byte("00-4bf92f3577b34da6")})
		}
		body := r.AppendTo(nil)
		r.Length = int32(len(body) - kbin.VarintLen(0))
		records = r.AppendTo(records)
	}
	b := kmsg.RecordBatch{Magic: 2, LastOffsetDelta: int32(n - 1), NumRecords: int32(n), FirstTimestamp: now, MaxTimestamp: now,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, Records: records}
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	return fixCRC(out)
}

// withTimestamp moves every record of an uncompressed batch to ts (the
// records carry deltas from the batch's first timestamp).
func withTimestamp(b []byte, ts time.Time) []byte {
	binary.BigEndian.PutUint64(b[27:], uint64(ts.UnixMilli()))
	binary.BigEndian.PutUint64(b[35:], uint64(ts.UnixMilli()))
	return fixCRC(b)
}

func fixCRC(b []byte) []byte {
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func TestValidateProduceBatch(t *testing.T) {
	edit := func(f func([]byte) []byte) []byte { return f(testBatch(3)) }
	cases := []struct {
		name  string
		batch []byte
		want  *kerr.Error
	}{
		{"valid", testBatch(3), nil},
		{"empty", nil, kerr.InvalidRecord},
		{"short", []byte{1, 2, 3}, kerr.CorruptMessage},
		{"crc", edit(func(b []byte) []byte { b[len(b)-1]++; return b }), kerr.CorruptMessage},
		{"magic", edit(func(b []byte) []byte { b[16] = 1; return b }), kerr.InvalidRecord},
		{"base offset", edit(func(b []byte) []byte { b[7] = 1; return b }), kerr.InvalidRecord},
		{"count", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[57:], 2); return fixCRC(b) }), kerr.InvalidRecord},
		{"control", edit(func(b []byte) []byte { b[22] |= 0x20; return fixCRC(b) }), kerr.InvalidRecord},
		{"trailing", append(testBatch(1), 0), kerr.InvalidRecord},
		{"truncated", testBatch(3)[:70], kerr.CorruptMessage},
		{"too large", testBatch(200), kerr.MessageTooLarge},
		{"future", edit(func(b []byte) []byte { return withTimestamp(b, time.Now().Add(2*time.Hour)) }), kerr.InvalidTimestamp},
		{"old but allowed", edit(func(b []byte) []byte { return withTimestamp(b, time.Now().Add(-1000*time.Hour)) }), nil},
		// Headers are checked though not decoded: a negative key length
		// (-1, a null key) is malformed, as in Kafka's DefaultRecord.
		{"headers", testBatchWithHeaders(3, 2), nil},
		{"null header key", func() []byte {
			b := testBatchWithHeaders(3, 2)
			i := bytes.Index(b, []byte("\x0etrace-1")) // varint 7, the key
			b[i] = 0x01                                // varint -1
			return fixCRC(b)
		}(), kerr.CorruptMessage},
	}
	cfg := storage.DefaultLogConfig()
	cfg.MaxMessageBytes = 1000
	for _, tc := range cases {
		_, err := ValidateProduceBatch(tc.batch, cfg, time.Now())
		if got := KafkaError(err); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// FuzzParseRequest: any frame body either parses or is refused with an
// error; it never panics, and a parsed body re-encodes.
func FuzzParseRequest(f *testing.F) {
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 12
	f.Add(encodeRequest(md, 1)[4:])
	pr := kmsg.NewPtrProduceRequest()
	pr.Version = 9
	f.Add(encodeRequest(pr, 2)[4:])
	f.Add([]byte{})
	f.Add([]byte{0, 18, 0, 99, 0, 0, 0, 7, 0, 1, 'x', 0})
	f.Add([]byte{0, 1, 0, 17, 0, 0, 0, 1, 0xFF, 0xFF, 0, 0xFF})
	f.Fuzz(func(t *testing.T, frame []byte) {
		req, err := ParseRequest(frame)
		if err != nil || req.Body == nil {
			return
		}
		req.Body.AppendTo(nil)
	})
}

// FuzzReadFrame: any byte stream yields a frame within the limit or an
// error, never a panic or an allocation past the limit.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 10, 0, 3, 0, 1, 0, 0, 0, 1, 0, 0})
	f.Add([]byte{0x7F, 0xFF, 0xFF, 0xFF})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, stream []byte) {
		frame, err := ReadFrame(bytes.NewReader(stream), 4096, nil)
		if err == nil && (len(frame) > 4096 || len(frame) < minHeaderSize) {
			t.Fatalf("frame of %d bytes accepted", len(frame))
		}
	})
}

// FuzzValidateProduceBatch: never panics; an accepted batch is exactly one
// whole batch with a valid CRC.
func FuzzValidateProduceBatch(f *testing.F) {
	f.Add(testBatch(1))
	f.Add(testBatch(5))
	f.Add([]byte{})
	f.Add(append(testBatch(2), 1, 2, 3))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ValidateProduceBatch(b, storage.DefaultLogConfig(), time.Now())
		if err != nil {
			return
		}
		if h.Size() != len(b) || crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)) != h.CRC {
			t.Fatalf("accepted an invalid batch")
		}
	})
}

// A flexible header claiming 2^32-1 tagged fields is malformed at once,
// instead of looping over tags the frame cannot hold.
func TestParseRequestHugeTagCount(t *testing.T) {
	frame := binary.BigEndian.AppendUint16(nil, uint16(MetadataKey))
	frame = binary.BigEndian.AppendUint16(frame, 12) // flexible
	frame = binary.BigEndian.AppendUint32(frame, 7)
	frame = binary.BigEndian.AppendUint16(frame, 1)
	frame = append(frame, 'x')
	frame = binary.AppendUvarint(frame, 1<<32-1)
	if _, err := ParseRequest(frame); !errors.Is(err, ErrMalformedRequest) {
		t.Fatalf("ParseRequest: %v, want ErrMalformedRequest", err)
	}
}

// The same holds for the tagged fields of a flexible body, which kmsg reads:
// a Produce v12 of 24 bytes whose body claims 2^32-1 tags cost kmsg v1.15.0
// 3.4 s of CPU to refuse (found by FuzzServeRequest); v1.15.1 stops at the
// first short read. The bound is a thousand times what the refusal takes
// even under the race detector, so it only trips on the loop.
func TestParseRequestHugeBodyTagCount(t *testing.T) {
	frame := binary.BigEndian.AppendUint16(nil, uint16(ProduceKey))
	frame = binary.BigEndian.AppendUint16(frame, 12) // flexible
	frame = binary.BigEndian.AppendUint32(frame, 7)
	frame = binary.BigEndian.AppendUint16(frame, 0xFFFF) // null client id
	frame = append(frame, 0)                             // no header tags
	frame = append(frame, 0)                             // null transactional id
	frame = binary.BigEndian.AppendUint16(frame, 0xFFFF) // acks -1
	frame = binary.BigEndian.AppendUint32(frame, 1000)   // timeout
	frame = append(frame, 1)                             // no topics
	frame = binary.AppendUvarint(frame, 1<<32-1)         // the body's tags
	began := time.Now()
	if _, err := ParseRequest(frame); !errors.Is(err, ErrMalformedRequest) {
		t.Fatalf("ParseRequest: %v, want ErrMalformedRequest", err)
	}
	if d := time.Since(began); d > time.Second {
		t.Fatalf("refusing a 24-byte frame took %v: the tag loop ran past the input", d)
	}
}

// BenchmarkValidateProduceBatch walks a 500-record batch as every produce
// does, without headers and with two per record.
func BenchmarkValidateProduceBatch(b *testing.B) {
	for _, headers := range []int{0, 2} {
		b.Run(fmt.Sprintf("headers=%d", headers), func(b *testing.B) {
			batch := testBatchWithHeaders(500, headers)
			cfg := storage.DefaultLogConfig()
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ValidateProduceBatch(batch, cfg, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
