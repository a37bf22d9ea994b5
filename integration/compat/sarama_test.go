// Package compat runs a second client family, IBM's sarama, against kbroker:
// consumer groups with static membership (KIP-345) and committed offsets;
// idempotent and transactional producers, read_committed consumers and
// exactly-once copies (idempotent_test.go, transactions_test.go,
// fencing_test.go, exactly_once_test.go). It is its own module so sarama
// stays out of kbroker's go.mod.
package compat

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

const waitFor = 20 * time.Second // per awaited event; far above a healthy rebalance

// settle waits until every named member's latest Setup is in one generation
// with want partitions each, and returns those Setups by member.
func settle(t *testing.T, events <-chan sessionEvent, want int, names ...string) map[string]sessionEvent {
	t.Helper()
	latest := make(map[string]sessionEvent)
	deadline := time.After(waitFor)
	for {
		ok := len(latest) == len(names)
		for _, n := range names {
			ev, seen := latest[n]
			ok = ok && seen && len(ev.claims) == want && ev.generation == latest[names[0]].generation
		}
		if ok {
			return latest
		}
		select {
		case ev := <-events:
			if ev.setup {
				latest[ev.member] = ev
			} else {
				delete(latest, ev.member)
			}
		case <-deadline:
			t.Fatalf("members %v did not settle on %d partitions each within %v: %v", names, want, waitFor, latest)
		}
	}
}

// noEvents fails if events holds anything now (no waiting).
func noEvents(t *testing.T, events <-chan sessionEvent, why string) {
	t.Helper()
	for {
		select {
		case ev := <-events:
			t.Errorf("%s, but saw: %v", why, ev)
		default:
			return
		}
	}
}

// A static member that crashes and comes back with the same instance id
// within the session timeout takes its old place: same partitions, same
// generation, and the other member's session goes on untouched.
func TestStaticMemberRestartKeepsAssignment(t *testing.T) {
	t.Parallel()
	addr := startBroker(t)
	const topic, groupID = "static-restart", "static-restart-group"
	createTopic(t, addr, topic, 4)

	events := make(chan sessionEvent, 64)
	startMember(t, addr, groupID, topic, "a", true, events, nil)
	settle(t, events, 4, "a")
	b := startMember(t, addr, groupID, topic, "b", true, events, nil)
	stable := settle(t, events, 2, "a", "b")
	t.Logf("stable: %v, %v", stable["a"], stable["b"])

	// sarama's Close sends no LeaveGroup for a static member (consumerGroup.leave:
	// "as per KIP-345 if groupInstanceId is set ... do not leave group when
	// consumer closed, just clear memberID"), so this is a crash as far as the
	// coordinator can tell: it only stops hearing from b.
	b.close(t)
	ev, _ := waitEvent(t, events, waitFor, "cleanup of b", func(ev sessionEvent) bool { return ev.member == "b" && !ev.setup })
	if ev.generation != stable["b"].generation {
		t.Fatalf("b's closing session was generation %d, want %d", ev.generation, stable["b"].generation)
	}

	startMember(t, addr, groupID, topic, "b", true, events, nil) // well within the 6s session
	back, skipped := waitEvent(t, events, waitFor, "setup of the restarted b", func(ev sessionEvent) bool { return ev.member == "b" && ev.setup })
	for _, ev := range skipped {
		t.Errorf("a's session was disturbed by b's restart: %v", ev)
	}
	if back.generation != stable["b"].generation {
		t.Errorf("restarted b is in generation %d, want %d (a static rejoin must not rebalance)", back.generation, stable["b"].generation)
	}
	if !slices.Equal(back.claims, stable["b"].claims) {
		t.Errorf("restarted b got partitions %v, want its old %v", back.claims, stable["b"].claims)
	}
	if back.memberID == stable["b"].memberID {
		t.Errorf("restarted b kept member id %s; the coordinator should have issued a new one", back.memberID)
	}
	noEvents(t, events, "a's session must not end when b comes back")
}

