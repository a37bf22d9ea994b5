package integration

import (
	"context"
	"errors"
	"fmt"
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
