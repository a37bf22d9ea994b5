package controller

import (
	"errors"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// ra is a registration with an ongoing reassignment.
func ra(replicas, isr []int32, leader, le, pe int32, adding, removing []int32) PartitionRegistration {
	p := pr(replicas, isr, leader, le, pe)
	p.AddingReplicas, p.RemovingReplicas = adding, removing
	return p
}

// fenced returns img with broker id fenced.
func fenced(img *Image, id int32) *Image {
	b := img.Brokers[id]
	b.Fenced = true
	return withBroker(img, b)
}

func TestElectLeaderRecord(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		p    PartitionRegistration
		down int32 // a fenced broker, or 0
		typ  ElectionType
		want PartitionRegistration
		err  *kerr.Error
	}{
		{"preferred: first replica back in isr leads", pr(ids(1, 2, 3), ids(2, 3, 1), 2, 4, 9), 0, ElectPreferred,
			pr(ids(1, 2, 3), ids(2, 3, 1), 1, 5, 10), nil},
		{"preferred: already leads", pr(ids(1, 2, 3), ids(1, 2, 3), 1, 4, 9), 0, ElectPreferred, PartitionRegistration{}, kerr.ElectionNotNeeded},
		{"preferred: not in isr", pr(ids(1, 2, 3), ids(2, 3), 2, 4, 9), 0, ElectPreferred, PartitionRegistration{}, kerr.PreferredLeaderNotAvailable},
		{"preferred: fenced", pr(ids(1, 2, 3), ids(1, 2, 3), 2, 4, 9), 1, ElectPreferred, PartitionRegistration{}, kerr.PreferredLeaderNotAvailable},
		{"preferred: offline partition", pr(ids(1, 2), ids(1), -1, 4, 9), 0, ElectPreferred,
			pr(ids(1, 2), ids(1), 1, 5, 10), nil},
		{"unclean: has a leader", pr(ids(1, 2, 3), ids(2), 2, 4, 9), 0, ElectUnclean, PartitionRegistration{}, kerr.ElectionNotNeeded},
		{"unclean: isr member first", pr(ids(1, 2, 3), ids(3), -1, 4, 9), 0, ElectUnclean,
			pr(ids(1, 2, 3), ids(3), 3, 5, 10), nil},
		{"unclean: any live replica, isr = it", pr(ids(1, 2, 3), ids(1), -1, 4, 9), 1, ElectUnclean,
			pr(ids(1, 2, 3), ids(2), 2, 5, 10), nil},
		{"unclean: nobody", pr(ids(1), ids(1), -1, 4, 9), 1, ElectUnclean, PartitionRegistration{}, kerr.EligibleLeadersNotAvailable},
	} {
		img := threeBrokers(tc.p)
		if tc.down != 0 {
			img = fenced(img, tc.down)
		}
		r, err := electLeaderRecord(img, "t", 0, tc.typ)
		switch {
		case tc.err != nil:
			if !errors.Is(err, tc.err) || r != nil {
				t.Errorf("%s: got %v, %v; want %v", tc.name, r, err, tc.err)
			}
			continue
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !r.Registration.equal(tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, *r.Registration, tc.want)
		}
		mustApply(t, img, []record{*r})
	}
	if _, err := electLeaderRecord(threeBrokers(pr(ids(1), ids(1), 1, 0, 0)), "t", 1, ElectPreferred); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("unknown partition: %v", err)
	}
}

