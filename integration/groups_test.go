package integration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// groupProps makes groups quick to form and to notice a dead member, within
// the bounds Kafka allows.
var groupProps = map[string]string{
	"group.initial.rebalance.delay.ms": "0",
	"group.min.session.timeout.ms":     "1000",
}

// groupConsumer is a kgo group member that records what it consumed and
// commits what it processed.
type groupConsumer struct {
	cl   *kgo.Client
	name string

	mu       sync.Mutex
	seen     map[string]int // value → times consumed
	assigned map[int32]bool
	lost     int // partitions taken away (revoked or lost)
}

func newGroupConsumer(t *testing.T, addr, group, topic, name string, opts ...kgo.Opt) *groupConsumer {
	t.Helper()
	gcs := &groupConsumer{name: name, seen: make(map[string]int), assigned: make(map[int32]bool)}
	base := []kgo.Opt{
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(3 * time.Second), kgo.HeartbeatInterval(300 * time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			gcs.mu.Lock()
			defer gcs.mu.Unlock()
			for _, p := range m[topic] {
				gcs.assigned[p] = true
			}
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
			cl.CommitMarkedOffsets(ctx)
			gcs.drop(m[topic])
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { gcs.drop(m[topic]) }),
		kgo.BlockRebalanceOnPoll(),
		kgo.AutoCommitMarks(),
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(addr)}, base...), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	gcs.cl = cl
	return gcs
}

func (g *groupConsumer) drop(ps []int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range ps {
		if g.assigned[p] {
			delete(g.assigned, p)
			g.lost++
		}
	}
}

// poll consumes one round, marks and commits what it got, and returns
// the number of records.
func (g *groupConsumer) poll(t *testing.T, ctx context.Context) int {
	pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	fs := g.cl.PollFetches(pctx)
	defer g.cl.AllowRebalance()
	fs.EachError(func(topic string, p int32, err error) {
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			t.Errorf("%s: fetch %s/%d: %v", g.name, topic, p, err)
		}
	})
	n := 0
	fs.EachRecord(func(r *kgo.Record) {
		g.mu.Lock()
		g.seen[string(r.Value)]++
		g.mu.Unlock()
		g.cl.MarkCommitRecords(r)
		n++
	})
	if n > 0 {
		if err := g.cl.CommitMarkedOffsets(ctx); err != nil && !errors.Is(err, kerr.RebalanceInProgress) {
			t.Logf("%s: commit: %v", g.name, err)
		}
	}
	return n
}

