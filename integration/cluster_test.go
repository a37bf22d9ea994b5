package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A 3-node cluster replicates every acknowledged record to the ISR: with
// the leader stopped the others take over at a new epoch and still hold
// everything; with a node down min.insync.replicas=3 refuses acks=all; the
// stopped node comes back, catches up and rejoins the ISR.
func TestClusterReplicationAndFailover(t *testing.T) {
	c := startCluster(t, 3, nil)
	adm := kadm.NewClient(c.client(t))
	const topic = "replicated"
	minISR := "2"
	resp, err := adm.CreateTopic(ctx(t), 3, 3, map[string]*string{"min.insync.replicas": &minISR}, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create topic: %v / %v", err, resp.Err)
	}
	three := "3"
	resp, err = adm.CreateTopic(ctx(t), 1, 3, map[string]*string{"min.insync.replicas": &three}, "strict")
	if err != nil || resp.Err != nil {
		t.Fatalf("create topic: %v / %v", err, resp.Err)
	}
	prod := c.client(t, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(1000))
	produceRange := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			produceSync(t, prod, &kgo.Record{Key: []byte{byte(i % 3)}, Value: value(i)})
		}
	}
	produceRange(0, 300)
	waitISR(t, adm, topic, 3)

	leader := partitionLeader(t, adm, topic, 0)
	epoch := partitionEpoch(t, adm, topic, 0)
	c.stop(t, leader)
	adm = kadm.NewClient(c.clientExcept(t, leader))
	if l := partitionLeader(t, adm, topic, 0); l == leader || l < 0 {
		t.Fatalf("partition 0 still led by %d after its leader stopped", l)
	}
	if e := partitionEpoch(t, adm, topic, 0); e <= epoch {
		t.Fatalf("leader epoch %d after failover, was %d", e, epoch)
	}
	produceRange(300, 600)

	// One of three down: a topic asking for three in-sync replicas refuses
	// acks=all, while the quorum (two of three) still serves metadata.
	short := c.clientExcept(t, leader, kgo.DefaultProduceTopic("strict"), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(1))
	err = short.ProduceSync(ctx(t), &kgo.Record{Value: []byte("refused")}).FirstErr()
	if !errors.Is(err, kerr.NotEnoughReplicas) {
		t.Fatalf("acks=all with two live replicas of min.insync.replicas=3: got %v, want NOT_ENOUGH_REPLICAS", err)
	}

	c.restart(t, leader)
	adm = kadm.NewClient(c.client(t))
	waitISR(t, adm, topic, 3)
	waitISR(t, adm, "strict", 3)
	produceSync(t, c.client(t, kgo.DefaultProduceTopic("strict"), kgo.RequiredAcks(kgo.AllISRAcks())), &kgo.Record{Value: []byte("accepted")})
	produceRange(600, 900)

	got := consumeCluster(t, c, topic, 900)
	seen := map[string]bool{}
	for _, r := range got {
		if seen[string(r.Value)] {
			t.Fatalf("record %s consumed twice", r.Value)
		}
		seen[string(r.Value)] = true
	}
	for i := range 900 {
		if !seen[string(value(i))] {
			t.Fatalf("acknowledged record %s lost", value(i))
		}
	}
}

