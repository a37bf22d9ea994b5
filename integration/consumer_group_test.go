package integration

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kip848Props are broker settings that make KIP-848 groups quick enough to
// test: heartbeats every 100ms, sessions of 3s.
var kip848Props = map[string]string{
	"group.consumer.min.heartbeat.interval.ms": "50",
	"group.consumer.heartbeat.interval.ms":     "100",
	"group.consumer.min.session.timeout.ms":    "1000",
	"group.consumer.session.timeout.ms":        "3000",
}

// member848 is one member of a KIP-848 group in a test: it polls,
// records what it sees, and commits each poll before the next, with
// rebalances held between polls so that a revoked partition's offsets are
// committed before another member gets it.
type member848 struct {
	cl   *kgo.Client
	stop chan struct{}
	done chan struct{}
}

// seenRecords counts how often each value was consumed, across members.
type seenRecords struct {
	mu   sync.Mutex
	seen map[string]int
}

func (s *seenRecords) add(rs []*kgo.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rs {
		s.seen[string(r.Value)]++
	}
}

func (s *seenRecords) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

func start848Member(t *testing.T, b *testBroker, group, topic string, seen *seenRecords, opts ...kgo.Opt) *member848 {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(b.Addr()),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ServerSideBalancer(), // with the default cooperative-sticky balancer: KIP-848 "uniform"
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(200 * time.Millisecond),
	}, opts...)...)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	m848 := &member848{cl: cl, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m848.done)
		defer cl.Close()
		for {
			select {
			case <-m848.stop:
				return
			default:
			}
			pctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			fs := cl.PollFetches(pctx)
			cancel()
			rs := fs.Records()
			if len(rs) > 0 {
				seen.add(rs)
				cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if err := cl.CommitRecords(cctx, rs...); err != nil {
					t.Errorf("commit: %v", err)
				}
				cancel()
			}
			cl.AllowRebalance()
		}
	}()
	t.Cleanup(m848.close)
	return m848
}

// close stops the member after its current poll is committed; it leaves
// the group.
func (c *member848) close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}

