package main

// The cluster section (-cluster): produce and consume at replication factor 3
// on a 3-node kbroker cluster and on a 3-broker kfake, and kbroker's partition
// leader failover time. kbroker's nodes are three processes (combined
// broker+controller, metadata on raft); kfake's brokers share one process and
// do not replicate (see README.md).

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	clusterNodes      = 3
	clusterMinISR     = "2"
	clusterPartitions = 6
)

// clusterConfig holds the cluster section's settings.
type clusterConfig struct {
	sessionTimeout time.Duration // kbroker broker.session.timeout.ms
	heartbeat      time.Duration // kbroker broker.heartbeat.interval.ms
	failoverRuns   int
	failoverRate   int // records per second written during the failover runs
}

// kbrokerNodeArgs is the command line of node id (1-based) of a kbroker
// cluster whose node i listens on ports[i-1] for clients and ctrlPorts[i-1]
// for the controller quorum, all on 127.0.0.1.
func kbrokerNodeArgs(id int, dataDir string, ports, ctrlPorts []int, cc clusterConfig) []string {
	voters := make([]string, len(ctrlPorts))
	for i, p := range ctrlPorts {
		voters[i] = fmt.Sprintf("%d@127.0.0.1:%d", i+1, p)
	}
	rf := strconv.Itoa(len(ports))
	args := []string{"--data-dir", dataDir}
	for _, kv := range []string{
		"node.id=" + strconv.Itoa(id),
		fmt.Sprintf("listeners=PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", ports[id-1], ctrlPorts[id-1]),
		"controller.listener.names=CONTROLLER",
		"controller.quorum.voters=" + strings.Join(voters, ","),
		"default.replication.factor=" + rf,
		"offsets.topic.replication.factor=" + rf,
		"group.initial.rebalance.delay.ms=0",
		"http.listener=127.0.0.1:0",
		"broker.session.timeout.ms=" + strconv.FormatInt(cc.sessionTimeout.Milliseconds(), 10),
		"broker.heartbeat.interval.ms=" + strconv.FormatInt(cc.heartbeat.Milliseconds(), 10),
	} {
		args = append(args, "--override", kv)
	}
	return args
}

// kfakeClusterArgs runs serve-kfake with one broker per port.
func kfakeClusterArgs(ports []int, dataDir string) []string {
	ps := make([]string, len(ports))
	for i, p := range ports {
		ps[i] = strconv.Itoa(p)
	}
	args := []string{"serve-kfake", "-ports", strings.Join(ps, ",")}
	if dataDir != "" {
		args = append(args, "-data-dir", dataDir)
	}
	return args
}

// freePorts returns n distinct unused ports, holding each open until all are
// found so the kernel cannot hand out one twice.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// cluster is a running cluster under test: kbroker's is one process per
// node, kfake's is one process.
type cluster struct {
	procs []*child
	seeds []string
	ids   []int32 // node ids: kbroker's are 1..3, kfake's 0..2
	// start (re)starts kbroker node i (0-based) on its data directory;
	// nil for kfake.
	start func(i int) (*child, error)
}

// stop stops every process and removes the data directories and logs.
func (cl *cluster) stop() {
	for _, c := range cl.procs {
		if c != nil {
			c.stop()
		}
	}
}