// clientExcept is client seeded with every node but the stopped ones.
func (c *testCluster) clientExcept(t testing.TB, stopped ...any) *kgo.Client {
	t.Helper()
	var seeds []string
	var opts []kgo.Opt
	skip := map[int32]bool{}
	for _, s := range stopped {
		switch v := s.(type) {
		case int32:
			skip[v] = true
		case kgo.Opt:
			opts = append(opts, v)
		}
	}
	for i, addr := range c.seeds() {
		if !skip[int32(i+1)] {
			seeds = append(seeds, addr)
		}
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.MetadataMinAge(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// partitionLeader waits until the partition has a leader and returns it.
func partitionLeader(t testing.TB, adm *kadm.Client, topic string, p int32) int32 {
	t.Helper()
	var last int32 = -1
	waitUntil(t, 15*time.Second, func() bool {
		td, err := adm.ListTopics(context.Background(), topic)
		if err != nil || td[topic].Err != nil {
			return false
		}
		pd := td[topic].Partitions[p]
		last = pd.Leader
		return pd.Err == nil && pd.Leader >= 0
	})
	return last
}

func partitionEpoch(t testing.TB, adm *kadm.Client, topic string, p int32) int32 {
	t.Helper()
	td, err := adm.ListTopics(ctx(t), topic)
	if err != nil || td[topic].Err != nil {
		t.Fatalf("metadata: %v %v", err, td[topic].Err)
	}
	return td[topic].Partitions[p].LeaderEpoch
}

// waitISR waits until every partition of topic has n in-sync replicas.
func waitISR(t testing.TB, adm *kadm.Client, topic string, n int) {
	t.Helper()
	waitUntil(t, 30*time.Second, func() bool {
		td, err := adm.ListTopics(context.Background(), topic)
		if err != nil || td[topic].Err != nil {
			return false
		}
		for _, pd := range td[topic].Partitions {
			if len(pd.ISR) != n {
				return false
			}
		}
		return true
	})
}

func waitUntil(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// consumeCluster reads n records of topic from the start.
func consumeCluster(t testing.TB, c *testCluster, topic string, n int) []*kgo.Record {
	t.Helper()
	return consumeClusterOpts(t, c, topic, n)
}

// consumeClusterOpts is consumeCluster with more client options.
func consumeClusterOpts(t testing.TB, c *testCluster, topic string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl := c.client(t, append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	cctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(cctx)
		if cctx.Err() != nil {
			t.Fatalf("consumed %d of %d records", len(out), n)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// Transactions and a consumer group on a 3-node cluster: an exactly-once
// copy (GroupTransactSession) from one topic to another, whose partitions
// are led by different brokers than the coordinator, so markers and
// transaction verification cross brokers; one transaction is aborted on
// purpose. The output, read_committed, holds every input record once.
func TestClusterTransactionsAndGroups(t *testing.T) {
	c := startCluster(t, 3, nil)
	adm := kadm.NewClient(c.client(t))
	for _, topic := range []string{"eos-in", "eos-out"} {
		if resp, err := adm.CreateTopic(ctx(t), 3, 3, nil, topic); err != nil || resp.Err != nil {
			t.Fatalf("create %s: %v / %v", topic, err, resp.Err)
		}
	}
	const n = 600
	in := c.client(t, kgo.DefaultProduceTopic("eos-in"), kgo.RequiredAcks(kgo.AllISRAcks()))
	for i := range n {
		in.Produce(ctx(t), &kgo.Record{Value: value(i)}, nil)
	}
	if err := in.Flush(ctx(t)); err != nil {
		t.Fatal(err)
	}

	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(c.seeds()...), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.TransactionalID("cluster-eos"), kgo.ConsumerGroup("cluster-eos"), kgo.ConsumeTopics("eos-in"),
		kgo.DefaultProduceTopic("eos-out"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RequireStableFetchOffsets())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	copied, aborted := 0, false
	deadline := time.Now().Add(60 * time.Second)
	for copied < n && time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := sess.PollRecords(pctx, 100)
		cancel()
		if fs.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) { sess.Produce(ctx(t), &kgo.Record{Value: r.Value}, nil) })
		abort := !aborted && copied > n/3
		how := kgo.TryCommit
		if abort {
			how, aborted = kgo.TryAbort, true
		}
		committed, err := sess.End(ctx(t), how)
		if err != nil {
			t.Fatalf("end transaction: %v", err)
		}
		if committed {
			copied += fs.NumRecords()
		}
	}
	if !aborted || copied != n {
		t.Fatalf("copied %d of %d records (aborted once: %v)", copied, n, aborted)
	}
	out := consumeClusterOpts(t, c, "eos-out", n, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	seen := map[string]int{}
	for _, r := range out {
		seen[string(r.Value)]++
	}
	for i := range n {
		if seen[string(value(i))] != 1 {
			t.Fatalf("record %s is in the output %d times, want once", value(i), seen[string(value(i))])
		}
	}
}
