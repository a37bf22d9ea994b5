package integration

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A preferred leader that lost leadership (its node stopped and came back:
// the leader stays elsewhere) gets it back with ElectLeaders PREFERRED, at
// a new leader epoch; a second election is not needed; producing and
// consuming go on across the move.
func TestClusterElectPreferredLeader(t *testing.T) {
	c := startCluster(t, 3, nil)
	adm := kadm.NewClient(c.client(t))
	const topic = "preferred"
	if resp, err := adm.CreateTopic(ctx(t), 1, 3, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create topic: %v / %v", err, resp.Err)
	}
	waitISR(t, adm, topic, 3)
	td, err := adm.ListTopics(ctx(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	preferred := td[topic].Partitions[0].Replicas[0]
	if l := partitionLeader(t, adm, topic, 0); l != preferred {
		t.Fatalf("new partition led by %d, its preferred replica is %d", l, preferred)
	}
	prod := c.client(t, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(1000))
	for i := range 100 {
		produceSync(t, prod, &kgo.Record{Value: value(i)})
	}

	c.stop(t, preferred)
	c.restart(t, preferred)
	adm = kadm.NewClient(c.client(t))
	waitISR(t, adm, topic, 3)
	if l := partitionLeader(t, adm, topic, 0); l == preferred {
		t.Fatalf("partition led by its restarted preferred replica %d before any election", l)
	}
	epoch := partitionEpoch(t, adm, topic, 0)

	var set kadm.TopicsSet
	set.Add(topic, 0)
	waitUntil(t, 15*time.Second, func() bool {
		res, err := adm.ElectLeaders(context.Background(), kadm.ElectPreferredReplica, set)
		if err != nil {
			t.Fatalf("elect leaders: %v", err)
		}
		r := res[topic][0]
		if r.Err != nil && !errors.Is(r.Err, kerr.PreferredLeaderNotAvailable) {
			t.Fatalf("elect leaders: %v (%s)", r.Err, r.ErrMessage)
		}
		return r.Err == nil
	})
	// Another broker's metadata may trail the one that answered by the
	// entries in flight.
	waitUntil(t, 5*time.Second, func() bool { return partitionLeader(t, adm, topic, 0) == preferred })
	if e := partitionEpoch(t, adm, topic, 0); e <= epoch {
		t.Fatalf("leader epoch %d after the election, was %d", e, epoch)
	}
	res, err := adm.ElectLeaders(ctx(t), kadm.ElectPreferredReplica, set)
	if err != nil || !errors.Is(res[topic][0].Err, kerr.ElectionNotNeeded) {
		t.Fatalf("second election: %v / %+v", err, res)
	}
	// All partitions: the ones needing no election are left out.
	res, err = adm.ElectLeaders(ctx(t), kadm.ElectPreferredReplica, nil)
	if err != nil || len(res[topic]) != 0 {
		t.Fatalf("election of all partitions: %v / %+v", err, res)
	}
	res, err = adm.ElectLeaders(ctx(t), kadm.ElectLiveReplica, set)
	if err != nil || !errors.Is(res[topic][0].Err, kerr.ElectionNotNeeded) {
		t.Fatalf("unclean election with a leader: %v / %+v", err, res)
	}

	for i := 100; i < 200; i++ {
		produceSync(t, prod, &kgo.Record{Value: value(i)})
	}
	got := consumeCluster(t, c, topic, 200)
	for i, r := range got[:200] {
		if string(r.Value) != string(value(i)) {
			t.Fatalf("record %d is %s, want %s", i, r.Value, value(i))
		}
	}
}

// Reassignments move data: a one-replica topic on node 1 moves to node 2,
// another to nodes [2,3]. The new replicas catch up, join the ISR, and the
// controller completes each reassignment: Replicas and ISR are the target,
// ListPartitionReassignments is empty, and with node 1 stopped every
// record is still there.
func TestClusterReassignPartitions(t *testing.T) {
	c := startCluster(t, 3, nil)
	cl := c.client(t)
	adm := kadm.NewClient(cl)
	targets := map[string][]int32{"move-to-2": {2}, "move-to-23": {2, 3}}
	for topic := range targets {
		createOnNode1(t, cl, topic)
	}
	const n = 300
	for topic := range targets {
		prod := c.client(t, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
		for i := range n {
			prod.Produce(ctx(t), &kgo.Record{Value: value(i)}, nil)
		}
		if err := prod.Flush(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}

	// Errors first: unknown brokers, unknown partitions, nothing to cancel.
	var bad kadm.AlterPartitionAssignmentsReq
	bad.Assign("move-to-2", 0, []int32{9})
	bad.Assign("move-to-2", 5, []int32{2})
	bad.CancelAssign("move-to-23", 0)
	resp, err := adm.AlterPartitionAssignments(ctx(t), bad)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(resp["move-to-2"][0].Err, kerr.InvalidReplicaAssignment) || !errors.Is(resp["move-to-2"][5].Err, kerr.UnknownTopicOrPartition) ||
		!errors.Is(resp["move-to-23"][0].Err, kerr.NoReassignmentInProgress) {
		t.Fatalf("bad reassignments: %+v", resp)
	}

	var req kadm.AlterPartitionAssignmentsReq
	var set kadm.TopicsSet
	for topic, target := range targets {
		req.Assign(topic, 0, target)
		set.Add(topic, 0)
	}
	resp, err = adm.AlterPartitionAssignments(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	for topic := range targets {
		if r := resp[topic][0]; r.Err != nil {
			t.Fatalf("reassign %s: %v (%s)", topic, r.Err, r.ErrMessage)
		}
	}
	start := time.Now()
	waitUntil(t, 30*time.Second, func() bool {
		l, err := adm.ListPartitionReassignments(context.Background(), set)
		if err != nil {
			t.Fatalf("list reassignments: %v", err)
		}
		for topic, ps := range l {
			for _, r := range ps {
				// In progress: the target first, node 1 being removed.
				if !slices.Equal(r.Replicas[:len(targets[topic])], targets[topic]) || !slices.Equal(r.RemovingReplicas, []int32{1}) || !slices.Equal(r.AddingReplicas, targets[topic]) {
					t.Fatalf("ongoing reassignment of %s: %+v", topic, r)
				}
			}
		}
		return len(l) == 0
	})
	t.Logf("reassignments completed in %v", time.Since(start).Round(time.Millisecond))
	waitUntil(t, 15*time.Second, func() bool {
		td, err := adm.ListTopics(context.Background(), "move-to-2", "move-to-23")
		if err != nil {
			return false
		}
		for topic, target := range targets {
			p := td[topic].Partitions[0]
			if !slices.Equal(p.Replicas, target) || !slices.Equal(slices.Sorted(slices.Values(p.ISR)), target) || p.Leader != target[0] {
				return false
			}
		}
		return true
	})

	c.stop(t, 1)
	for topic := range targets {
		got := consumeClusterExcept(t, c, topic, n, 1)
		for i, r := range got[:n] {
			if string(r.Value) != string(value(i)) {
				t.Fatalf("%s: record %d is %s, want %s", topic, i, r.Value, value(i))
			}
		}
	}
}

// On one broker, what Kafka answers a one-broker cluster: no election is
// needed, a reassignment can only name this node, there is never one to
// cancel or list.
func TestClusterAdminOnOneNode(t *testing.T) {
	b := startBroker(t, map[string]string{"node.id": "1"})
	adm := b.admin(t)
	createTopic(t, adm, "solo", 1, nil)
	var set kadm.TopicsSet
	set.Add("solo", 0)
	set.Add("nope", 0)
	res, err := adm.ElectLeaders(ctx(t), kadm.ElectPreferredReplica, set)
	if err != nil || !errors.Is(res["solo"][0].Err, kerr.ElectionNotNeeded) || !errors.Is(res["nope"][0].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("elect leaders: %v / %+v", err, res)
	}
	var req kadm.AlterPartitionAssignmentsReq
	req.Assign("solo", 0, []int32{1, 2})
	resp, err := adm.AlterPartitionAssignments(ctx(t), req)
	if err != nil || !errors.Is(resp["solo"][0].Err, kerr.InvalidReplicaAssignment) {
		t.Fatalf("reassign to another broker: %v / %+v", err, resp)
	}
	req = nil
	req.Assign("solo", 0, []int32{1})
	if resp, err = adm.AlterPartitionAssignments(ctx(t), req); err != nil || resp["solo"][0].Err != nil {
		t.Fatalf("reassign to this broker: %v / %+v", err, resp)
	}
	req = nil
	req.CancelAssign("solo", 0)
	if resp, err = adm.AlterPartitionAssignments(ctx(t), req); err != nil || !errors.Is(resp["solo"][0].Err, kerr.NoReassignmentInProgress) {
		t.Fatalf("cancel: %v / %+v", err, resp)
	}
	if l, err := adm.ListPartitionReassignments(ctx(t), set); err != nil || len(l) != 0 {
		t.Fatalf("list: %v / %+v", err, l)
	}
}

// createOnNode1 creates a one-partition topic whose only replica is node 1.
func createOnNode1(t testing.TB, cl *kgo.Client, topic string) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	rt.ReplicaAssignment = []kmsg.CreateTopicsRequestTopicReplicaAssignment{{Partition: 0, Replicas: []int32{1}}}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		t.Fatalf("create %s on node 1: %v", topic, err)
	}
}

// consumeClusterExcept reads n records of topic from the start through the
// nodes other than stopped.
func consumeClusterExcept(t testing.TB, c *testCluster, topic string, n int, stopped int32) []*kgo.Record {
	t.Helper()
	cl := c.clientExcept(t, stopped, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(cctx)
		if cctx.Err() != nil {
			t.Fatalf("%s: consumed %d of %d records", topic, len(out), n)
		}
		out = append(out, fs.Records()...)
	}
	return out
}