// waitFor polls cond until it holds or the test's context ends.
func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	c := ctx(t)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		select {
		case <-c.Done():
			t.Fatalf("waiting for %s: %v", what, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// describe848 describes one consumer group.
func describe848(t *testing.T, adm *kadm.Client, group string) kadm.DescribedConsumerGroup {
	t.Helper()
	ds, err := adm.DescribeConsumerGroups(ctx(t), group)
	if err != nil {
		t.Fatalf("describe %s: %v", group, err)
	}
	return ds[group]
}

// stableWith checks that a group is Stable with n members that each own
// at least one partition, and that together own total partitions once.
func stableWith(d kadm.DescribedConsumerGroup, n, total int) error {
	if d.Err != nil {
		return d.Err
	}
	if d.State != "Stable" || len(d.Members) != n {
		return fmt.Errorf("state %s with %d members, want Stable with %d", d.State, len(d.Members), n)
	}
	owned := make(map[string]bool)
	for _, m := range d.Members {
		count := 0
		for topic, ps := range m.Assignment {
			for p := range ps {
				key := fmt.Sprintf("%s/%d", topic, p)
				if owned[key] {
					return fmt.Errorf("%s assigned twice", key)
				}
				owned[key] = true
				count++
			}
		}
		if count == 0 {
			return fmt.Errorf("member %s owns nothing", m.MemberID)
		}
	}
	if len(owned) != total {
		return fmt.Errorf("%d partitions assigned, want %d", len(owned), total)
	}
	return nil
}

func produceValues(t *testing.T, cl *kgo.Client, topic string, from, to int) {
	t.Helper()
	var rs []*kgo.Record
	for i := from; i < to; i++ {
		rs = append(rs, &kgo.Record{Topic: topic, Value: value(i)})
	}
	produceSync(t, cl, rs...)
}

// TestConsumerGroup848SharesPartitions runs three KIP-848 members that join
// and leave while records arrive: together they see every record exactly
// once, and the group assigns every partition to exactly one member.
func TestConsumerGroup848SharesPartitions(t *testing.T) {
	t.Parallel()
	b := startBroker(t, kip848Props)
	adm := b.admin(t)
	const topic, group, partitions = "kip848-share", "g848-share", 6
	createTopic(t, adm, topic, partitions, nil)
	producer := b.client(t, kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	seen := &seenRecords{seen: make(map[string]int)}

	// Membership changes between batches, once every record so far is
	// committed: franz-go (before KIP-1251, Kafka 4.3) cannot retry a
	// commit that races a revocation with STALE_MEMBER_EPOCH, so a
	// change while commits are in flight may replay records.
	allSeen := func(n int) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d records seen and committed", n), func() error {
			if got := seen.distinct(); got < n {
				return fmt.Errorf("%d of %d seen", got, n)
			}
			offs, err := adm.FetchOffsets(ctx(t), group)
			if err != nil {
				return err
			}
			var committed int64
			offs.Each(func(o kadm.OffsetResponse) { committed += o.At })
			if committed != int64(n) {
				return fmt.Errorf("%d of %d committed", committed, n)
			}
			return nil
		})
	}
	c1 := start848Member(t, b, group, topic, seen)
	c2 := start848Member(t, b, group, topic, seen)
	waitFor(t, "two stable members", func() error { return stableWith(describe848(t, adm, group), 2, partitions) })
	produceValues(t, producer, topic, 0, 300)
	allSeen(300)

	c3 := start848Member(t, b, group, topic, seen)
	waitFor(t, "three stable members", func() error { return stableWith(describe848(t, adm, group), 3, partitions) })
	produceValues(t, producer, topic, 300, 600)
	allSeen(600)

	c1.close() // leaves; its partitions go to the others, from its commits
	waitFor(t, "two stable members after a leave", func() error { return stableWith(describe848(t, adm, group), 2, partitions) })
	produceValues(t, producer, topic, 600, 900)
	allSeen(900)
	c2.close()
	c3.close()

	seen.mu.Lock()
	defer seen.mu.Unlock()
	for i := range 900 {
		if n := seen.seen[string(value(i))]; n != 1 {
			t.Errorf("%s seen %d times", value(i), n)
		}
	}

	// The group is listed as a consumer group, now empty.
	listed, err := adm.ListGroups(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if lg, ok := listed[group]; !ok || lg.ProtocolType != "consumer" || lg.State != "Empty" {
		t.Errorf("ListGroups: %+v (listed: %v)", lg, ok)
	}

	// Each change above was awaited until the group was Stable again: the
	// first joins, c3 joining and c1 leaving are at least three completed
	// rebalances. The group is Empty now, so none completes mid-scrape.
	ms := scrape(t, b.HTTPAddr())
	ms.expectAtLeast(t, 3, "kbroker_group_rebalances_total", "group_type", "consumer")
	n, _ := ms.value("kbroker_group_rebalances_total", "group_type", "consumer")
	ms.expect(t, n, "kbroker_group_rebalance_seconds", "group_type", "consumer") // histogram: sample count
}

// TestConsumerGroup848StaticMemberRejoins restarts a static member within
// the session timeout: it gets its partitions back, the other member keeps
// its own, and the group epoch does not move.
func TestConsumerGroup848StaticMemberRejoins(t *testing.T) {
	t.Parallel()
	b := startBroker(t, kip848Props)
	adm := b.admin(t)
	const topic, group, partitions = "kip848-static", "g848-static", 4
	createTopic(t, adm, topic, partitions, nil)
	seen := &seenRecords{seen: make(map[string]int)}

	a := start848Member(t, b, group, topic, seen, kgo.InstanceID("a"))
	start848Member(t, b, group, topic, seen, kgo.InstanceID("b"))
	var before kadm.DescribedConsumerGroup
	waitFor(t, "two stable members", func() error {
		before = describe848(t, adm, group)
		return stableWith(before, 2, partitions)
	})
	byInstance := func(d kadm.DescribedConsumerGroup) map[string]kadm.TopicsSet {
		out := make(map[string]kadm.TopicsSet)
		for _, m := range d.Members {
			if m.InstanceID != nil {
				out[*m.InstanceID] = m.Assignment
			}
		}
		return out
	}
	want := byInstance(before)

	a.close() // a static leave: epoch -2, the assignment is kept
	d := describe848(t, adm, group)
	if len(d.Members) != 2 || d.Epoch != before.Epoch {
		t.Fatalf("after the static leave: %d members at epoch %d, want 2 at %d", len(d.Members), d.Epoch, before.Epoch)
	}
	start848Member(t, b, group, topic, seen, kgo.InstanceID("a"))
	var after kadm.DescribedConsumerGroup
	waitFor(t, "the static member back", func() error {
		after = describe848(t, adm, group)
		if err := stableWith(after, 2, partitions); err != nil {
			return err
		}
		for _, m := range after.Members {
			if *m.InstanceID == "a" && m.MemberID == memberOf(before, "a") {
				return errors.New("the old member of a is still there")
			}
		}
		return nil
	})
	got := byInstance(after)
	for _, inst := range []string{"a", "b"} {
		if !maps.EqualFunc(got[inst], want[inst], func(x, y map[int32]struct{}) bool { return maps.Equal(x, y) }) {
			t.Errorf("instance %s owns %v, owned %v before", inst, got[inst].Sorted(), want[inst].Sorted())
		}
	}
	if after.Epoch != before.Epoch {
		t.Errorf("group epoch moved from %d to %d: the rejoin rebalanced", before.Epoch, after.Epoch)
	}
}

func memberOf(d kadm.DescribedConsumerGroup, instance string) string {
	for _, m := range d.Members {
		if m.InstanceID != nil && *m.InstanceID == instance {
			return m.MemberID
		}
	}
	return ""
}

// TestConsumerGroup848OffsetsSurviveRestart commits offsets from a KIP-848
// group, restarts the broker, and resumes from them.
func TestConsumerGroup848OffsetsSurviveRestart(t *testing.T) {
	t.Parallel()
	b := startBroker(t, kip848Props)
	const topic, group, partitions = "kip848-restart", "g848-restart", 3
	createTopic(t, b.admin(t), topic, partitions, nil)
	produceValues(t, b.client(t), topic, 0, 90)
	seen := &seenRecords{seen: make(map[string]int)}
	c := start848Member(t, b, group, topic, seen)
	waitFor(t, "90 records", func() error {
		if n := seen.distinct(); n < 90 {
			return fmt.Errorf("%d of 90 seen", n)
		}
		return nil
	})
	c.close()

	b = b.restart(t)
	adm := b.admin(t)
	d := describe848(t, adm, group)
	if d.Err != nil || d.State != "Empty" {
		t.Fatalf("after restart: state %q, err %v", d.State, d.Err)
	}
	offs, err := adm.FetchOffsets(ctx(t), group)
	if err != nil {
		t.Fatal(err)
	}
	var committed int64
	offs.Each(func(o kadm.OffsetResponse) { committed += o.At })
	if committed != 90 {
		t.Fatalf("committed offsets sum to %d after restart, want 90", committed)
	}

	produceValues(t, b.client(t), topic, 90, 120)
	seen2 := &seenRecords{seen: make(map[string]int)}
	start848Member(t, b, group, topic, seen2)
	waitFor(t, "the 30 new records", func() error {
		if n := seen2.distinct(); n < 30 {
			return fmt.Errorf("%d of 30 seen", n)
		}
		return nil
	})
	seen2.mu.Lock()
	defer seen2.mu.Unlock()
	for v := range seen2.seen {
		if !slices.Contains(newValues(90, 120), v) {
			t.Errorf("consumed %s again after the restart", v)
		}
	}
}

func newValues(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, string(value(i)))
	}
	return out
}

