package txn

import (
	"encoding/hex"
	"reflect"
	"testing"
)

// TestTxnRecordEncoding pins the stored format: changing it needs a new
// txnValueVersion.
func TestTxnRecordEncoding(t *testing.T) {
	t.Parallel()
	rec := txnRecord{ProducerID: 1, PrevProducerID: 2, NextProducerID: -1, ProducerEpoch: 3, LastProducerEpoch: -1,
		TxnTimeoutMs: 60000, State: stateOngoing, ClientTransactionVersion: tv2, TxnStartTimestamp: 5, TxnLastUpdateTimestamp: 6,
		Partitions: []TopicPartition{{"t", 0}, {"t", 2}}, Groups: []string{"g"}}
	const want = "01" + "0000000000000001" + "0000000000000002" + "ffffffffffffffff" + "0003" + "ffff" + "0000ea60" +
		"01" + "0002" + "0000000000000005" + "0000000000000006" +
		"00000002" + "00000001" + "74" + "00000000" + "00000001" + "74" + "00000002" +
		"00000001" + "00000001" + "67"
	v := encodeTxnRecord(rec)
	if got := hex.EncodeToString(v); got != want {
		t.Fatalf("encoding\n got %s\nwant %s", got, want)
	}
	back, err := decodeTxnRecord(v)
	if err != nil || !reflect.DeepEqual(back, rec) {
		t.Fatalf("decode: %+v, %v", back, err)
	}
}

func TestDecodeTxnRecordRejects(t *testing.T) {
	t.Parallel()
	good := txnRecord{State: stateOngoing, Partitions: []TopicPartition{{"a", 0}, {"b", 0}}, Groups: []string{"g", "h"}}
	swapped := good
	swapped.Partitions = []TopicPartition{{"b", 0}, {"a", 0}}
	dupGroups := good
	dupGroups.Groups = []string{"g", "g"}
	dead := good
	dead.State = stateDead
	v := encodeTxnRecord(good)
	badVersion := append([]byte{2}, v[1:]...)
	for name, b := range map[string][]byte{
		"empty":              nil,
		"version":            badVersion,
		"truncated":          v[:len(v)-1],
		"trailing":           append(encodeTxnRecord(good), 0),
		"unsorted":           encodeTxnRecord(swapped),
		"duplicate groups":   encodeTxnRecord(dupGroups),
		"state never stored": encodeTxnRecord(dead),
		"huge count":         append(encodeTxnRecord(txnRecord{})[:txnValueFixedLen], 0xff, 0xff, 0xff, 0xff),
	} {
		if _, err := decodeTxnRecord(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestTransitions(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		from, to txnState
		ok       bool
	}{
		{stateEmpty, stateOngoing, true},
		{stateCompleteCommit, stateOngoing, true},
		{stateOngoing, statePrepareCommit, true},
		{stateEmpty, statePrepareCommit, false},
		{stateEmpty, statePrepareAbort, true}, // transactions v2
		{statePrepareEpochFence, statePrepareAbort, true},
		{statePrepareCommit, stateCompleteAbort, false},
		{statePrepareAbort, stateCompleteAbort, true},
		{stateOngoing, stateDead, false},
		{stateCompleteAbort, stateDead, true},
		{stateOngoing, stateEmpty, false},
	} {
		if got := canTransition(c.from, c.to); got != c.ok {
			t.Errorf("%v -> %v: %v, want %v", c.from, c.to, got, c.ok)
		}
	}
	for s := stateEmpty; s <= statePrepareEpochFence; s++ {
		if got, ok := stateByName(s.String()); !ok || got != s {
			t.Errorf("stateByName(%q) = %v, %v", s, got, ok)
		}
	}
}
