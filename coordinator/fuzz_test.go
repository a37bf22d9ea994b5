package coordinator

import (
	"encoding/json"
	"testing"
)

// FuzzOffsetRecord feeds arbitrary bytes to the decoders of stored offset
// keys and values. Invariants: never panics; what decodes re-encodes to
// the same bytes.
func FuzzOffsetRecord(f *testing.F) {
	f.Add(offsetKey(TopicPartition{"orders", 3}), encodeOffset(OffsetAndMetadata{Offset: 42, LeaderEpoch: -1, Metadata: "m", CommitTimestamp: 1}))
	f.Add([]byte{0, 0, 0, 0, 0}, []byte{})
	f.Add([]byte("x"), make([]byte, 19))
	f.Fuzz(func(t *testing.T, k, v []byte) {
		if tp, err := parseOffsetKey(k); err == nil {
			if string(offsetKey(tp)) != string(k) {
				t.Errorf("key %x re-encodes as %x", k, offsetKey(tp))
			}
		}
		if o, err := decodeOffset(v); err == nil {
			if string(encodeOffset(o)) != string(v) {
				t.Errorf("value %x re-encodes as %x", v, encodeOffset(o))
			}
		}
	})
}

// FuzzTxnOffsetRecord feeds arbitrary bytes to the decoders of staged
// transactional offsets (producer id keys and pending values).
// Invariants: never panics; what decodes re-encodes to the same bytes.
func FuzzTxnOffsetRecord(f *testing.F) {
	o := pendingTxnOffset{OffsetAndMetadata: OffsetAndMetadata{Offset: 42, LeaderEpoch: 3, Metadata: "m", CommitTimestamp: 1, ExpireTimestamp: -1}, seq: 7, superseded: true}
	f.Add(producerKey(9), encodePendingTxnOffset(o))
	f.Add(producerKey(-1), encodePendingTxnOffset(pendingTxnOffset{}))
	f.Add([]byte{1, 2, 3}, []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 2})
	f.Add([]byte{}, append([]byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 0}, make([]byte, 19)...))
	f.Fuzz(func(t *testing.T, k, v []byte) {
		if pid, err := parseProducerKey(k); err == nil {
			if string(producerKey(pid)) != string(k) {
				t.Errorf("producer key %x re-encodes as %x", k, producerKey(pid))
			}
		}
		if o, err := decodePendingTxnOffset(v); err == nil {
			if string(encodePendingTxnOffset(o)) != string(v) {
				t.Errorf("pending value %x re-encodes as %x", v, encodePendingTxnOffset(o))
			}
		}
	})
}

// FuzzStoredGroup loads arbitrary group records, as a damaged meta.db
// would hold them. Invariants: never panics; a loaded group answers the
// group interface and stops cleanly.
func FuzzStoredGroup(f *testing.F) {
	f.Add([]byte(`{"type":"classic","classic":{"protocol_type":"consumer","generation":3,"protocol":"range","leader":"m1","members":[{"member_id":"m1","instance_id":"i1","session_timeout_ms":45000,"protocols":[{"name":"range","metadata":"AAE="}],"assignment":"AAE="}]}}`))
	f.Add([]byte(`{"type":"classic","classic":{"members":[{"member_id":"","session_timeout_ms":-5}]}}`))
	f.Add([]byte(`{"type":"consumer","consumer":{}}`))
	gc, _ := newTestCoordinator(f, f.TempDir(), nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		var rec storedGroup
		if json.Unmarshal(data, &rec) != nil {
			return
		}
		gc.mu.Lock()
		defer gc.mu.Unlock()
		var g group
		switch {
		case rec.Classic != nil:
			g = loadClassicGroup(gc, "g", rec.Classic)
		case rec.Consumer != nil:
			g = loadConsumerGroup(gc, "g", rec.Consumer)
		default:
			return
		}
		_ = g.State()
		_ = g.isSubscribedToTopic("t")
		_ = g.validateOffsetCommit("m1", nil, 3, false, 9)
		_ = g.record()
		g.stop()
	})
}