// TestConsumerGroup848Disabled: without "consumer" in
// group.coordinator.rebalance.protocols the broker does not advertise
// KIP-848 and kgo falls back to the classic protocol.
func TestConsumerGroup848Disabled(t *testing.T) {
	t.Parallel()
	b := startBroker(t, map[string]string{"group.coordinator.rebalance.protocols": "classic", "group.initial.rebalance.delay.ms": "0"})
	adm := b.admin(t)
	const topic, group = "kip848-off", "g848-off"
	createTopic(t, adm, topic, 2, nil)
	produceValues(t, b.client(t), topic, 0, 10)
	seen := &seenRecords{seen: make(map[string]int)}
	start848Member(t, b, group, topic, seen)
	waitFor(t, "10 records", func() error {
		if n := seen.distinct(); n < 10 {
			return fmt.Errorf("%d of 10 seen", n)
		}
		return nil
	})
	listed, err := adm.ListGroups(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := listed[group]; !ok {
		t.Fatalf("group not listed: %v", listed)
	}
	// ConsumerGroupDescribe is not advertised, so kadm refuses to send it.
	if ds, err := adm.DescribeConsumerGroups(ctx(t), group); err == nil && ds[group].Err == nil {
		t.Errorf("ConsumerGroupDescribe with the consumer protocol disabled: no error")
	}
}
