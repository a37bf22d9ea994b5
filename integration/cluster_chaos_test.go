package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// processCluster is a cluster of kbroker processes on 127.0.0.1, for tests
// that kill -9 its nodes.
type processCluster struct {
	t     testing.TB
	addrs []string // broker listeners, by node id - 1
	http  []string
	dirs  []string
	args  [][]string
	procs []*brokerProcess
}

func startProcessCluster(t testing.TB, n int, props map[string]string) *processCluster {
	t.Helper()
	c := &processCluster{t: t}
	var voters []string
	ctlAddrs := make([]string, n)
	for i := range n {
		c.addrs = append(c.addrs, freeAddr(t))
		c.http = append(c.http, freeAddr(t))
		c.dirs = append(c.dirs, t.TempDir())
		ctlAddrs[i] = freeAddr(t)
		voters = append(voters, fmt.Sprintf("%d@%s", i+1, ctlAddrs[i]))
	}
	for i := range n {
		all := clusterProps(n)
		for k, v := range props {
			all[k] = v
		}
		all["node.id"] = strconv.Itoa(i + 1)
		all["controller.listener.names"] = "CONTROLLER"
		all["controller.quorum.voters"] = strings.Join(voters, ",")
		var args []string
		for k, v := range all {
			args = append(args, "--override", k+"="+v)
		}
		// startProcessAt sets listeners to the broker address alone.
		args = append(args, "--override", "listeners=PLAINTEXT://"+c.addrs[i]+",CONTROLLER://"+ctlAddrs[i])
		c.args = append(c.args, args)
	}
	c.procs = make([]*brokerProcess, n)
	for i := range n {
		c.start(int32(i + 1))
	}
	c.waitReady()
	return c
}

// start runs node id's process (again) on its data dir and ports.
func (c *processCluster) start(id int32) {
	c.t.Helper()
	i := id - 1
	c.procs[i] = startProcessAt(c.t, c.dirs[i], c.addrs[i], c.http[i], c.args[i]...)
}

// waitReady waits until every node's /readyz answers 200: each has joined
// the quorum and caught up.
func (c *processCluster) waitReady() {
	c.t.Helper()
	for _, h := range c.http {
		waitUntil(c.t, 30*time.Second, func() bool {
			resp, err := http.Get("http://" + h + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}
}

func (c *processCluster) kill(id int32) { c.procs[id-1].kill() }

func (c *processCluster) client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.addrs...), kgo.MetadataMinAge(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// The leader of a partition is kill -9'd again and again while an
// idempotent acks=all producer writes and a consumer reads: no
// acknowledged record is lost or stored twice, each partition keeps the
// producer's order, and the consumer never goes backwards or sees a record
// that is not in the final log. KBROKER_CHAOS_ROUNDS sets the rounds
// (default 20).
func TestClusterLeaderKillNineRounds(t *testing.T) {
	rounds := 20
	if v, err := strconv.Atoi(os.Getenv("KBROKER_CHAOS_ROUNDS")); err == nil {
		rounds = v
	}
	if testing.Short() {
		rounds = 3
	}
	c := startProcessCluster(t, 3, nil)
	adm := kadm.NewClient(c.client(t))
	const topic = "chaos"
	minISR := "2"
	resp, err := adm.CreateTopic(ctx(t), 3, 3, map[string]*string{"min.insync.replicas": &minISR}, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create topic: %v / %v", err, resp.Err)
	}
	h := newHistory()

	// The producer: values in sequence, acknowledged ones go to the history.
	prod := c.client(t, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.RecordRetries(1<<20), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	stop := make(chan struct{})
	var produced, acked atomic.Int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for seq := 0; ; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			for produced.Load()-acked.Load() > 200 { // bounded in flight
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
			}
			produced.Add(1)
			prod.Produce(context.Background(), &kgo.Record{Value: []byte(fmt.Sprintf("v-%08d", seq))}, func(r *kgo.Record, err error) {
				if err == nil {
					h.ack(r.Partition, r.Offset, string(r.Value))
				}
				acked.Add(1)
			})
		}
	}()
	// The consumer: every record it sees is checked against the final log.
	cons := c.client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	cctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer wg.Done()
		for cctx.Err() == nil {
			cons.PollFetches(cctx).EachRecord(func(r *kgo.Record) { h.observe(r.Partition, r.Offset, string(r.Value)) })
		}
	}()

	var failovers []time.Duration
	for round := range rounds {
		leader := partitionLeader(t, adm, topic, 0)
		before := h.lastAcked(0)
		c.kill(leader)
		killed := time.Now()
		// Failover: until partition 0 acknowledges a record again.
		waitUntil(t, 30*time.Second, func() bool { return h.lastAcked(0) > before })
		failovers = append(failovers, time.Since(killed))
		c.start(leader)
		waitISR(t, adm, topic, 3)
		t.Logf("round %d: killed leader %d of partition 0, which acknowledged again after %v", round+1, leader, failovers[len(failovers)-1].Round(time.Millisecond))
	}
	close(stop)
	flushCtx, flushCancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer flushCancel()
	if err := prod.Flush(flushCtx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	cancel()
	wg.Wait()

	// The final log, read back in full.
	ends, err := adm.ListEndOffsets(ctx(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	final := map[int32]map[int64]string{}
	reader := c.client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer rcancel()
	for n := int64(0); n < total; {
		fs := reader.PollFetches(rctx)
		if rctx.Err() != nil {
			t.Fatalf("read %d of %d records of the final log", n, total)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if final[r.Partition] == nil {
				final[r.Partition] = map[int64]string{}
			}
			final[r.Partition][r.Offset] = string(r.Value)
			n++
		})
	}
	errs := h.check(final, func(v string) int { n, _ := strconv.Atoi(strings.TrimPrefix(v, "v-")); return n })
	for _, e := range errs {
		t.Error(e)
	}
	t.Logf("%d rounds: %d records produced, %d in the log; failover times %v", rounds, produced.Load(), total, failovers)
}

// A follower paused with SIGSTOP leaves the ISR, after which acks=all to a
// topic with min.insync.replicas=3 is refused with NOT_ENOUGH_REPLICAS;
// resumed with SIGCONT it catches up and rejoins, and the same produce
// succeeds.
func TestClusterPausedFollowerLeavesISR(t *testing.T) {
	c := startProcessCluster(t, 3, nil)
	adm := kadm.NewClient(c.client(t))
	const topic = "paused"
	three := "3"
	if resp, err := adm.CreateTopic(ctx(t), 1, 3, map[string]*string{"min.insync.replicas": &three}, topic); err != nil || resp.Err != nil {
		t.Fatalf("create topic: %v / %v", err, resp.Err)
	}
	waitISR(t, adm, topic, 3)
	prod := c.client(t, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(1))
	produceSync(t, prod, &kgo.Record{Value: []byte("before")})

	leader := partitionLeader(t, adm, topic, 0)
	follower := leader%3 + 1
	proc := c.procs[follower-1].cmd.Process
	if err := proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			proc.Signal(syscall.SIGCONT)
		}
	}()
	waitISR(t, adm, topic, 2)
	err := prod.ProduceSync(ctx(t), &kgo.Record{Value: []byte("refused")}).FirstErr()
	if !errors.Is(err, kerr.NotEnoughReplicas) {
		t.Fatalf("acks=all with a paused follower and min.insync.replicas=3: %v, want NOT_ENOUGH_REPLICAS", err)
	}

	if err := proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	waitISR(t, adm, topic, 3)
	produceSync(t, c.client(t, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks())), &kgo.Record{Value: []byte("after")})
}