// exited reports the first process that is gone.
func (cl *cluster) exited() error {
	var errs []error
	for _, c := range cl.procs {
		if c != nil {
			if err := c.exited(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func newKbrokerCluster(bin, tmp string, cc clusterConfig) (*cluster, error) {
	ports, err := freePorts(2 * clusterNodes)
	if err != nil {
		return nil, err
	}
	client, ctrl := ports[:clusterNodes], ports[clusterNodes:]
	dirs := make([]string, clusterNodes)
	logs := make([]string, clusterNodes)
	cl := &cluster{procs: make([]*child, clusterNodes)}
	for i := range dirs {
		if dirs[i], err = os.MkdirTemp(tmp, fmt.Sprintf("kbroker-node%d-data-", i+1)); err != nil {
			return nil, err
		}
		logs[i] = dirs[i] + ".log"
		cl.seeds = append(cl.seeds, net.JoinHostPort("127.0.0.1", strconv.Itoa(client[i])))
		cl.ids = append(cl.ids, int32(i+1))
	}
	cl.start = func(i int) (*child, error) {
		return startProc(fmt.Sprintf("kbroker-node%d", i+1), bin, kbrokerNodeArgs(i+1, dirs[i], client, ctrl, cc), cl.seeds[i], dirs[i], logs[i])
	}
	return cl, nil
}

// startKbrokerCluster starts all nodes at once (each waits for a quorum) and
// waits until every node has logged its start-up and Metadata lists them all.
func startKbrokerCluster(ctx context.Context, cl *cluster) error {
	for i := range cl.procs {
		c, err := cl.start(i)
		if err != nil {
			return err
		}
		cl.procs[i] = c
	}
	for _, c := range cl.procs {
		if err := waitLogLine(ctx, c, 0, `msg="kbroker started"`); err != nil {
			return err
		}
	}
	return waitBrokers(ctx, cl.seeds, clusterNodes)
}

func startKfakeCluster(ctx context.Context, self, tmp, name string, disk bool) (*cluster, error) {
	ports, err := freePorts(clusterNodes)
	if err != nil {
		return nil, err
	}
	dataDir, err := os.MkdirTemp(tmp, name+"-cluster-data-")
	if err != nil {
		return nil, err
	}
	kfakeDir := ""
	if disk {
		kfakeDir = dataDir
	}
	cl := &cluster{}
	for i, p := range ports {
		cl.seeds = append(cl.seeds, net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		cl.ids = append(cl.ids, int32(i))
	}
	c, err := startProc(name+"-cluster", self, kfakeClusterArgs(ports, kfakeDir), cl.seeds[0], dataDir, dataDir+".log")
	if err != nil {
		os.RemoveAll(dataDir)
		return nil, err
	}
	cl.procs = []*child{c}
	return cl, waitBrokers(ctx, cl.seeds, clusterNodes)
}

// waitLogLine polls c's log, from byte offset from on, until it holds needle.
func waitLogLine(ctx context.Context, c *child, from int64, needle string) error {
	for {
		if b, err := os.ReadFile(c.logPath); err == nil && int64(len(b)) >= from && strings.Contains(string(b[from:]), needle) {
			return nil
		}
		if err := c.exited(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: no %s in its log: %v; last output:\n%s", c.name, needle, ctx.Err(), c.logTail(2000))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func logSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// waitBrokers polls Metadata until it lists n brokers.
func waitBrokers(ctx context.Context, seeds []string, n int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		md, err := adm.BrokerMetadata(ctx)
		if err == nil && len(md.Brokers) >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("Metadata does not list %d brokers: %v (last: %d brokers, error %v)", n, ctx.Err(), len(md.Brokers), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// createClusterTopic creates topic at RF 3 with min.insync.replicas=2,
// retrying while the controller does not yet see all brokers, and waits
// until every partition has a leader and all three replicas in sync.
func createClusterTopic(ctx context.Context, seeds []string, ids []int32, topic string, partitions int32) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	minISR := clusterMinISR
	for {
		resp, err := adm.CreateTopic(ctx, partitions, clusterNodes, map[string]*string{"min.insync.replicas": &minISR}, topic)
		if err == nil {
			err = resp.Err
		}
		if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
			break
		}
		if ctx.Err() != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return waitISR(ctx, cl, ids, topic, partitions, clusterNodes)
}

// waitISR polls every broker with its own Metadata request until each one
// says that all partitions of topic have a leader and isr replicas in sync.
// Asking each broker matters: a broker learns of a new topic or leader from
// the metadata log a little after the controller, and kgo caches an answer
// it got through Client.Request (UNKNOWN_TOPIC_OR_PARTITION included) for
// MetadataMinAge, 5 s by default, which a producer would then sit out.
func waitISR(ctx context.Context, cl *kgo.Client, ids []int32, topic string, partitions int32, isr int) error {
	var last string
	for {
		ok, state, err := inSyncEverywhere(ctx, cl, ids, topic, partitions, isr)
		if ok {
			return nil
		}
		last = state
		if err != nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not %d partitions with %d in sync on every broker: %v (last: %s)", topic, partitions, isr, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func inSyncEverywhere(ctx context.Context, cl *kgo.Client, ids []int32, topic string, partitions int32, isr int) (bool, string, error) {
	for _, id := range ids {
		resp, err := brokerMetadata(ctx, cl, id, topic)
		if err != nil {
			return false, "", fmt.Errorf("broker %d: %w", id, err)
		}
		if ok, state := topicInSync(resp, topic, partitions, isr); !ok {
			var listed []int32
			for _, b := range resp.Brokers {
				listed = append(listed, b.NodeID)
			}
			return false, fmt.Sprintf("broker %d (lists brokers %v): %s", id, listed, state), nil
		}
	}
	return true, "", nil
}

// brokerMetadata asks broker id, and only it, about topic, past kgo's
// metadata cache.
func brokerMetadata(ctx context.Context, cl *kgo.Client, id int32, topic string) (*kmsg.MetadataResponse, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := cl.Broker(int(id)).Request(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp.(*kmsg.MetadataResponse), nil
}

// topicInSync reports whether resp shows partitions 0..partitions-1 of topic,
// each with a leader and at least isr replicas in sync, and describes them.
func topicInSync(resp *kmsg.MetadataResponse, topic string, partitions int32, isr int) (bool, string) {
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return false, err.Error()
		}
		var state []string
		good := map[int32]bool{}
		for _, p := range t.Partitions {
			state = append(state, fmt.Sprintf("p%d leader %d isr %v", p.Partition, p.Leader, p.ISR))
			if p.ErrorCode == 0 && p.Leader >= 0 && len(p.ISR) >= isr && p.Partition >= 0 && p.Partition < partitions {
				good[p.Partition] = true
			}
		}
		return len(good) == int(partitions), strings.Join(state, "; ")
	}
	return false, "topic not in response"
}

// leaderOf returns the leader of partition 0 of topic as node seed (a
// 1-based index into seeds) sees it.
func leaderOf(ctx context.Context, cl *kgo.Client, seed int, topic string) (int32, error) {
	resp, err := brokerMetadata(ctx, cl, int32(seed), topic)
	if err != nil {
		return 0, err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.Partition == 0 && p.ErrorCode == 0 && p.Leader >= 0 {
				return p.Leader, nil
			}
		}
	}
	return 0, fmt.Errorf("%s[0]: no leader according to node %d", topic, seed)
}

// benchCluster runs the cluster section for one broker and adds its figures
// to res.
func benchCluster(ctx context.Context, cfg config, res *Result, name, kbrokerBin, self, tmp string) {
	logf := func(format string, args ...any) { log.Printf(name+" cluster: "+format, args...) }
	compression, _ := codec(cfg.compression)

	var cl *cluster
	var err error
	sctx, cancel := context.WithTimeout(ctx, cfg.phaseTimeout)
	switch name {
	case "kbroker":
		cl, err = newKbrokerCluster(kbrokerBin, tmp, cfg.cluster)
		if err == nil {
			err = startKbrokerCluster(sctx, cl)
		}
	default:
		cl, err = startKfakeCluster(sctx, self, tmp, name, name == "kfake-disk")
	}
	cancel()
	if cl != nil {
		defer func() {
			if len(res.Errors) > 0 {
				if dir, err := keepLogs(cl, name); err == nil {
					res.fail("cluster", fmt.Errorf("node logs kept in %s", dir))
				}
			}
			cl.stop()
		}()
	}
	if err != nil {
		res.fail("cluster start", err)
		logf("start failed: %v", err)
		return
	}
	logf("%d brokers up at %s", clusterNodes, strings.Join(cl.seeds, ","))

	dead := false
	phase := func(pname string, f func(context.Context) error) bool {
		if dead || ctx.Err() != nil {
			return false
		}
		pctx, cancel := context.WithTimeout(ctx, cfg.phaseTimeout)
		defer cancel()
		err := f(pctx)
		if err == nil {
			return true
		}
		res.fail("cluster "+pname, err)
		logf("%s failed: %v", pname, err)
		return false
	}

	values := payloads(cfg.recordSize, 1024)
	const topic, failoverTopic = "bench-cluster-throughput", "bench-cluster-failover"
	if phase("create topic", func(ctx context.Context) error {
		return createClusterTopic(ctx, cl.seeds, cl.ids, topic, clusterPartitions)
	}) {
		produced := phase("produce", func(ctx context.Context) error {
			opts := append(producerOpts(ctx, cl.seeds[0], compression, false), kgo.SeedBrokers(cl.seeds...))
			t, err := produceThroughput(ctx, topic, cfg.records, values, opts)
			if err == nil {
				res.ClusterProduceRecPerSec, res.ClusterProduceMBPerSec = t.RecordsPerSec(), t.MBPerSec()
				logf("produce: %d records in %v: %.0f rec/s, %.1f MB/s", t.Records, t.Elapsed.Round(time.Millisecond), res.ClusterProduceRecPerSec, res.ClusterProduceMBPerSec)
			}
			return err
		})
		if produced {
			phase("consume", func(ctx context.Context) error {
				t, err := consumeThroughput(ctx, cl.seeds[0], topic, cfg.records)
				if err == nil {
					res.ClusterConsumeRecPerSec, res.ClusterConsumeMBPerSec = t.RecordsPerSec(), t.MBPerSec()
					logf("consume: %d records in %v: %.0f rec/s, %.1f MB/s", t.Records, t.Elapsed.Round(time.Millisecond), res.ClusterConsumeRecPerSec, res.ClusterConsumeMBPerSec)
				}
				return err
			})
		}
	}
	if err := cl.exited(); err != nil {
		res.fail("cluster", err)
		return
	}

	if cl.start == nil || cfg.cluster.failoverRuns == 0 {
		return // kfake has no failover to measure
	}
	if !phase("create failover topic", func(ctx context.Context) error { return createClusterTopic(ctx, cl.seeds, cl.ids, failoverTopic, 1) }) {
		return
	}
	benchFailover(ctx, cfg, res, cl, failoverTopic, values[0], phase, logf)
}

// failoverProducer writes steadily to a topic and reports the first
// acknowledgement of a record handed to it after a given instant.
type failoverProducer struct {
	cl *kgo.Client

	mu        sync.Mutex
	watchFrom time.Time      // zero: not watching
	acked     chan time.Time // the watched acknowledgement
	lastAck   time.Time
	acks      int
	fails     int
	firstErr  error
}

func (p *failoverProducer) done(sentAt time.Time, err error) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		if p.fails == 0 {
			p.firstErr = err
		}
		p.fails++
		return
	}
	p.acks++
	p.lastAck = now
	if !p.watchFrom.IsZero() && !sentAt.Before(p.watchFrom) {
		p.watchFrom = time.Time{}
		p.acked <- now // capacity 1, and only one send per watch
	}
}

func (p *failoverProducer) watch(from time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.watchFrom = from
}

func (p *failoverProducer) state() (lastAck time.Time, acks, fails int, firstErr error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastAck, p.acks, p.fails, p.firstErr
}

// benchFailover kills the leader of topic's one partition under a steady
// idempotent producer cfg.cluster.failoverRuns times, restarting the node and
// waiting for a full ISR in between.
func benchFailover(ctx context.Context, cfg config, res *Result, cl *cluster, topic string, value []byte, phase func(string, func(context.Context) error) bool, logf func(string, ...any)) {
	cc := cfg.cluster
	res.FailoverSessionTimeoutMs = cc.sessionTimeout.Milliseconds()
	res.FailoverHeartbeatMs = cc.heartbeat.Milliseconds()

	// The producer outlives the phases; its context is the whole run's.
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	client, err := kgo.NewClient(
		kgo.WithContext(pctx),
		kgo.SeedBrokers(cl.seeds...),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotent: kgo's default
		kgo.ProducerLinger(0),
		// React quickly, so that the figure is the broker's: kgo's
		// defaults (250 ms backoff growing to 2.5 s, metadata at most
		// every 5 s) would add seconds of their own.
		kgo.RetryBackoffFn(func(int) time.Duration { return failoverClientBackoff }),
		kgo.MetadataMinAge(failoverMetadataMinAge),
	)
	if err != nil {
		res.fail("cluster failover", err)
		return
	}
	defer client.Close()
	p := &failoverProducer{cl: client, acked: make(chan time.Time, 1)}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(time.Second / time.Duration(cc.failoverRate))
		defer tick.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-tick.C:
			}
			sentAt := time.Now()
			client.Produce(pctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) { p.done(sentAt, err) })
		}
	}()
	defer func() { cancel(); <-stopped }()

	// steady waits until the producer's records are being acknowledged.
	steady := func(ctx context.Context) error {
		for {
			if last, _, _, _ := p.state(); time.Since(last) < 100*time.Millisecond {
				return nil
			}
			select {
			case <-ctx.Done():
				_, acks, fails, ferr := p.state()
				return fmt.Errorf("producer not acknowledged: %v (%d acks, %d failed, first error %v)", ctx.Err(), acks, fails, ferr)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}

	for run := 1; run <= cc.failoverRuns; run++ {
		var killed int32
		ok := phase(fmt.Sprintf("failover run %d", run), func(ctx context.Context) error {
			if err := steady(ctx); err != nil {
				return err
			}
			// Every node agrees on the leader: waitISR before each run.
			leader, err := leaderOf(ctx, client, 1, topic)
			if err != nil {
				return err
			}
			if leader < 1 || int(leader) > len(cl.procs) {
				return fmt.Errorf("leader %d is not one of nodes 1..%d", leader, len(cl.procs))
			}
			killed = leader
			killAt := time.Now()
			cl.procs[leader-1].kill()
			// Records handed to kgo from here on were sent after the
			// leader died.
			p.watch(time.Now())
			select {
			case ackAt := <-p.acked:
				d := ackAt.Sub(killAt)
				res.FailoverRunsMs = append(res.FailoverRunsMs, ms(d))
				newLeader, _ := leaderOf(ctx, client, otherNode(leader), topic)
				logf("failover %d/%d: killed leader node %d, first record sent after it acknowledged %.0f ms later (new leader %d)", run, cc.failoverRuns, leader, ms(d), newLeader)
				return nil
			case <-ctx.Done():
				p.watch(time.Time{})
				_, acks, fails, ferr := p.state()
				return fmt.Errorf("killed leader node %d: no record acknowledged since: %v (%d acks, %d failed, first error %v); logs:\n%s", leader, ctx.Err(), acks, fails, ferr, clusterLogTails(cl, 1500))
			}
		})
		if killed != 0 {
			// Restart it whether or not the run succeeded, so the
			// next run starts from 3 nodes again.
			restarted := phase(fmt.Sprintf("failover restart %d", run), func(ctx context.Context) error {
				i := int(killed) - 1
				from := logSize(cl.procs[i].logPath)
				c, err := cl.start(i)
				if err != nil {
					return err
				}
				cl.procs[i] = c
				if err := waitLogLine(ctx, c, from, `msg="kbroker started"`); err != nil {
					return err
				}
				return waitISR(ctx, client, cl.ids, topic, 1, clusterNodes)
			})
			if !restarted {
				return
			}
		}
		if !ok {
			return
		}
	}
	_, acks, fails, ferr := p.state()
	if fails > 0 {
		res.fail("cluster failover producer", fmt.Errorf("%d of %d records failed, first: %w", fails, acks+fails, ferr))
	}
	res.FailoverMedianMs, res.FailoverMaxMs = medianMax(res.FailoverRunsMs)
	logf("failover: median %.0f ms, max %.0f ms over %d runs (%d records acknowledged, %d failed)", res.FailoverMedianMs, res.FailoverMaxMs, len(res.FailoverRunsMs), acks, fails)
}

// otherNode is a node of the cluster other than id (nodes are 1..3).
func otherNode(id int32) int { return int(id)%clusterNodes + 1 }

const (
	failoverClientBackoff  = 50 * time.Millisecond
	failoverMetadataMinAge = 100 * time.Millisecond
)

// medianMax returns the median and the maximum of xs, 0 and 0 if empty.
func medianMax(xs []float64) (med, maxv float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	return median(xs), slices.Max(xs)
}

// keepLogs copies the cluster's logs out of the temporary directory, which
// is removed at exit, so that a failure can be looked into.
func keepLogs(cl *cluster, name string) (string, error) {
	dir, err := os.MkdirTemp("", "kbroker-bench-"+name+"-cluster-logs-")
	if err != nil {
		return "", err
	}
	for i, c := range cl.procs {
		if c == nil {
			continue
		}
		b, err := os.ReadFile(c.logPath)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(fmt.Sprintf("%s/node%d.log", dir, i+1), b, 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

func clusterLogTails(cl *cluster, n int) string {
	var b strings.Builder
	for _, c := range cl.procs {
		if c != nil {
			fmt.Fprintf(&b, "--- %s (%s)\n%s\n", c.name, c.logPath, c.logTail(n))
		}
	}
	return b.String()
}

// clusterNote is printed under the table when the cluster section ran.
const clusterNote = `Cluster rows: kbroker is 3 processes replicating each partition 3 ways (ISR, acks=all, min.insync.replicas=2);
kfake's 3 brokers share one process and one copy of the data: it reports RF 3 and a full ISR in Metadata but does
not replicate, so its cluster rows are an unreplicated baseline, not a like-for-like peer. Failover is kbroker's alone.`
