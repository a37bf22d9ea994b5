package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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
	// A new leader at a newer epoch; every node's metadata follows soon.
	waitUntil(t, 10*time.Second, func() bool {
		td, err := adm.ListTopics(context.Background(), topic)
		if err != nil || td[topic].Err != nil {
			return false
		}
		p := td[topic].Partitions[0]
		return p.Leader >= 0 && p.Leader != leader && p.LeaderEpoch > epoch
	})
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

// The next transaction's first produce to a partition led by another
// broker than the coordinator comes while the previous transaction's
// markers may still be written: the leader retries its verification for a
// while (add.partitions.to.txn.retry.backoff.max.ms) as Kafka's does,
// rather than answer a retriable error. Each transaction costs one Produce.
// Whether the markers are still on their way is a race between brokers:
// without the retry this failed in about half of the runs.
func TestClusterNextTransactionWaitsForMarkers(t *testing.T) {
	c := startCluster(t, 3, nil)
	adm := kadm.NewClient(c.client(t))
	if resp, err := adm.CreateTopic(ctx(t), 3, 3, nil, "txn-next"); err != nil || resp.Err != nil {
		t.Fatalf("create: %v / %v", err, resp.Err)
	}
	var coordinator int32 = -1
	waitUntil(t, 30*time.Second, func() bool {
		for _, r := range adm.FindTxnCoordinators(context.Background(), "next") {
			if r.Err == nil {
				coordinator = r.NodeID
			}
		}
		return coordinator >= 0
	})
	p := int32(0)
	for partitionLeader(t, adm, "txn-next", p) == coordinator {
		p++
	}
	produces := &requestCounter{key: 0}
	cl := c.client(t, kgo.TransactionalID("next"), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.WithHooks(produces))
	const n = 20
	for i := range n {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx(t), &kgo.Record{Topic: "txn-next", Partition: p, Value: value(i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(ctx(t), kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	if got := produces.n.Load(); got != n {
		t.Errorf("%d Produce requests for %d one-record transactions: some were retried", got, n)
	}
}

// With the ISR down to a leader that then stops, a partition stays offline
// rather than elect a replica that may lack acknowledged records
// (unclean.leader.election.enable=false, Kafka's default); a topic that
// allows unclean election gets the out-of-sync replica as leader when it
// is the only live one.
func TestClusterUncleanLeaderElection(t *testing.T) {
	c := startCluster(t, 3, nil)
	adm := kadm.NewClient(c.client(t))
	yes := "true"
	for topic, configs := range map[string]map[string]*string{"clean": nil, "unclean": {"unclean.leader.election.enable": &yes}} {
		// Two replicas on nodes 1 and 2, so node 3 keeps the quorum.
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
		a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		a.Partition, a.Replicas = 0, []int32{1, 2}
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
		for k, v := range configs {
			cfg := kmsg.NewCreateTopicsRequestTopicConfig()
			cfg.Name, cfg.Value = k, v
			rt.Configs = append(rt.Configs, cfg)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx(t), c.client(t))
		if err != nil || resp.Topics[0].ErrorCode != 0 {
			t.Fatalf("create %s: %v / %v", topic, err, resp)
		}
		waitISR(t, adm, topic, 2)
	}
	c.stop(t, 2) // the ISR shrinks to node 1
	adm = kadm.NewClient(c.clientExcept(t, int32(2)))
	waitISR(t, adm, "clean", 1)
	waitISR(t, adm, "unclean", 1)
	c.stop(t, 1) // the last in-sync replica goes
	c.restart(t, 2)
	adm = kadm.NewClient(c.clientExcept(t, int32(1)))
	waitLeader(t, adm, "unclean", 2) // elected out of sync
	waitLeader(t, adm, "clean", -1)  // offline
	td, err := adm.ListTopics(ctx(t), "clean")
	if err != nil {
		t.Fatal(err)
	}
	if p := td["clean"].Partitions[0]; !errors.Is(p.Err, kerr.LeaderNotAvailable) {
		t.Fatalf("offline partition: %v, want LEADER_NOT_AVAILABLE", p.Err)
	}
	time.Sleep(time.Second) // the clean topic stays offline
	waitLeader(t, adm, "clean", -1)
	c.restart(t, 1) // the in-sync replica returns and leads again
	waitLeader(t, adm, "clean", 1)
}

// waitLeader waits until Metadata names leader for partition 0 of topic.
func waitLeader(t testing.TB, adm *kadm.Client, topic string, leader int32) {
	t.Helper()
	last := int32(-2)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if td, err := adm.ListTopics(context.Background(), topic); err == nil && td[topic].Err == nil {
			if last = td[topic].Partitions[0].Leader; last == leader {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s-0 led by %d, want %d", topic, last, leader)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Fetch from followers (KIP-392): with RackAwareReplicaSelector, a
// consumer that names its rack is sent by the leader to the in-sync
// replica in that rack and reads everything from it.
func TestClusterFetchFromFollower(t *testing.T) {
	c := startCluster(t, 3, map[string]string{
		"replica.selector.class": "org.apache.kafka.common.replica.RackAwareReplicaSelector",
		"http.listener":          "127.0.0.1:0",
		"broker.rack":            "rack-{id}",
	})
	adm := kadm.NewClient(c.client(t))
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "racked", -1, -1
	a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	a.Partition, a.Replicas = 0, []int32{1, 2, 3} // led by node 1
	rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
	req.Topics = append(req.Topics, rt)
	if resp, err := req.RequestWith(ctx(t), c.client(t)); err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create topic: %v / %v", err, resp)
	}
	waitISR(t, adm, "racked", 3)
	const n = 200
	prod := c.client(t, kgo.DefaultProduceTopic("racked"), kgo.RequiredAcks(kgo.AllISRAcks()))
	for i := range n {
		produceSync(t, prod, &kgo.Record{Value: value(i)})
	}
	got := consumeClusterOpts(t, c, "racked", n, kgo.Rack("rack-2"))
	if len(got) != n {
		t.Fatalf("consumed %d records, want %d", len(got), n)
	}
	follower := scrape(t, c.nodes[1].srv.HTTPAddr())
	leader := scrape(t, c.nodes[0].srv.HTTPAddr())
	if v, _ := follower.value("kbroker_topic_records_out_total", "topic", "racked"); v < n {
		t.Errorf("the follower in the consumer's rack sent %v records, want %d", v, n)
	}
	if v, _ := leader.value("kbroker_topic_records_out_total", "topic", "racked"); v != 0 {
		t.Errorf("the leader sent %v records to a consumer in another rack, want 0", v)
	}
}

// A broker that does not lead a partition answers Produce and Fetch with
// NOT_LEADER_OR_FOLLOWER and names the leader and its endpoint (KIP-951).
func TestClusterNotLeaderNamesTheLeader(t *testing.T) {
	c := startCluster(t, 3, nil)
	adm := kadm.NewClient(c.client(t))
	// Replicas on nodes 1 and 2: node 3 holds none.
	create := kmsg.NewPtrCreateTopicsRequest()
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = "kip951", -1, -1
	ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	ra.Partition, ra.Replicas = 0, []int32{1, 2}
	ct.ReplicaAssignment = append(ct.ReplicaAssignment, ra)
	create.Topics = append(create.Topics, ct)
	if resp, err := create.RequestWith(ctx(t), c.client(t)); err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create topic: %v / %v", err, resp)
	}
	leader := partitionLeader(t, adm, "kip951", 0)
	epoch := partitionEpoch(t, adm, "kip951", 0)
	const other = 3
	cl := c.client(t)
	if err := cl.Ping(ctx(t)); err != nil {
		t.Fatal(err)
	}
	b := cl.Broker(int(other))

	fetch := kmsg.NewPtrFetchRequest()
	fetch.SetVersion(16)
	fetch.MaxWaitMillis, fetch.SessionEpoch = 0, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.TopicID = topicID(t, adm, "kip951")
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.CurrentLeaderEpoch, fp.PartitionMaxBytes = epoch, 1<<20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	// Node 3 answers once its metadata has the topic (it may lag).
	var fr *kmsg.FetchResponse
	waitUntil(t, 10*time.Second, func() bool {
		var err error
		fr, err = fetch.RequestWith(ctx(t), b)
		return err == nil && fr.Topics[0].Partitions[0].ErrorCode != kerr.UnknownTopicID.Code
	})
	rp := fr.Topics[0].Partitions[0]
	if rp.ErrorCode != kerr.NotLeaderForPartition.Code || rp.CurrentLeader.LeaderID != leader || len(fr.Brokers) != 1 || fr.Brokers[0].NodeID != leader {
		t.Errorf("fetch from broker %d: error %d, current leader %+v, brokers %+v; want an error naming leader %d", other, rp.ErrorCode, rp.CurrentLeader, fr.Brokers, leader)
	}

	produce := kmsg.NewPtrProduceRequest()
	produce.SetVersion(11)
	produce.Acks, produce.TimeoutMillis = -1, 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "kip951"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = encodeBatch([][]byte{[]byte("v")})
	pt.Partitions = append(pt.Partitions, pp)
	produce.Topics = append(produce.Topics, pt)
	pr, err := produce.RequestWith(ctx(t), b)
	if err != nil {
		t.Fatal(err)
	}
	sp := pr.Topics[0].Partitions[0]
	if sp.ErrorCode != kerr.NotLeaderForPartition.Code || sp.CurrentLeader.LeaderID != leader || len(pr.Brokers) != 1 || pr.Brokers[0].NodeID != leader {
		t.Errorf("produce to broker %d: error %d, current leader %+v, brokers %+v; want NOT_LEADER_OR_FOLLOWER naming leader %d", other, sp.ErrorCode, sp.CurrentLeader, pr.Brokers, leader)
	}
}

// Every node's kafka_brokers counts the cluster's live brokers, once its
// metadata shows them all unfenced.
func TestClusterMetricsCountBrokers(t *testing.T) {
	c := startCluster(t, 3, map[string]string{"http.listener": "127.0.0.1:0"})
	for _, nd := range c.nodes {
		waitUntil(t, 10*time.Second, func() bool {
			v, _ := scrape(t, nd.srv.HTTPAddr()).value("kafka_brokers")
			return v == 3
		})
	}
	c.stop(t, 3)
	for _, nd := range c.nodes[:2] {
		waitUntil(t, 10*time.Second, func() bool {
			v, _ := scrape(t, nd.srv.HTTPAddr()).value("kafka_brokers")
			return v == 2
		})
	}
}

// Every node's Metadata names as controller one of the brokers it lists,
// from the moment the cluster has started and while a node is stopped:
// clients look the id up in the list (sarama reports "controller is not
// available" otherwise).
func TestClusterMetadataNamesAListedController(t *testing.T) {
	c := startCluster(t, 3, nil)
	check := func(nodes []*clusterNode, d time.Duration) {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); {
			for _, nd := range nodes {
				cl := newClient(t, nd.srv.Addr())
				resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx(t), cl)
				cl.Close()
				if err != nil {
					t.Fatalf("node %d: Metadata: %v", nd.id, err)
				}
				listed := false
				for _, b := range resp.Brokers {
					listed = listed || b.NodeID == resp.ControllerID
				}
				if !listed {
					t.Fatalf("node %d names controller %d, not among its %d brokers", nd.id, resp.ControllerID, len(resp.Brokers))
				}
			}
		}
	}
	check(c.nodes, time.Second)
	c.stop(t, 1)
	check(c.nodes[1:], 3*time.Second)
}
