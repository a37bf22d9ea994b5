package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
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

// decompressBuffers recycles the buffers Records inflates batches into: Records
// lends record bytes only for the length of its callback, so the buffer is free
// again when it returns. Validating every compressed produce batch would otherwise
// allocate (and zero) a fresh buffer per batch.
var decompressBuffers sync.Pool // *[]byte

// maxPooledDecompressBuffer keeps rare huge buffers out of the pool.
const maxPooledDecompressBuffer = 8 << 20

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

// decompressLimit inflates the records section of a batch compressed with codec into
// dst's storage (reused when large enough), refusing output larger than limit.
func decompressLimit(codec int8, src []byte, limit int, dst []byte) ([]byte, error) {
	var out []byte
	var err error
	switch codec {
	case compressionGzip:
		out, err = gunzip(src, limit, dst)
	case compressionSnappy:
		out, err = unsnappy(src, limit, dst)
	case compressionLZ4:
		r := lz4Readers.Get().(*lz4.Reader)
		r.Reset(bytes.NewReader(src))
		out, err = readAllLimited(r, limit, dst)
		r.Reset(nil)
		lz4Readers.Put(r)
	case compressionZstd:
		out, err = unzstd(src, limit, dst)
	default:
		return nil, fmt.Errorf("%w: unknown compression codec %d", ErrCorruptRecord, codec)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: decompressing (codec %d): %v", ErrCorruptRecord, codec, err)
	}
	return out, nil
}

func gunzip(src []byte, limit int, dst []byte) ([]byte, error) {
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
	return readAllLimited(r, limit, dst)
}

func unzstd(src []byte, limit int, dst []byte) ([]byte, error) {
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
	out, err := readAllLimited(d, limit, dst)
	if d.Reset(nil) == nil {
		zstdReaders.Put(d)
	}
	return out, err
}

func unsnappy(src []byte, limit int, dst []byte) ([]byte, error) {
	if !bytes.HasPrefix(src, xerialMagic) {
		return snappyBlock(dst[:0], src, limit)
	}
	if len(src) < xerialHeaderLen {
		return nil, fmt.Errorf("short xerial header")
	}
	out := dst[:0]
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

// snappyBlock appends the decoding of one raw snappy block to dst, decoding in place
// into dst's spare capacity.
func snappyBlock(dst, block []byte, limit int) ([]byte, error) {
	n, err := snappy.DecodedLen(block)
	if err != nil {
		return nil, err
	}
	if n > limit-len(dst) {
		return nil, fmt.Errorf("decompressed size exceeds %d bytes", limit)
	}
	start := len(dst)
	dst = slices.Grow(dst, n)[:start+n]
	if _, err := snappy.Decode(dst[start:], block); err != nil {
		return nil, err
	}
	return dst, nil
}

func readAllLimited(r io.Reader, limit int, dst []byte) ([]byte, error) {
	buf := bytes.NewBuffer(dst[:0])
	if _, err := buf.ReadFrom(io.LimitReader(r, int64(limit)+1)); err != nil {
		return nil, err
	}
	if buf.Len() > limit {
		return nil, fmt.Errorf("decompressed size exceeds %d bytes", limit)
	}
	return buf.Bytes(), nil
}

var (
	gzipWriters sync.Pool // *gzip.Writer
	lz4Writers  sync.Pool // *lz4.Writer
	zstdEncoder struct {
		once sync.Once
		enc  *zstd.Encoder
		err  error
	}
)

// xerialBlockSize is the block size of the xerial framing Kafka's own snappy codec
// writes (SnappyOutputStream's default 32 KiB).
const xerialBlockSize = 32 << 10

// compress appends the records section src compressed with codec to dst: the
// LogCleaner rewrites a batch it filtered with the codec it came with. The output
// is what Kafka's own codecs write (gzip, xerial-framed snappy, the LZ4 frame format,
// a zstd frame), which every client decodes.
func compress(codec int8, dst, src []byte) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	switch codec {
	case compressionNone:
		return append(dst, src...), nil
	case compressionGzip:
		w, _ := gzipWriters.Get().(*gzip.Writer)
		if w == nil {
			w = gzip.NewWriter(buf)
		} else {
			w.Reset(buf)
		}
		_, err := w.Write(src)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		gzipWriters.Put(w)
		if err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case compressionSnappy:
		return snappyXerial(dst, src), nil
	case compressionLZ4:
		w, _ := lz4Writers.Get().(*lz4.Writer)
		if w == nil {
			w = lz4.NewWriter(buf)
		} else {
			w.Reset(buf)
		}
		_, err := w.Write(src)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		lz4Writers.Put(w)
		if err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case compressionZstd:
		zstdEncoder.once.Do(func() {
			zstdEncoder.enc, zstdEncoder.err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
		})
		if zstdEncoder.err != nil {
			return nil, zstdEncoder.err
		}
		return zstdEncoder.enc.EncodeAll(src, dst), nil
	}
	return nil, fmt.Errorf("%w: unknown compression codec %d", ErrCorruptRecord, codec)
}

// snappyXerial appends src in xerial framing: magic, version 1, compatible version
// 1, then blocks of int32 length + raw snappy.
func snappyXerial(dst, src []byte) []byte {
	out := append(dst, xerialMagic...)
	out = binary.BigEndian.AppendUint32(out, 1)
	out = binary.BigEndian.AppendUint32(out, 1)
	for len(src) > 0 {
		n := min(len(src), xerialBlockSize)
		at := len(out)
		out = append(out, 0, 0, 0, 0)
		out = slices.Grow(out, snappy.MaxEncodedLen(n))
		enc := snappy.Encode(out[len(out):cap(out)], src[:n])
		binary.BigEndian.PutUint32(out[at:], uint32(len(enc)))
		out = out[:len(out)+len(enc)]
		src = src[n:]
	}
	return out
}
