package txn

import (
	"bytes"
	"math"
	"testing"
)

// FuzzTransactionMetadata feeds arbitrary bytes to the decoder of stored
// transaction metadata values, as a damaged meta.db would hold them.
// Invariants: never panics; what decodes re-encodes to the same bytes.
func FuzzTransactionMetadata(f *testing.F) {
	f.Add(encodeTxnRecord(txnRecord{ProducerID: 7, PrevProducerID: 7, NextProducerID: -1, ProducerEpoch: 3, LastProducerEpoch: 2,
		TxnTimeoutMs: 60000, State: stateOngoing, ClientTransactionVersion: tv2, TxnStartTimestamp: 1, TxnLastUpdateTimestamp: 2,
		Partitions: []TopicPartition{{"a", 0}, {"a", 1}, {"b", 0}}, Groups: []string{"g", "h"}}))
	f.Add(encodeTxnRecord(txnRecord{ProducerID: math.MaxInt64, ProducerEpoch: math.MaxInt16, State: stateCompleteAbort, TxnStartTimestamp: -1}))
	f.Add(encodeTxnRecord(txnRecord{State: stateEmpty})[:20])
	f.Add([]byte{})
	f.Add([]byte{txnValueVersion})
	f.Add(append(encodeTxnRecord(txnRecord{State: statePrepareCommit}), 0xff))
	f.Fuzz(func(t *testing.T, v []byte) {
		rec, err := decodeTxnRecord(v)
		if err != nil {
			return
		}
		if got := encodeTxnRecord(rec); !bytes.Equal(got, v) {
			t.Fatalf("value %x re-encodes as %x", v, got)
		}
	})
}