// Three members share a topic; one leaves and another joins midway. With
// commits on revoke, every record is consumed exactly once across them.
func TestGroupSharesTopicExactlyOnce(t *testing.T) {
	b := startBroker(t, groupProps)
	adm := b.admin(t)
	const topic, group, total = "orders", "billing", 3000
	createTopic(t, adm, topic, 6, nil)
	producer := b.client(t, kgo.DefaultProduceTopic(topic))
	produce := func(from, to int) {
		var rs []*kgo.Record
		for i := from; i < to; i++ {
			rs = append(rs, &kgo.Record{Value: value(i)})
		}
		produceSync(t, producer, rs...)
	}
	produce(0, total/2)

	c := ctx(t)
	members := []*groupConsumer{
		newGroupConsumer(t, b.Addr(), group, topic, "a"),
		newGroupConsumer(t, b.Addr(), group, topic, "b"),
	}
	defer func() {
		for _, m := range members {
			m.cl.Close()
		}
	}()
	count := func() (int, map[string]int) {
		all := make(map[string]int)
		for _, m := range members {
			m.mu.Lock()
			for v, n := range m.seen {
				all[v] += n
			}
			m.mu.Unlock()
		}
		return len(all), all
	}
	var wg sync.WaitGroup
	run := func(m *groupConsumer, stop <-chan struct{}) <-chan struct{} {
		done := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if c.Err() != nil {
					return
				}
				m.poll(t, c)
			}
		}()
		return done
	}
	stopA, stopB := make(chan struct{}), make(chan struct{})
	run(members[0], stopA)
	doneB := run(members[1], stopB)

	for n, _ := count(); n < total/4; n, _ = count() {
		if c.Err() != nil {
			t.Fatalf("consumed %d of %d before a member left", n, total/4)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// b leaves cleanly (commits on revoke); c joins.
	close(stopB)
	<-doneB
	members[1].cl.Close()
	members = append(members, newGroupConsumer(t, b.Addr(), group, topic, "c"))
	stopC := make(chan struct{})
	run(members[2], stopC)
	produce(total/2, total)

	for n, _ := count(); n < total; n, _ = count() {
		if c.Err() != nil {
			t.Fatalf("consumed %d of %d", n, total)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stopA)
	close(stopC)
	wg.Wait()
	_, all := count()
	for i := 0; i < total; i++ {
		if n := all[string(value(i))]; n != 1 {
			t.Errorf("%s consumed %d times", value(i), n)
		}
	}

	// The committed offsets cover the whole topic.
	offs, err := adm.FetchOffsets(c, group)
	if err != nil {
		t.Fatal(err)
	}
	var committed int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Err != nil {
			t.Errorf("offset %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		committed += o.At
	})
	if committed != total {
		t.Errorf("committed offsets sum to %d, want %d", committed, total)
	}
	_ = fmt.Sprint
}

// assignedOf returns a member's current partitions, sorted.
func (g *groupConsumer) assignedOf() []int32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	var ps []int32
	for p := range g.assigned {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// pollUntil polls members (so kgo can rebalance) until cond holds.
func pollUntil(t *testing.T, what string, cond func() bool, members ...*groupConsumer) {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for !cond() {
		if c.Err() != nil {
			t.Fatalf("timed out waiting for %s", what)
		}
		for _, m := range members {
			m.poll(t, c)
		}
	}
}

// A static member (group.instance.id) that restarts within the session
// timeout gets its partitions back with no rebalance: the generation does
// not move and the other member never gives anything up (KIP-345).
func TestStaticMemberRestartDoesNotRebalance(t *testing.T) {
	b := startBroker(t, groupProps)
	adm := b.admin(t)
	const topic, group = "static-topic", "static-group"
	createTopic(t, adm, topic, 4, nil)
	static := func(id string) *groupConsumer {
		m := newGroupConsumer(t, b.Addr(), group, topic, id, kgo.InstanceID(id), kgo.SessionTimeout(6*time.Second))
		t.Cleanup(m.cl.Close)
		return m
	}
	// a joins first and leads. The restarted member is a follower: a
	// restarted leader is told to skip assignment (KIP-814), and kgo then
	// rebalances on purpose whenever its own plan differs from the old one.
	a := static("a")
	pollUntil(t, "the first member assigned", func() bool { return len(a.assignedOf()) == 4 }, a)
	bm := static("b")
	// Settled: both own their share in the same generation and the group
	// is Stable (cooperative-sticky takes two rebalances to get there).
	pollUntil(t, "both members assigned", func() bool {
		_, genA := a.cl.GroupMetadata()
		_, genB := bm.cl.GroupMetadata()
		if len(a.assignedOf()) != 2 || len(bm.assignedOf()) != 2 || genA != genB {
			return false
		}
		d, err := adm.DescribeGroups(ctx(t), group)
		return err == nil && d[group].State == "Stable"
	}, a, bm)
	_, gen := a.cl.GroupMetadata()
	aParts, bParts := a.assignedOf(), bm.assignedOf()
	a.mu.Lock()
	lostBefore := a.lost
	a.mu.Unlock()

	bm.cl.Close() // a static member's Close does not leave the group
	b2 := static("b")
	pollUntil(t, "the restarted member assigned", func() bool { return len(b2.assignedOf()) == 2 }, a, b2)

	if _, gen2 := b2.cl.GroupMetadata(); gen2 != gen {
		t.Errorf("restarted static member is in generation %d, want %d (no rebalance)", gen2, gen)
	}
	if _, genA := a.cl.GroupMetadata(); genA != gen {
		t.Errorf("other member moved to generation %d, want %d", genA, gen)
	}
	if got := b2.assignedOf(); !slices.Equal(got, bParts) {
		t.Errorf("restarted member got %v, had %v", got, bParts)
	}
	a.mu.Lock()
	lost := a.lost - lostBefore
	a.mu.Unlock()
	if got := a.assignedOf(); !slices.Equal(got, aParts) || lost != 0 {
		t.Errorf("other member has %v (had %v), gave up %d partitions", got, aParts, lost)
	}

	described, err := adm.DescribeGroups(ctx(t), group)
	if err != nil {
		t.Fatal(err)
	}
	dg := described[group]
	var instances []string
	for _, m := range dg.Members {
		if m.InstanceID != nil {
			instances = append(instances, *m.InstanceID)
		}
	}
	slices.Sort(instances)
	if dg.State != "Stable" || !slices.Equal(instances, []string{"a", "b"}) {
		t.Errorf("described group: state %s, instance ids %v", dg.State, instances)
	}
}

// A second live client with the instance id of a live member takes over
// its place, and the first is fenced with FENCED_INSTANCE_ID.
func TestStaticMemberDuplicateIsFenced(t *testing.T) {
	b := startBroker(t, groupProps)
	const topic, group = "fence-topic", "fence-group"
	createTopic(t, b.admin(t), topic, 2, nil)
	first := newGroupConsumer(t, b.Addr(), group, topic, "first", kgo.InstanceID("dup"))
	t.Cleanup(first.cl.Close)
	pollUntil(t, "first member assigned", func() bool { return len(first.assignedOf()) == 2 }, first)

	second := newGroupConsumer(t, b.Addr(), group, topic, "second", kgo.InstanceID("dup"))
	t.Cleanup(second.cl.Close)
	pollUntil(t, "second member assigned", func() bool { return len(second.assignedOf()) == 2 }, second)

	c := ctx(t)
	for {
		pctx, cancel := context.WithTimeout(c, 200*time.Millisecond)
		fs := first.cl.PollFetches(pctx)
		cancel()
		first.cl.AllowRebalance()
		fenced := false
		fs.EachError(func(_ string, _ int32, err error) {
			fenced = fenced || errors.Is(err, kerr.FencedInstanceID)
		})
		if fenced {
			return
		}
		if c.Err() != nil {
			t.Fatal("the first member with the duplicated instance id was never fenced")
		}
	}
}

// Committed offsets and groups outlive a broker restart.
func TestGroupOffsetsSurviveRestart(t *testing.T) {
	b := startBroker(t, groupProps)
	adm := b.admin(t)
	createTopic(t, adm, "t1", 3, nil)
	offsets := kadm.Offsets{}
	offsets.Add(kadm.Offset{Topic: "t1", Partition: 0, At: 10, LeaderEpoch: 0, Metadata: "m0"})
	offsets.Add(kadm.Offset{Topic: "t1", Partition: 2, At: 42, LeaderEpoch: -1})
	resp, err := adm.CommitOffsets(ctx(t), "keep", offsets)
	if err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v / %v", err, resp.Error())
	}

	b = b.restart(t)
	adm = b.admin(t)
	got, err := adm.FetchOffsets(ctx(t), "keep")
	if err != nil || got.Error() != nil {
		t.Fatalf("fetch: %v / %v", err, got.Error())
	}
	if o, _ := got.Lookup("t1", 0); o.At != 10 || o.Metadata != "m0" || o.LeaderEpoch != 0 {
		t.Errorf("t1/0 after restart: %+v", o.Offset)
	}
	if o, _ := got.Lookup("t1", 2); o.At != 42 {
		t.Errorf("t1/2 after restart: %+v", o.Offset)
	}
	if o, ok := got.Lookup("t1", 1); ok && o.At != -1 {
		t.Errorf("t1/1 was never committed but reads %+v", o.Offset)
	}
	listed, err := adm.ListGroups(ctx(t))
	if err != nil || !slices.Contains(listed.Groups(), "keep") {
		t.Errorf("groups after restart: %v (%v)", listed.Groups(), err)
	}
}

// A group's members outlive a broker restart: the coordinator reloads the
// group Stable, and members carry on in their generation without
// rejoining.
func TestGroupMembersSurviveBrokerRestart(t *testing.T) {
	b := startBroker(t, groupProps)
	const topic, group = "restart-topic", "restart-group"
	createTopic(t, b.admin(t), topic, 4, nil)
	a := newGroupConsumer(t, b.Addr(), group, topic, "a", kgo.InstanceID("a"))
	c := newGroupConsumer(t, b.Addr(), group, topic, "c", kgo.InstanceID("c"))
	t.Cleanup(a.cl.Close)
	t.Cleanup(c.cl.Close)
	pollUntil(t, "both members assigned", func() bool {
		_, genA := a.cl.GroupMetadata()
		_, genC := c.cl.GroupMetadata()
		return len(a.assignedOf()) == 2 && len(c.assignedOf()) == 2 && genA == genC
	}, a, c)
	memberA, gen := a.cl.GroupMetadata()
	lostBefore := a.lost + c.lost

	b = b.restartSamePort(t)
	produceSync(t, b.client(t, kgo.DefaultProduceTopic(topic)), &kgo.Record{Value: []byte("after restart")})
	pollUntil(t, "the record produced after the restart", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		c.mu.Lock()
		defer c.mu.Unlock()
		return a.seen["after restart"]+c.seen["after restart"] == 1
	}, a, c)
	if id, gen2 := a.cl.GroupMetadata(); id != memberA || gen2 != gen {
		t.Errorf("after the broker restart member a is %s in generation %d, was %s in %d", id, gen2, memberA, gen)
	}
	if lost := a.lost + c.lost - lostBefore; lost != 0 {
		t.Errorf("members gave up %d partitions across the restart", lost)
	}
}
