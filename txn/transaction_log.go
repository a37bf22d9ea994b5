package txn

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// txnValueVersion leads every stored transaction metadata value (Kafka's
// TransactionLogValue, one bbolt key per transactional id in place of one
// compacted record in __transaction_state). All integers are big-endian:
//
//	version u8 = 1
//	producer id i64 | previous producer id i64 | next producer id i64
//	producer epoch i16 | last producer epoch i16 | timeout ms i32
//	state u8 | client transaction version i16
//	start ms i64 | last update ms i64
//	partition count u32, then each: topic length u32 | topic | partition i32
//	group count u32, then each: group length u32 | group
//
// Partitions are sorted by topic then partition and groups by name, without
// duplicates, so a value has one encoding. Only the states a transition
// stores appear (Empty through CompleteAbort). The value is not
// checksummed: bbolt pages are.
const txnValueVersion = 1

const txnValueFixedLen = 1 + 8*3 + 2*2 + 4 + 1 + 2 + 8*2

func encodeTxnRecord(r txnRecord) []byte {
	n := txnValueFixedLen + 8
	for _, tp := range r.Partitions {
		n += 8 + len(tp.Topic)
	}
	for _, g := range r.Groups {
		n += 4 + len(g)
	}
	v := make([]byte, 0, n)
	v = append(v, txnValueVersion)
	v = binary.BigEndian.AppendUint64(v, uint64(r.ProducerID))
	v = binary.BigEndian.AppendUint64(v, uint64(r.PrevProducerID))
	v = binary.BigEndian.AppendUint64(v, uint64(r.NextProducerID))
	v = binary.BigEndian.AppendUint16(v, uint16(r.ProducerEpoch))
	v = binary.BigEndian.AppendUint16(v, uint16(r.LastProducerEpoch))
	v = binary.BigEndian.AppendUint32(v, uint32(r.TxnTimeoutMs))
	v = append(v, byte(r.State))
	v = binary.BigEndian.AppendUint16(v, uint16(r.ClientTransactionVersion))
	v = binary.BigEndian.AppendUint64(v, uint64(r.TxnStartTimestamp))
	v = binary.BigEndian.AppendUint64(v, uint64(r.TxnLastUpdateTimestamp))
	v = binary.BigEndian.AppendUint32(v, uint32(len(r.Partitions)))
	for _, tp := range r.Partitions {
		v = binary.BigEndian.AppendUint32(v, uint32(len(tp.Topic)))
		v = append(v, tp.Topic...)
		v = binary.BigEndian.AppendUint32(v, uint32(tp.Partition))
	}
	v = binary.BigEndian.AppendUint32(v, uint32(len(r.Groups)))
	for _, g := range r.Groups {
		v = binary.BigEndian.AppendUint32(v, uint32(len(g)))
		v = append(v, g...)
	}
	return v
}

var errShortValue = errors.New("short transaction metadata value")

// txnValueReader reads a stored value front to back; the first error
// sticks.
type txnValueReader struct {
	b   []byte
	err error
}

func (r *txnValueReader) take(n int) []byte {
	if r.err != nil || n > len(r.b) {
		r.err = errShortValue
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *txnValueReader) u8() byte {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *txnValueReader) u16() uint16 {
	if b := r.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *txnValueReader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *txnValueReader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (r *txnValueReader) str() string {
	n := r.u32()
	if r.err == nil && uint64(n) > uint64(len(r.b)) {
		r.err = errShortValue
	}
	return string(r.take(int(n)))
}

// count reads an element count, refusing one that the remaining bytes
// cannot hold (each element takes at least minLen bytes).
func (r *txnValueReader) count(minLen int) int {
	n := r.u32()
	if r.err == nil && uint64(n) > uint64(len(r.b)/minLen) {
		r.err = errShortValue
		return 0
	}
	return int(n)
}

// decodeTxnRecord reads a value written by encodeTxnRecord; anything else is
// an error, never a panic.
func decodeTxnRecord(v []byte) (txnRecord, error) {
	r := &txnValueReader{b: v}
	if ver := r.u8(); r.err == nil && ver != txnValueVersion {
		return txnRecord{}, fmt.Errorf("transaction metadata value version %d, want %d", ver, txnValueVersion)
	}
	var rec txnRecord
	rec.ProducerID = int64(r.u64())
	rec.PrevProducerID = int64(r.u64())
	rec.NextProducerID = int64(r.u64())
	rec.ProducerEpoch = int16(r.u16())
	rec.LastProducerEpoch = int16(r.u16())
	rec.TxnTimeoutMs = int32(r.u32())
	rec.State = txnState(r.u8())
	rec.ClientTransactionVersion = transactionVersion(r.u16())
	rec.TxnStartTimestamp = int64(r.u64())
	rec.TxnLastUpdateTimestamp = int64(r.u64())
	if r.err == nil && (rec.State < stateEmpty || rec.State > stateCompleteAbort) {
		return txnRecord{}, fmt.Errorf("transaction metadata value has state %d", rec.State)
	}
	if n := r.count(8); n > 0 {
		rec.Partitions = make([]TopicPartition, 0, n)
		for range n {
			tp := TopicPartition{Topic: r.str(), Partition: int32(r.u32())}
			if r.err != nil {
				break
			}
			if k := len(rec.Partitions); k > 0 && compareTopicPartition(rec.Partitions[k-1], tp) >= 0 {
				return txnRecord{}, errors.New("transaction metadata value: partitions not sorted")
			}
			rec.Partitions = append(rec.Partitions, tp)
		}
	}
	if n := r.count(4); n > 0 {
		rec.Groups = make([]string, 0, n)
		for range n {
			g := r.str()
			if r.err != nil {
				break
			}
			if k := len(rec.Groups); k > 0 && rec.Groups[k-1] >= g {
				return txnRecord{}, errors.New("transaction metadata value: groups not sorted")
			}
			rec.Groups = append(rec.Groups, g)
		}
	}
	if r.err != nil {
		return txnRecord{}, r.err
	}
	if len(r.b) != 0 {
		return txnRecord{}, fmt.Errorf("transaction metadata value has %d trailing bytes", len(r.b))
	}
	return rec, nil
}
