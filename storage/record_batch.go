package storage

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// RecordBatch v2 header layout (Kafka DefaultRecordBatch). All integers are big endian.
const (
	baseOffsetOffset           = 0  // int64
	batchLengthOffset          = 8  // int32: bytes after this field
	partitionLeaderEpochOffset = 12 // int32
	magicOffset                = 16 // int8
	crcOffset                  = 17 // uint32, CRC-32C of bytes [attributesOffset:]
	attributesOffset           = 21 // int16
	lastOffsetDeltaOffset      = 23 // int32
	baseTimestampOffset        = 27 // int64
	maxTimestampOffset         = 35 // int64
	producerIDOffset           = 43 // int64
	producerEpochOffset        = 51 // int16
	baseSequenceOffset         = 53 // int32
	recordCountOffset          = 57 // int32

	// BatchHeaderSize is the size of the RecordBatch v2 header; records start here.
	BatchHeaderSize = 61

	// logOverhead is DefaultRecordBatch.LOG_OVERHEAD: baseOffset + batchLength, the
	// bytes a batch occupies beyond its BatchLength.
	logOverhead = batchLengthOffset + 4

	// minBatchLength is the smallest legal BatchLength: a header with no records.
	minBatchLength = BatchHeaderSize - logOverhead

	// maxBatchLength bounds BatchLength so that Size() fits an int32 position.
	maxBatchLength = 1<<31 - 1 - logOverhead

	magicV2 = 2

	compressionMask      = 0x07
	timestampTypeMask    = 0x08
	transactionalFlagBit = 0x10
	controlFlagBit       = 0x20
)