func TestElectLeadersAll(t *testing.T) {
	t.Parallel()
	img := threeBrokers(
		pr(ids(1, 2, 3), ids(1, 2, 3), 2, 1, 1), // needs it
		pr(ids(2, 3, 1), ids(2, 3, 1), 2, 0, 0), // already preferred
		pr(ids(3, 1, 2), ids(1, 2), 1, 1, 1),    // preferred out of the isr
	)
	recs, res, err := electLeadersRecords(img, ElectPreferred, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || len(res) != 2 || res[0].Partition != 0 || res[0].Err != nil || res[1].Partition != 2 || !errors.Is(res[1].Err, kerr.PreferredLeaderNotAvailable) {
		t.Fatalf("all partitions: %d records, results %+v", len(recs), res)
	}
	// Named twice: elected once, then not needed.
	recs, res, err = electLeadersRecords(img, ElectPreferred, []TopicPartitions{{Topic: "t", Partitions: ids(0, 0, 1)}, {Topic: "nope", Partitions: ids(0)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || len(res) != 4 || res[0].Err != nil || !errors.Is(res[1].Err, kerr.ElectionNotNeeded) ||
		!errors.Is(res[2].Err, kerr.ElectionNotNeeded) || !errors.Is(res[3].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("named: %d records, results %+v", len(recs), res)
	}
	mustApply(t, img, recs)
}

// TestReassignmentSteps follows reassignments through every step, each
// record through the codec and apply, as every node would.
func TestReassignmentSteps(t *testing.T) {
	t.Parallel()
	// step(img)(r, err) applies r to img.
	step := func(img *Image) func(*record, error) *Image {
		return func(r *record, err error) *Image {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			if r == nil {
				t.Fatal("no record")
			}
			return mustApply(t, img, []record{*r})
		}
	}
	isr := func(img *Image, leader int32, newISR []int32) (*record, error) {
		p := img.Topics["t"].Partitions[0]
		_, recs, err := alterPartitionRecords(img, leader, [16]byte{1}, 0, p.LeaderEpoch, p.PartitionEpoch, newISR)
		if err != nil {
			return nil, err
		}
		return &recs[0], nil
	}
	part := func(img *Image) PartitionRegistration { return img.Topics["t"].Partitions[0] }
	check := func(what string, got, want PartitionRegistration) {
		t.Helper()
		if !got.equal(want) {
			t.Fatalf("%s: got %+v, want %+v", what, got, want)
		}
	}

	// [1] → [2]: 2 is added, joins the ISR, and that completes it: 2 leads
	// at a new epoch, 1 is gone.
	img := threeBrokers(pr(ids(1), ids(1), 1, 0, 0))
	img = step(img)(reassignmentRecord(img, Reassignment{Topic: "t", Partition: 0, Replicas: ids(2)}, true, nil))
	check("started", part(img), ra(ids(2, 1), ids(1), 1, 0, 1, ids(2), ids(1)))
	if got := ongoingReassignments(img, nil); len(got) != 1 || !slices.Equal(got[0].AddingReplicas, ids(2)) || !slices.Equal(got[0].RemovingReplicas, ids(1)) {
		t.Fatalf("listed: %v", got)
	}
	r, err := isr(img, 1, ids(1, 2))
	img = step(img)(r, err)
	check("completed", part(img), pr(ids(2), ids(2), 2, 1, 2))
	if got := ongoingReassignments(img, nil); len(got) != 0 {
		t.Fatalf("listed after completion: %v", got)
	}

	// [1] → [2,3]: one joins (no completion yet), then the other.
	img = threeBrokers(pr(ids(1), ids(1), 1, 0, 0))
	img = step(img)(reassignmentRecord(img, Reassignment{Topic: "t", Partition: 0, Replicas: ids(2, 3)}, true, nil))
	check("started", part(img), ra(ids(2, 3, 1), ids(1), 1, 0, 1, ids(2, 3), ids(1)))
	r, err = isr(img, 1, ids(1, 3))
	img = step(img)(r, err)
	check("half way", part(img), ra(ids(2, 3, 1), ids(1, 3), 1, 0, 2, ids(2, 3), ids(1)))
	r, err = isr(img, 1, ids(1, 3, 2))
	img = step(img)(r, err)
	check("completed", part(img), pr(ids(2, 3), ids(3, 2), 2, 1, 3))

	// [1,2] → [1,3]: the leader stays, 2 leaves at a new leader epoch.
	img = threeBrokers(pr(ids(1, 2), ids(1, 2), 1, 5, 5))
	img = step(img)(reassignmentRecord(img, Reassignment{Topic: "t", Partition: 0, Replicas: ids(1, 3)}, false, nil))
	check("started", part(img), ra(ids(1, 3, 2), ids(1, 2), 1, 5, 6, ids(3), ids(2)))
	r, err = isr(img, 1, ids(1, 2, 3))
	img = step(img)(r, err)
	check("completed", part(img), pr(ids(1, 3), ids(1, 3), 1, 6, 7))

	// Only removing or reordering: complete at once.
	img = threeBrokers(pr(ids(1, 2, 3), ids(1, 2, 3), 1, 0, 0))
	img = step(img)(reassignmentRecord(img, Reassignment{Topic: "t", Partition: 0, Replicas: ids(3, 2)}, true, nil))
	check("shrunk", part(img), pr(ids(3, 2), ids(2, 3), 3, 1, 1))
	img = step(img)(reassignmentRecord(img, Reassignment{Topic: "t", Partition: 0, Replicas: ids(2, 3)}, true, nil))
	check("reordered", part(img), pr(ids(2, 3), ids(2, 3), 3, 1, 2))
	if r, err := reassignmentRecord(img, Reassignment{Topic: "t", Partition: 0, Replicas: ids(2, 3)}, true, nil); r != nil || err != nil {
		t.Fatalf("same assignment: %v %v", r, err)
	}

	// Cancel: back to the original replicas; an adding replica that became
	// leader gives way.
	img = threeBrokers(pr(ids(1, 2), ids(1, 2), 1, 0, 0))
	img = step(img)(reassignmentRecord(img, Reassignment{Topic: "t", Partition: 0, Replicas: ids(3, 2)}, true, nil))
	check("started", part(img), ra(ids(3, 2, 1), ids(1, 2), 1, 0, 1, ids(3), ids(1)))
	img = step(img)(reassignmentRecord(img, Reassignment{Topic: "t", Partition: 0}, true, nil))
	check("cancelled", part(img), pr(ids(2, 1), ids(1, 2), 1, 1, 2))
	if _, err := reassignmentRecord(img, Reassignment{Topic: "t", Partition: 0}, true, nil); !errors.Is(err, kerr.NoReassignmentInProgress) {
		t.Fatalf("cancel with none: %v", err)
	}
	img = threeBrokers(ra(ids(3, 1), ids(3), 3, 2, 4, ids(3), ids(1)))
	if _, err := reassignmentRecord(img, Reassignment{Topic: "t", Partition: 0}, true, nil); !errors.Is(err, kerr.InvalidReplicaAssignment) {
		t.Fatalf("cancel needing an unclean election: %v", err)
	}
	img = step(img)(reassignmentRecord(img, Reassignment{Topic: "t", Partition: 0}, true, func(map[string]string) bool { return true }))
	check("cancelled unclean", part(img), pr(ids(1), ids(1), 1, 3, 5))

	// A leader being removed gives way only to an eligible target replica.
	img = fenced(threeBrokers(ra(ids(2, 1), ids(1), 1, 0, 1, ids(2), ids(1))), 2)
	p, _, err := alterPartitionRecords(img, 1, [16]byte{1}, 0, 0, 1, ids(1, 2))
	if err == nil {
		t.Fatalf("fenced replica joined the isr: %+v", p)
	}
}

func TestReassignmentErrors(t *testing.T) {
	t.Parallel()
	img := threeBrokers(pr(ids(1, 2), ids(1, 2), 1, 0, 0))
	for _, tc := range []struct {
		name    string
		r       Reassignment
		allowRF bool
		err     *kerr.Error
	}{
		{"unknown topic", Reassignment{Topic: "x", Replicas: ids(1)}, true, kerr.UnknownTopicOrPartition},
		{"unknown partition", Reassignment{Topic: "t", Partition: 3, Replicas: ids(1)}, true, kerr.UnknownTopicOrPartition},
		{"empty", Reassignment{Topic: "t", Replicas: []int32{}}, true, kerr.InvalidReplicaAssignment},
		{"twice", Reassignment{Topic: "t", Replicas: ids(1, 1)}, true, kerr.InvalidReplicaAssignment},
		{"unregistered", Reassignment{Topic: "t", Replicas: ids(1, 4)}, true, kerr.InvalidReplicaAssignment},
		{"rf change refused", Reassignment{Topic: "t", Replicas: ids(1, 2, 3)}, false, kerr.InvalidReplicationFactor},
		{"no reassignment to cancel", Reassignment{Topic: "t"}, true, kerr.NoReassignmentInProgress},
	} {
		if _, err := reassignmentRecord(img, tc.r, tc.allowRF, nil); !errors.Is(err, tc.err) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.err)
		}
	}
	// One failing partition does not stop the others.
	recs, res, err := reassignmentRecords(img, []Reassignment{{Topic: "t", Replicas: ids(9)}, {Topic: "t", Replicas: ids(2, 3)}}, true, nil)
	if err != nil || len(recs) != 1 || res[0].Err == nil || res[1].Err != nil {
		t.Fatalf("mixed: %d records, %+v, %v", len(recs), res, err)
	}
}

func TestReassignmentInvariants(t *testing.T) {
	t.Parallel()
	for _, p := range []PartitionRegistration{
		ra(ids(1, 2), ids(1), 1, 0, 0, ids(3), nil),       // adding not a replica
		ra(ids(1, 2), ids(1), 1, 0, 0, nil, ids(3)),       // removing not a replica
		ra(ids(1, 2), ids(1), 1, 0, 0, ids(2), ids(2)),    // both
		ra(ids(1, 2), ids(1), 1, 0, 0, nil, ids(1, 2)),    // removes all
		ra(ids(1, 2), ids(1), 1, 0, 0, ids(2, 2), ids(1)), // duplicate
	} {
		if err := p.check(); err == nil {
			t.Errorf("%+v passed the check", p)
		}
	}
	// A replica may leave only with a new leader epoch.
	img := threeBrokers(pr(ids(1, 2), ids(1, 2), 1, 0, 0))
	n := pr(ids(1), ids(1), 1, 0, 1)
	if _, err := img.apply(1, []record{{Type: recPartitionChange, TopicID: [16]byte{1}, Registration: &n}}); err == nil {
		t.Error("replica removed at the same leader epoch")
	}
	// Snapshots keep reassignments.
	img = threeBrokers(ra(ids(2, 1), ids(1), 1, 0, 1, ids(2), ids(1)))
	got, _, err := decodeSnapshot(encodeSnapshot(img, nil))
	if err != nil || !got.Topics["t"].Partitions[0].equal(img.Topics["t"].Partitions[0]) {
		t.Fatalf("snapshot round trip: %v %+v", err, got)
	}
}
