package storage

import (
	"encoding/binary"
	"fmt"
)

// Control record types (Kafka ControlRecordType).
const (
	ControlAbort  int16 = 0
	ControlCommit int16 = 1
)

// EndTxnMarker is the content of a transaction marker: a control batch of
// one record whose key is (version 0, type) and whose value is (version 0,
// coordinator epoch) (Kafka EndTransactionMarker).
type EndTxnMarker struct {
	ProducerID       int64
	ProducerEpoch    int16
	CoordinatorEpoch int32
	Commit           bool
}

// controlRecordSize is the one encoded record of a marker batch: length
// varint (16 → 1 byte), attributes, timestamp delta, offset delta, key
// length, key (4), value length, value (6), header count.
const controlRecordSize = 1 + 1 + 1 + 1 + 1 + 4 + 1 + 6 + 1

// encodeEndTxnMarker builds a marker batch (MemoryRecords.withEndTransactionMarker)
// at base offset 0 with timestamp ts; the append stamps the offset.
func encodeEndTxnMarker(m EndTxnMarker, ts int64) []byte {
	b := make([]byte, BatchHeaderSize, BatchHeaderSize+controlRecordSize)
	binary.BigEndian.PutUint32(b[batchLengthOffset:], uint32(BatchHeaderSize+controlRecordSize-logOverhead))
	b[magicOffset] = 2
	binary.BigEndian.PutUint16(b[attributesOffset:], transactionalFlagBit|controlFlagBit)
	binary.BigEndian.PutUint64(b[baseTimestampOffset:], uint64(ts))
	binary.BigEndian.PutUint64(b[maxTimestampOffset:], uint64(ts))
	binary.BigEndian.PutUint64(b[producerIDOffset:], uint64(m.ProducerID))
	binary.BigEndian.PutUint16(b[producerEpochOffset:], uint16(m.ProducerEpoch))
	binary.BigEndian.PutUint32(b[baseSequenceOffset:], 0xffffffff)
	binary.BigEndian.PutUint32(b[recordCountOffset:], 1)
	typ := ControlAbort
	if m.Commit {
		typ = ControlCommit
	}
	b = append(b, (controlRecordSize-1)<<1, 0, 0, 0, 4<<1)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(typ))
	b = append(b, 6<<1)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(m.CoordinatorEpoch))
	b = append(b, 0)
	setBatchCRC(b)
	return b
}

// DecodeEndTxnMarker reads the marker of a whole control batch. Keys of other
// control types (Kafka has LEADER_CHANGE and others) are an error the
// caller may skip over; a value shorter than Kafka's is one too.
func DecodeEndTxnMarker(batch []byte) (EndTxnMarker, error) {
	h, err := ParseBatchHeader(batch)
	if err != nil {
		return EndTxnMarker{}, err
	}
	if !h.IsControl() {
		return EndTxnMarker{}, fmt.Errorf("%w: not a control batch", ErrCorruptRecord)
	}
	var key, value []byte
	n := 0
	if err := RecordsWithoutHeaders(batch, func(r Record) bool {
		key, value = r.Key, r.Value
		n++
		return false
	}); err != nil {
		return EndTxnMarker{}, err
	}
	if n == 0 || len(key) < 4 || len(value) < 6 {
		return EndTxnMarker{}, fmt.Errorf("%w: control record with key of %d and value of %d bytes", ErrCorruptRecord, len(key), len(value))
	}
	typ := int16(binary.BigEndian.Uint16(key[2:]))
	if typ != ControlAbort && typ != ControlCommit {
		return EndTxnMarker{}, fmt.Errorf("%w: control record type %d is not a transaction marker", ErrCorruptRecord, typ)
	}
	return EndTxnMarker{
		ProducerID:       h.ProducerID,
		ProducerEpoch:    h.ProducerEpoch,
		CoordinatorEpoch: int32(binary.BigEndian.Uint32(value[2:])),
		Commit:           typ == ControlCommit,
	}, nil
}