// Compression codecs as stored in the low three attribute bits.
const (
	compressionNone   = 0
	compressionGzip   = 1
	compressionSnappy = 2
	compressionLZ4    = 3
	compressionZstd   = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BatchHeader is a decoded RecordBatch v2 header (Kafka DefaultRecordBatch). It is a
// view of the first BatchHeaderSize bytes of a batch; the records are not decoded.
type BatchHeader struct {
	BaseOffset           int64
	BatchLength          int32
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	RecordCount          int32
}

// ParseBatchHeader decodes the header at the start of b. It checks only what makes the
// header meaningful: len(b) >= BatchHeaderSize, magic 2, and a BatchLength that covers
// the header. It does not check the CRC (VerifyBatchCRC does) nor that b holds the whole
// batch. Errors wrap ErrCorruptRecord.
func ParseBatchHeader(b []byte) (BatchHeader, error) {
	if len(b) < BatchHeaderSize {
		return BatchHeader{}, fmt.Errorf("%w: batch header needs %d bytes, have %d", ErrCorruptRecord, BatchHeaderSize, len(b))
	}
	h := BatchHeader{
		BaseOffset:           int64(binary.BigEndian.Uint64(b[baseOffsetOffset:])),
		BatchLength:          int32(binary.BigEndian.Uint32(b[batchLengthOffset:])),
		PartitionLeaderEpoch: int32(binary.BigEndian.Uint32(b[partitionLeaderEpochOffset:])),
		Magic:                int8(b[magicOffset]),
		CRC:                  binary.BigEndian.Uint32(b[crcOffset:]),
		Attributes:           int16(binary.BigEndian.Uint16(b[attributesOffset:])),
		LastOffsetDelta:      int32(binary.BigEndian.Uint32(b[lastOffsetDeltaOffset:])),
		BaseTimestamp:        int64(binary.BigEndian.Uint64(b[baseTimestampOffset:])),
		MaxTimestamp:         int64(binary.BigEndian.Uint64(b[maxTimestampOffset:])),
		ProducerID:           int64(binary.BigEndian.Uint64(b[producerIDOffset:])),
		ProducerEpoch:        int16(binary.BigEndian.Uint16(b[producerEpochOffset:])),
		BaseSequence:         int32(binary.BigEndian.Uint32(b[baseSequenceOffset:])),
		RecordCount:          int32(binary.BigEndian.Uint32(b[recordCountOffset:])),
	}
	if h.Magic != magicV2 {
		return h, fmt.Errorf("%w: unsupported magic %d", ErrCorruptRecord, h.Magic)
	}
	if h.BatchLength < minBatchLength || h.BatchLength > maxBatchLength {
		return h, fmt.Errorf("%w: batch length %d out of range", ErrCorruptRecord, h.BatchLength)
	}
	return h, nil
}

// Size is the number of bytes the batch occupies on the wire and on disk.
func (h BatchHeader) Size() int { return logOverhead + int(h.BatchLength) }

// LastOffset is the offset of the batch's last record (it survives compaction, unlike
// BaseOffset+RecordCount-1).
func (h BatchHeader) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// Compression is the codec: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
func (h BatchHeader) Compression() int8 { return int8(h.Attributes & compressionMask) }

// IsTransactional reports attribute bit 4: the batch belongs to a transaction.
func (h BatchHeader) IsTransactional() bool { return h.Attributes&transactionalFlagBit != 0 }

// IsControl reports attribute bit 5: the batch holds a transaction marker.
func (h BatchHeader) IsControl() bool { return h.Attributes&controlFlagBit != 0 }

// TimestampType is attribute bit 3: 0 CreateTime, 1 LogAppendTime.
func (h BatchHeader) TimestampType() int8 {
	if h.Attributes&timestampTypeMask != 0 {
		return 1
	}
	return 0
}

// VerifyBatchCRC checks that batch is exactly one whole batch and that its CRC-32C
// (over everything from the attributes on) matches. Errors wrap ErrCorruptRecord.
func VerifyBatchCRC(batch []byte) error {
	h, err := ParseBatchHeader(batch)
	if err != nil {
		return err
	}
	if h.Size() != len(batch) {
		return fmt.Errorf("%w: batch length %d does not match %d bytes", ErrCorruptRecord, h.Size(), len(batch))
	}
	if got := crc32.Checksum(batch[attributesOffset:], castagnoli); got != h.CRC {
		return fmt.Errorf("%w: crc mismatch: header %#08x, computed %#08x", ErrCorruptRecord, h.CRC, got)
	}
	return nil
}

// setBatchCRC recomputes the CRC of one whole batch in place.
func setBatchCRC(batch []byte) {
	binary.BigEndian.PutUint32(batch[crcOffset:], crc32.Checksum(batch[attributesOffset:], castagnoli))
}

// Record is one decoded record of a batch (Kafka DefaultRecord).
type Record struct {
	Offset    int64
	Timestamp int64 // the batch MaxTimestamp for LogAppendTime batches, as Kafka reports it
	Key       []byte
	Value     []byte
	Headers   []RecordHeader
}

// RecordHeader is one record header. A nil Value is a null header value.
type RecordHeader struct {
	Key   string
	Value []byte
}

// Records calls fn for each record of batch, which must be exactly one whole v2 batch,
// decompressing it first if needed. Key, Value and header values may alias batch or an
// internal buffer: copy them to keep them past fn. fn returning false stops the
// iteration early without error. The CRC is not checked (VerifyBatchCRC does).
//
// Mirrors DefaultRecordBatch.iterator and DefaultRecord.readFrom: any malformed record,
// a record count that differs from the header's, or bytes left after the last record
// is ErrCorruptRecord.
func Records(batch []byte, fn func(Record) bool) error {
	return recordsLimit(batch, maxUncompressedBatchBytes, true, fn)
}

// RecordsWithoutHeaders is Records with every record's Headers nil: they are
// checked as Records checks them, but not copied out, as Kafka's
// skipKeyValueIterator skips them when LogValidator checks a batch. Copying
// them out costs an allocation per record and one per header.
func RecordsWithoutHeaders(batch []byte, fn func(Record) bool) error {
	return recordsLimit(batch, maxUncompressedBatchBytes, false, fn)
}

// recordsLimit is Records with a bound on the decompressed size (fuzzing uses a
// small one), and headers to decode the headers or only check them.
func recordsLimit(batch []byte, limit int, headers bool, fn func(Record) bool) error {
	h, err := ParseBatchHeader(batch)
	if err != nil {
		return err
	}
	if h.Size() != len(batch) {
		return fmt.Errorf("%w: batch length %d does not match %d bytes", ErrCorruptRecord, h.Size(), len(batch))
	}
	if h.RecordCount < 0 {
		return fmt.Errorf("%w: negative record count %d", ErrCorruptRecord, h.RecordCount)
	}
	body := batch[BatchHeaderSize:]
	if h.Compression() != compressionNone {
		bufp, _ := decompressBuffers.Get().(*[]byte)
		if bufp == nil {
			bufp = new([]byte)
		}
		inflated, err := decompressLimit(h.Compression(), body, limit, *bufp)
		if err != nil {
			decompressBuffers.Put(bufp)
			return err
		}
		defer func() {
			if cap(inflated) <= maxPooledDecompressBuffer {
				*bufp = inflated[:0]
				decompressBuffers.Put(bufp)
			}
		}()
		body = inflated
	}
	// Every record takes at least 7 bytes; refuse counts the body cannot hold before
	// looping, so a forged count costs nothing.
	if int64(h.RecordCount)*minRecordSize > int64(len(body)) {
		return fmt.Errorf("%w: %d records cannot fit in %d bytes", ErrCorruptRecord, h.RecordCount, len(body))
	}
	logAppendTime := h.TimestampType() == 1
	for i := int32(0); i < h.RecordCount; i++ {
		var r Record
		var n int
		r, n, err = readRecord(body, h, headers)
		if err != nil {
			return fmt.Errorf("%w (record %d of %d)", err, i, h.RecordCount)
		}
		body = body[n:]
		if logAppendTime {
			r.Timestamp = h.MaxTimestamp
		}
		if !fn(r) {
			return nil
		}
	}
	if len(body) != 0 {
		return fmt.Errorf("%w: %d bytes after the last record", ErrCorruptRecord, len(body))
	}
	return nil
}

// minRecordSize is the smallest encoded record: length, attributes, timestamp delta,
// offset delta, key length, value length, header count, one byte each.
const minRecordSize = 7

// readRecord decodes the record at the start of b and returns it with the number of
// bytes it used (DefaultRecord.readFrom); without headers, it checks the
// headers but leaves Record.Headers nil.
func readRecord(b []byte, h BatchHeader, headers bool) (Record, int, error) {
	size, n := varint(b)
	if n <= 0 || size < minRecordSize-1 || int64(size) > int64(len(b)-n) {
		return Record{}, 0, fmt.Errorf("%w: bad record length", ErrCorruptRecord)
	}
	total := n + int(size)
	d := recordDecoder{b: b[n:total]}
	d.byte() // attributes: unused in v2
	tsDelta := d.varlong()
	offDelta := d.varint()
	r := Record{
		Offset:    h.BaseOffset + int64(offDelta),
		Timestamp: h.BaseTimestamp + tsDelta,
		Key:       d.bytes(),
		Value:     d.bytes(),
	}
	nh := d.varint()
	if nh < 0 || int(nh) > len(d.b) {
		d.fail()
	} else if nh > 0 && d.err == nil {
		if headers {
			r.Headers = make([]RecordHeader, nh)
		}
		for i := range int(nh) {
			klen := d.varint()
			if klen < 0 {
				d.fail()
				break
			}
			key, value := d.take(int(klen)), d.bytes()
			if headers {
				r.Headers[i] = RecordHeader{Key: string(key), Value: value}
			}
		}
	}
	if d.err != nil {
		return Record{}, 0, d.err
	}
	if len(d.b) != 0 {
		return Record{}, 0, fmt.Errorf("%w: record length %d, %d bytes unused", ErrCorruptRecord, size, len(d.b))
	}
	return r, total, nil
}

// recordDecoder reads the fields of one record; the first error sticks.
type recordDecoder struct {
	b   []byte
	err error
}

func (d *recordDecoder) fail() {
	if d.err == nil {
		d.err = fmt.Errorf("%w: malformed record", ErrCorruptRecord)
	}
	d.b = nil
}

func (d *recordDecoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *recordDecoder) varint() int32 {
	v, n := varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *recordDecoder) varlong() int64 {
	v, n := varlong(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *recordDecoder) take(n int) []byte {
	if n < 0 || n > len(d.b) {
		d.fail()
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

// bytes reads a varint length and that many bytes; -1 is null.
func (d *recordDecoder) bytes() []byte {
	n := d.varint()
	if d.err != nil {
		return nil
	}
	if n == -1 {
		return nil
	}
	if n < 0 {
		d.fail()
		return nil
	}
	return d.take(int(n))
}

// varint decodes a zigzag varint of at most 5 bytes (ByteUtils.readVarint). n <= 0
// means malformed.
func varint(b []byte) (int32, int) {
	var u uint32
	for i := 0; i < 5; i++ {
		if i >= len(b) {
			return 0, 0
		}
		c := b[i]
		if i == 4 && c > 0x0f {
			return 0, -1 // more than 32 bits
		}
		u |= uint32(c&0x7f) << (7 * i)
		if c < 0x80 {
			return int32(u>>1) ^ -int32(u&1), i + 1
		}
	}
	return 0, -1
}

// varlong decodes a zigzag varint of at most 10 bytes (ByteUtils.readVarlong).
func varlong(b []byte) (int64, int) {
	var u uint64
	for i := 0; i < 10; i++ {
		if i >= len(b) {
			return 0, 0
		}
		c := b[i]
		if i == 9 && c > 0x01 {
			return 0, -1 // more than 64 bits
		}
		u |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return int64(u>>1) ^ -int64(u&1), i + 1
		}
	}
	return 0, -1
}
