package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// maxUncompressedBatchBytes bounds what one compressed batch may inflate to, so a
// small hostile batch cannot make the broker allocate without limit. Kafka streams
// records instead; we decompress whole batches, and only off the hot path
// (OffsetForTimestamp, OffsetOfMaxTimestamp, tests).
const maxUncompressedBatchBytes = 256 << 20

// xerialMagic starts the framing that Java clients' snappy codec (xerial
// SnappyOutputStream) writes: magic, int32 version, int32 compatible version, then
// blocks of int32 length + raw snappy. librdkafka, franz-go and sarama send one raw
// snappy block instead; both are accepted, as Kafka's SnappyFactory does.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderLen = 16

var (
	gzipReaders sync.Pool // *gzip.Reader
	lz4Readers  = sync.Pool{New: func() any { return lz4.NewReader(nil) }}
	zstdReaders sync.Pool // *zstd.Decoder
)

// decompressLimit inflates the records section of a batch compressed with codec,
// refusing output larger than limit.
func decompressLimit(codec int8, src []byte, limit int) ([]byte, error) {
	var out []byte
	var err error
	switch codec {
	case compressionGzip:
		out, err = gunzip(src, limit)
	case compressionSnappy:
		out, err = unsnappy(src, limit)
	case compressionLZ4:
		r := lz4Readers.Get().(*lz4.Reader)
		r.Reset(bytes.NewReader(src))
		out, err = readAllLimited(r, limit)
		r.Reset(nil)
		lz4Readers.Put(r)
	case compressionZstd:
		out, err = unzstd(src, limit)
	default:
		return nil, fmt.Errorf("%w: unknown compression codec %d", ErrCorruptRecord, codec)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: decompressing (codec %d): %v", ErrCorruptRecord, codec, err)
	}
	return out, nil
}

func gunzip(src []byte, limit int) ([]byte, error) {
	r, _ := gzipReaders.Get().(*gzip.Reader)
	var err error
	if r == nil {
		r, err = gzip.NewReader(bytes.NewReader(src))
	} else {
		err = r.Reset(bytes.NewReader(src))
	}
	if err != nil {
		return nil, err
	}
	defer gzipReaders.Put(r)
	return readAllLimited(r, limit)
}

func unzstd(src []byte, limit int) ([]byte, error) {
	d, _ := zstdReaders.Get().(*zstd.Decoder)
	var err error
	if d == nil {
		d, err = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1), // synchronous: no goroutines per pooled decoder
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(maxUncompressedBatchBytes))
		if err != nil {
			return nil, err
		}
	}
	if err = d.Reset(bytes.NewReader(src)); err != nil {
		return nil, err
	}
	out, err := readAllLimited(d, limit)
	if d.Reset(nil) == nil {
		zstdReaders.Put(d)
	}
	return out, err
}

func unsnappy(src []byte, limit int) ([]byte, error) {
	if !bytes.HasPrefix(src, xerialMagic) {
		return snappyBlock(nil, src, limit)
	}
	if len(src) < xerialHeaderLen {
		return nil, fmt.Errorf("short xerial header")
	}
	var out []byte
	for b := src[xerialHeaderLen:]; len(b) > 0; {
		if len(b) < 4 {
			return nil, fmt.Errorf("short xerial block length")
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		if uint64(n) > uint64(len(b)) {
			return nil, fmt.Errorf("xerial block of %d bytes, %d left", n, len(b))
		}
		var err error
		if out, err = snappyBlock(out, b[:n], limit); err != nil {
			return nil, err
		}
		b = b[n:]
	}
	return out, nil
}

// snappyBlock appends the decoding of one raw snappy block to dst.
func snappyBlock(dst, block []byte, limit int) ([]byte, error) {
	n, err := snappy.DecodedLen(block)
	if err != nil {
		return nil, err
	}
	if n > limit-len(dst) {
		return nil, fmt.Errorf("decompressed size exceeds %d bytes", limit)
	}
	if dst == nil {
		return snappy.Decode(nil, block)
	}
	part, err := snappy.Decode(nil, block)
	if err != nil {
		return nil, err
	}
	return append(dst, part...), nil
}

func readAllLimited(r io.Reader, limit int) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(r, int64(limit)+1)); err != nil {
		return nil, err
	}
	if buf.Len() > limit {
		return nil, fmt.Errorf("decompressed size exceeds %d bytes", limit)
	}
	return buf.Bytes(), nil
}