// A read-process-write loop (GroupTransactSession) copies topic A to topic
// B on a 3-node cluster while the node coordinating its group and its
// transactions (the active controller) is kill -9'd three times at random
// points and restarted; the application restarts after each failed
// commit. The next coordinator takes over the group's offsets and the open
// transactions from the replicated state: B, read_committed, holds every
// record of A exactly once, and the committed offsets cover A.
func TestClusterExactlyOnceAcrossCoordinatorKills(t *testing.T) {
	c := startProcessCluster(t, 3, nil)
	adm := kadm.NewClient(c.client(t))
	for _, topic := range []string{"eos-a", "eos-b"} {
		if resp, err := adm.CreateTopic(ctx(t), 3, 3, nil, topic); err != nil || resp.Err != nil {
			t.Fatalf("create %s: %v / %v", topic, err, resp.Err)
		}
	}
	const n = 10000
	src := c.client(t, kgo.DefaultProduceTopic("eos-a"), kgo.RequiredAcks(kgo.AllISRAcks()))
	var rs []*kgo.Record
	for i := range n {
		rs = append(rs, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))})
	}
	produceSync(t, src, rs...)

	appCtx, stopApp := context.WithCancel(context.Background())
	var app sync.WaitGroup
	var txns atomic.Int64
	var restarts int
	app.Add(1)
	go func() {
		defer app.Done()
		restarts = copyApp(t, appCtx, &txns, kgo.SeedBrokers(c.addrs...), kgo.MetadataMinAge(100*time.Millisecond),
			kgo.TransactionalID("cluster-eos-app"), kgo.ConsumerGroup("cluster-eos"), kgo.ConsumeTopics("eos-a"),
			kgo.DefaultProduceTopic("eos-b"), kgo.RetryTimeout(30*time.Second), kgo.SessionTimeout(10*time.Second))
	}()

	for range 3 {
		target := txns.Load() + 2 + rand.Int64N(5)
		for deadline := time.Now().Add(60 * time.Second); txns.Load() < target; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("stuck at %d transactions", txns.Load())
			}
		}
		coordinator := coordinatorOf(t, adm, "cluster-eos")
		t.Logf("kill -9 coordinator %d after %d transactions", coordinator, txns.Load())
		c.kill(coordinator)
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
		c.start(coordinator)
		c.waitReady()
	}

	waitGroupCommitted(t, adm, "cluster-eos", n, 120*time.Second)
	time.Sleep(500 * time.Millisecond)
	stopApp()
	app.Wait()

	got := map[string]int{}
	out := c.client(t, kgo.ConsumeTopics("eos-b"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(200*time.Millisecond))
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	for rctx.Err() == nil {
		out.PollFetches(rctx).EachRecord(func(r *kgo.Record) { got[string(r.Value)]++ })
	}
	checkEachOnce(t, got, n)
	t.Logf("%d transactions committed, the application restarted %d times", txns.Load(), restarts)
}

// coordinatorOf looks up the broker coordinating group.
func coordinatorOf(t testing.TB, adm *kadm.Client, group string) int32 {
	t.Helper()
	var id int32 = -1
	waitUntil(t, 30*time.Second, func() bool {
		resp := adm.FindGroupCoordinators(context.Background(), group)
		for _, r := range resp {
			if r.Err == nil {
				id = r.NodeID
				return true
			}
		}
		return false
	})
	return id
}