// A second live client with the same instance id takes the first one's
// place. What happens, step by step (Kafka's GroupMetadataManager does the
// same):
//   - c's JoinGroup (no member id, instance id "dup") finds the group Stable
//     with the same protocols: c replaces a's member id, gets a's assignment
//     and the current generation, and no rebalance starts;
//   - a's next Heartbeat names the old member id with instance id "dup":
//     FENCED_INSTANCE_ID. sarama's heartbeat loop reports it on the group's
//     Errors channel and ends a's session (Cleanup);
//   - a's next Consume rejoins with its old member id and gets
//     FENCED_INSTANCE_ID from JoinGroup, which Consume returns.
func TestStaticMemberFencedByDuplicateInstance(t *testing.T) {
	t.Parallel()
	addr := startBroker(t)
	const topic, groupID = "static-dup", "static-dup-group"
	createTopic(t, addr, topic, 4)

	events := make(chan sessionEvent, 64)
	a := startMember(t, addr, groupID, topic, "dup", true, events, nil)
	first := settle(t, events, 4, "dup")["dup"]

	// The same instance id, a different client: events are told apart by
	// member id.
	startMember(t, addr, groupID, topic, "dup", true, events, nil)
	ev, skipped := waitEvent(t, events, waitFor, "setup of the second client", func(ev sessionEvent) bool {
		return ev.setup && ev.memberID != first.memberID
	})
	if ev.generation != first.generation || len(ev.claims) != 4 {
		t.Errorf("second client: generation %d with %v, want generation %d with all 4 partitions (no rebalance)", ev.generation, ev.claims, first.generation)
	}

	select {
	case err := <-a.errs:
		if !errors.Is(err, sarama.ErrFencedInstancedId) {
			t.Errorf("first client's Errors channel: %v, want FENCED_INSTANCE_ID", err)
		}
	case <-time.After(waitFor):
		t.Fatalf("no error on the first client's Errors channel within %v", waitFor)
	}
	select {
	case <-a.done:
		if !errors.Is(a.err, sarama.ErrFencedInstancedId) {
			t.Errorf("first client's Consume returned %v, want FENCED_INSTANCE_ID", a.err)
		}
	case <-time.After(waitFor):
		t.Fatalf("first client's Consume did not return within %v", waitFor)
	}
	if !slices.ContainsFunc(append(skipped, drain(events)...), func(ev sessionEvent) bool {
		return ev.memberID == first.memberID && !ev.setup
	}) {
		t.Error("the fenced client's session did not end (no Cleanup)")
	}
}

func drain(events <-chan sessionEvent) []sessionEvent {
	var out []sessionEvent
	for {
		select {
		case ev := <-events:
			out = append(out, ev)
		default:
			return out
		}
	}
}

func produce(t *testing.T, addr, topic, prefix string, n int) {
	t.Helper()
	p, err := sarama.NewSyncProducer([]string{addr}, newConfig(""))
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	defer p.Close()
	msgs := make([]*sarama.ProducerMessage, n)
	for i := range msgs {
		msgs[i] = &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.StringEncoder(fmt.Sprintf("%s-%d", prefix, i))}
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatalf("produce %d records: %v", n, err)
	}
}

// consumeN reads n records from records, failing on a duplicate (partition,
// offset) or at the deadline; it returns the values by count.
func consumeN(t *testing.T, records <-chan record, n int) map[string]int {
	t.Helper()
	seen := make(map[[2]int64]bool, n)
	values := make(map[string]int, n)
	deadline := time.After(waitFor)
	for len(seen) < n {
		select {
		case r := <-records:
			at := [2]int64{int64(r.partition), r.offset}
			if seen[at] {
				t.Fatalf("record %d@%d (%s) consumed twice", r.partition, r.offset, r.value)
			}
			seen[at] = true
			values[r.value]++
		case <-deadline:
			t.Fatalf("only %d of %d records consumed within %v", len(seen), n, waitFor)
		}
	}
	return values
}

// Records produced with acks=all reach the group once each; offsets marked
// by the members are committed, and after the members leave (LeaveGroup: they
// are dynamic) a new member resumes from the committed offsets.
func TestCommittedOffsetsResumeAfterLeave(t *testing.T) {
	t.Parallel()
	addr := startBroker(t)
	const topic, groupID = "commits", "commits-group"
	const partitions, first, second = 4, 200, 40
	createTopic(t, addr, topic, partitions)

	events := make(chan sessionEvent, 64)
	records := make(chan record, first+second)
	m1 := startMember(t, addr, groupID, topic, "m1", false, events, records)
	m2 := startMember(t, addr, groupID, topic, "m2", false, events, records)
	// Produce only once the group is stable, so no rebalance can hand a
	// partition over before its offsets are committed.
	settle(t, events, 2, "m1", "m2")

	produce(t, addr, topic, "first", first)
	values := consumeN(t, records, first)
	for i := range first {
		if v := fmt.Sprintf("first-%d", i); values[v] != 1 {
			t.Errorf("%s consumed %d times, want once", v, values[v])
		}
	}

	// Close commits what was marked, then sends LeaveGroup.
	m1.close(t)
	m2.close(t)

	client, err := sarama.NewClient([]string{addr}, newConfig(""))
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatalf("admin: %v", err)
	}
	committed, err := admin.ListConsumerGroupOffsets(groupID, nil)
	if err != nil {
		t.Fatalf("list group offsets: %v", err)
	}
	for p := range int32(partitions) {
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatalf("end offset of %d: %v", p, err)
		}
		b := committed.GetBlock(topic, p)
		if b == nil || b.Err != sarama.ErrNoError || b.Offset != end {
			t.Errorf("partition %d: committed %+v, want offset %d", p, b, end)
		}
	}
	groups, err := admin.DescribeConsumerGroups([]string{groupID})
	if err != nil || len(groups) != 1 {
		t.Fatalf("describe group: %v %v", groups, err)
	}
	if g := groups[0]; g.State != "Empty" || len(g.Members) != 0 {
		t.Errorf("after both left: state %s with %d members, want Empty with none", g.State, len(g.Members))
	}

	produce(t, addr, topic, "second", second)
	startMember(t, addr, groupID, topic, "m3", false, events, records)
	values = consumeN(t, records, second)
	for v, n := range values {
		if n != 1 || len(v) < 7 || v[:7] != "second-" {
			t.Errorf("new member consumed %s %d times: it should resume after the committed offsets", v, n)
		}
	}
}
