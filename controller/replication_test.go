package controller

import (
	"errors"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

func pr(replicas, isr []int32, leader, le, pe int32) PartitionRegistration {
	return PartitionRegistration{Replicas: replicas, ISR: isr, Leader: leader, LeaderEpoch: le, PartitionEpoch: pe}
}

func ids(v ...int32) []int32 { return v }

func TestPartitionChange(t *testing.T) {
	t.Parallel()
	// Brokers 1 and 2 eligible unless listed in down.
	for _, tc := range []struct {
		name    string
		p       PartitionRegistration
		down    []int32
		drop    int32
		unclean bool
		want    PartitionRegistration
		changed bool
	}{
		{"follower fenced leaves isr", pr(ids(1, 2, 3), ids(1, 2, 3), 1, 4, 7), ids(3), 3, false,
			pr(ids(1, 2, 3), ids(1, 2), 1, 4, 8), true},
		{"leader fenced: next replica in isr leads", pr(ids(1, 2, 3), ids(1, 2, 3), 1, 4, 7), ids(1, 3), 1, false,
			pr(ids(1, 2, 3), ids(2, 3), 2, 5, 8), true},
		{"replica order, not isr order", pr(ids(3, 2, 1), ids(1, 2, 3), 3, 0, 0), ids(3), 3, false,
			pr(ids(3, 2, 1), ids(1, 2), 2, 1, 1), true},
		{"last isr member stays, partition offline", pr(ids(1, 2), ids(1), 1, 2, 3), ids(1), 1, false,
			pr(ids(1, 2), ids(1), -1, 3, 4), true},
		{"unclean: any eligible replica with isr = it", pr(ids(1, 2), ids(1), 1, 2, 3), ids(1), 1, true,
			pr(ids(1, 2), ids(2), 2, 3, 4), true},
		{"not in isr: nothing", pr(ids(1, 2, 3), ids(1, 2), 1, 0, 0), ids(3), 3, false,
			pr(ids(1, 2, 3), ids(1, 2), 1, 0, 0), false},
		{"unfence: offline partition gets its isr member", pr(ids(1, 2), ids(1), -1, 3, 4), nil, -1, false,
			pr(ids(1, 2), ids(1), 1, 4, 5), true},
		{"unfence: offline, isr member still down", pr(ids(1, 3), ids(3), -1, 3, 4), ids(3), -1, false,
			pr(ids(1, 3), ids(3), -1, 3, 4), false},
		{"unfence unclean: replica outside isr leads", pr(ids(1, 3), ids(3), -1, 3, 4), ids(3), -1, true,
			pr(ids(1, 3), ids(1), 1, 4, 5), true},
	} {
		eligible := func(id int32) bool { return !slices.Contains(tc.down, id) }
		got, changed := partitionChange(tc.p, eligible, tc.drop, tc.unclean)
		if changed != tc.changed || !got.equal(tc.want) {
			t.Errorf("%s: got %+v changed %v, want %+v changed %v", tc.name, got, changed, tc.want, tc.changed)
		}
	}
}

// threeBrokers is an image with brokers 1-3 unfenced and topic t with the
// given partitions.
func threeBrokers(parts ...PartitionRegistration) *Image {
	img := emptyImage()
	for id := int32(1); id <= 3; id++ {
		img.Brokers[id] = BrokerRegistration{ID: id, Epoch: int64(id)}
	}
	if len(parts) > 0 {
		top := &TopicImage{Name: "t", ID: [16]byte{1}, Partitions: parts}
		img.Topics["t"], img.TopicsByID[top.ID] = top, top
	}
	return img
}

// mustApply applies recs at the next offset.
func mustApply(t *testing.T, img *Image, recs []record) *Image {
	t.Helper()
	// Through the codec, as raft would carry them.
	dec, err := decodeEntry(encodeEntry(recs))
	if err != nil {
		t.Fatal(err)
	}
	n, err := img.apply(img.Offset+1, dec)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestFenceUnfenceFlow(t *testing.T) {
	t.Parallel()
	img := threeBrokers(
		pr(ids(1, 2, 3), ids(1, 2, 3), 1, 0, 0),
		pr(ids(2, 3, 1), ids(2, 3, 1), 2, 0, 0),
		pr(ids(3, 1), ids(3), 3, 0, 0),
	)
	img = mustApply(t, img, fenceBrokerRecords(img, 3, nil))
	if !img.Brokers[3].Fenced {
		t.Fatal("broker 3 not fenced")
	}
	want := []PartitionRegistration{
		pr(ids(1, 2, 3), ids(1, 2), 1, 0, 1),
		pr(ids(2, 3, 1), ids(2, 1), 2, 0, 1),
		pr(ids(3, 1), ids(3), -1, 1, 1),
	}
	for i, p := range img.Topics["t"].Partitions {
		if !p.equal(want[i]) {
			t.Errorf("after fence, p%d = %+v, want %+v", i, p, want[i])
		}
	}
	if recs := fenceBrokerRecords(img, 3, nil); recs != nil {
		t.Errorf("fencing twice: %v", recs)
	}
	img = mustApply(t, img, unfenceBrokerRecords(img, 3, nil))
	if p := img.Topics["t"].Partitions[2]; !p.equal(pr(ids(3, 1), ids(3), 3, 2, 2)) {
		t.Errorf("after unfence, p2 = %+v", p)
	}
	// A new incarnation fences the active old one at once.
	recs := registerBrokerRecords(img, BrokerRegistration{ID: 1, IncarnationID: [16]byte{9}}, nil)
	img = mustApply(t, img, recs)
	b := img.Brokers[1]
	if !b.Fenced || b.IncarnationID != [16]byte{9} || b.Epoch != int64(img.Offset) {
		t.Errorf("re-registered broker: %+v at offset %d", b, img.Offset)
	}
	if p := img.Topics["t"].Partitions[0]; p.Leader != 2 || p.LeaderEpoch != 1 || slices.Contains(p.ISR, 1) {
		t.Errorf("after re-registration, p0 = %+v", p)
	}
	// Controlled shutdown of 2 moves its leaderships; it stays in no ISR
	// it shares.
	img = mustApply(t, img, unfenceBrokerRecords(img, 1, nil))
	img = mustApply(t, img, controlledShutdownRecords(img, 2, nil))
	for i, p := range img.Topics["t"].Partitions {
		if p.Leader == 2 || (len(p.ISR) > 1 && slices.Contains(p.ISR, 2)) {
			t.Errorf("after controlled shutdown of 2, p%d = %+v", i, p)
		}
	}
}

func TestCreateTopicRecords(t *testing.T) {
	t.Parallel()
	img := threeBrokers()
	top, recs, err := createTopicRecords(img, CreateTopicSpec{Name: "a", NumPartitions: 3, ReplicationFactor: -1}, [16]byte{7}, 1, 1, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaders := map[int32]bool{}
	for _, p := range top.Partitions {
		if len(p.Replicas) != 3 || !slices.Equal(p.ISR, p.Replicas) || p.Leader != p.Replicas[0] {
			t.Errorf("partition %+v", p)
		}
		leaders[p.Leader] = true
	}
	if len(leaders) != 3 {
		t.Errorf("leaders not spread: %v", top.Partitions)
	}
	img = mustApply(t, img, recs)
	if img.TopicsByID[[16]byte{7}] != img.Topics["a"] {
		t.Error("topic not indexed by id")
	}
	fenced := withBroker(img, BrokerRegistration{ID: 3, Fenced: true})
	for _, tc := range []struct {
		name string
		img  *Image
		spec CreateTopicSpec
		want *kerr.Error
	}{
		{"exists", img, CreateTopicSpec{Name: "a", NumPartitions: 1, ReplicationFactor: 1}, kerr.TopicAlreadyExists},
		{"bad name", img, CreateTopicSpec{Name: "a/b", NumPartitions: 1, ReplicationFactor: 1}, kerr.InvalidTopicException},
		{"rf above live brokers", fenced, CreateTopicSpec{Name: "b", NumPartitions: 1, ReplicationFactor: 3}, kerr.InvalidReplicationFactor},
		{"zero partitions", img, CreateTopicSpec{Name: "b", NumPartitions: 0, ReplicationFactor: 1}, kerr.InvalidPartitions},
		{"unknown broker", img, CreateTopicSpec{Name: "b", NumPartitions: -1, ReplicationFactor: -1, Assignment: [][]int32{{1, 9}}}, kerr.InvalidReplicaAssignment},
		{"duplicate broker", img, CreateTopicSpec{Name: "b", NumPartitions: -1, ReplicationFactor: -1, Assignment: [][]int32{{1, 1}}}, kerr.InvalidReplicaAssignment},
		{"uneven", img, CreateTopicSpec{Name: "b", NumPartitions: -1, ReplicationFactor: -1, Assignment: [][]int32{{1, 2}, {3}}}, kerr.InvalidReplicaAssignment},
		{"config", img, CreateTopicSpec{Name: "b", NumPartitions: 1, ReplicationFactor: 1, Configs: map[string]string{"bad": "1"}}, kerr.InvalidConfig},
	} {
		validate := func(c map[string]string) error {
			if _, bad := c["bad"]; bad {
				return errors.New("bad config")
			}
			return nil
		}
		_, _, err := createTopicRecords(tc.img, tc.spec, [16]byte{8}, 0, 1, 1, validate)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	// Manual assignment: fenced brokers stay out of the ISR.
	top, _, err = createTopicRecords(fenced, CreateTopicSpec{Name: "m", NumPartitions: -1, ReplicationFactor: -1, Assignment: [][]int32{{3, 1}}}, [16]byte{9}, 0, 1, 1, nil)
	if err != nil || !top.Partitions[0].equal(pr(ids(3, 1), ids(1), 1, 0, 0)) {
		t.Errorf("manual assignment with a fenced broker: %+v, %v", top, err)
	}
	// CreatePartitions keeps the replication factor.
	recs, err = createPartitionsRecords(img, "a", 5, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	img = mustApply(t, img, recs)
	if ps := img.Topics["a"].Partitions; len(ps) != 5 || len(ps[4].Replicas) != 3 {
		t.Errorf("after CreatePartitions: %+v", ps)
	}
	if _, err := createPartitionsRecords(img, "a", 5, nil, 0); !errors.Is(err, kerr.InvalidPartitions) {
		t.Errorf("same count: %v", err)
	}
}

func TestAlterPartitionRecords(t *testing.T) {
	t.Parallel()
	img := threeBrokers(pr(ids(1, 2, 3), ids(1, 2), 1, 3, 5))
	img = withBroker(img, BrokerRegistration{ID: 3, Fenced: true})
	id := [16]byte{1}
	for _, tc := range []struct {
		name           string
		broker         int32
		le, pe         int32
		isr            []int32
		want           *kerr.Error
		wantISR        []int32
		wantPartEpoch  int32
		wantLeaderEpoc int32
	}{
		{"shrink", 1, 3, 5, ids(1), nil, ids(1), 6, 3},
		{"not leader", 2, 3, 5, ids(2), kerr.NotLeaderForPartition, nil, 0, 0},
		{"old leader epoch", 1, 2, 5, ids(1), kerr.FencedLeaderEpoch, nil, 0, 0},
		{"old partition epoch", 1, 3, 4, ids(1), kerr.InvalidUpdateVersion, nil, 0, 0},
		{"fenced joins", 1, 3, 5, ids(1, 2, 3), kerr.IneligibleReplica, nil, 0, 0},
		{"not a replica", 1, 3, 5, ids(1, 4), kerr.InvalidRequest, nil, 0, 0},
		{"leader missing", 1, 3, 5, ids(2), kerr.InvalidRequest, nil, 0, 0},
	} {
		got, recs, err := alterPartitionRecords(img, tc.broker, id, 0, tc.le, tc.pe, tc.isr)
		if tc.want != nil {
			if !errors.Is(err, tc.want) || recs != nil {
				t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		n := mustApply(t, img, recs)
		p := n.Topics["t"].Partitions[0]
		if !p.equal(got) || !slices.Equal(p.ISR, tc.wantISR) || p.PartitionEpoch != tc.wantPartEpoch || p.LeaderEpoch != tc.wantLeaderEpoc {
			t.Errorf("%s: %+v", tc.name, p)
		}
	}
	if _, _, err := alterPartitionRecords(img, 1, [16]byte{5}, 0, 3, 5, ids(1)); !errors.Is(err, kerr.UnknownTopicID) {
		t.Errorf("unknown topic: %v", err)
	}
}

func TestApplyRefusesWholeEntry(t *testing.T) {
	t.Parallel()
	img := threeBrokers(pr(ids(1), ids(1), 1, 0, 0))
	recs := []record{
		{Type: recFenceBroker, BrokerID: 1},
		{Type: recDeleteTopic, TopicID: [16]byte{42}},
	}
	n, err := img.apply(1, recs)
	if err == nil || n != img || img.Brokers[1].Fenced {
		t.Fatalf("got %v; image changed: %v", err, n != img)
	}
	if _, err := img.apply(1, []record{{Type: recProducerIDs, NextProducerID: 0}}); err == nil {
		t.Error("producer ids went back")
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	t.Parallel()
	img := threeBrokers(pr(ids(1, 2), ids(1, 2), 1, 2, 3))
	img.Topics["t"].Configs = map[string]string{"cleanup.policy": "compact"}
	img.Offset, img.NextProducerID = 17, 3000
	got, state, err := decodeSnapshot(encodeSnapshot(img, []byte("coordinator state")))
	if err != nil {
		t.Fatal(err)
	}
	if string(state) != "coordinator state" {
		t.Fatalf("coordinator state %q after the round trip", state)
	}
	if string(encodeSnapshot(got, nil)) != string(encodeSnapshot(img, nil)) || got.TopicsByID[[16]byte{1}] != got.Topics["t"] {
		t.Errorf("round trip: %+v", got)
	}
}

// FuzzDecodeRecord checks the metadata log decoder: never panics; what it
// accepts re-encodes and decodes to the same records; applying accepted
// records to a populated image never panics and, on error, leaves it be.
func FuzzDecodeRecord(f *testing.F) {
	img := threeBrokers(pr(ids(1, 2, 3), ids(1, 2, 3), 1, 0, 0))
	f.Add(encodeEntry(fenceBrokerRecords(img, 1, nil)))
	f.Add(encodeEntry(registerBrokerRecords(img, BrokerRegistration{ID: 4}, nil)))
	_, recs, _ := createTopicRecords(img, CreateTopicSpec{Name: "x", NumPartitions: 2, ReplicationFactor: 2}, [16]byte{3}, 0, 1, 1, nil)
	f.Add(encodeEntry(recs))
	f.Add(encodeEntry([]record{{Type: recProducerIDs, NextProducerID: 1000}, {Type: recSetTopicConfigs, TopicID: [16]byte{1}, Configs: map[string]string{"a": "b"}}}))
	f.Add([]byte(`{"version":1,"records":[{"type":"PartitionChange","topicId":[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"partition":0,"registration":{"replicas":[1,2,3],"isr":[2],"leader":2,"leaderEpoch":1,"partitionEpoch":1}}]}`))
	f.Add([]byte(`{"version":1,"records":[]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := decodeEntry(b)
		if err != nil {
			if !errors.Is(err, ErrCorruptRecord) {
				t.Fatalf("error not marked corrupt: %v", err)
			}
			return
		}
		again, err := decodeEntry(encodeEntry(recs))
		if err != nil || len(again) != len(recs) {
			t.Fatalf("re-decode: %v", err)
		}
		n, err := img.apply(img.Offset+1, recs)
		if err != nil && n != img {
			t.Fatal("failed apply returned a new image")
		}
		if err == nil {
			for _, top := range n.Topics {
				for _, p := range top.Partitions {
					if p.check() != nil {
						t.Fatalf("applied an invalid partition %+v", p)
					}
				}
			}
		}
	})
}

// FuzzDecodeSnapshot checks the snapshot decoder: never panics, and what it
// accepts re-encodes to bytes that decode again to the same snapshot.
func FuzzDecodeSnapshot(f *testing.F) {
	img := threeBrokers(pr(ids(1, 2), ids(1, 2), 1, 2, 3))
	f.Add(encodeSnapshot(img, []byte{1, 2, 3}))
	f.Add(encodeSnapshot(emptyImage(), nil))
	f.Add([]byte(`{"version":1,"topics":[null]}`))
	f.Add([]byte(`{"version":1,"brokers":[{"id":1},{"id":1}]}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, state, err := decodeSnapshot(b)
		if err != nil {
			return
		}
		enc := encodeSnapshot(got, state)
		again, againState, err := decodeSnapshot(enc)
		if err != nil || string(encodeSnapshot(again, againState)) != string(enc) {
			t.Fatalf("re-decode: %v", err)
		}
	})
}
