package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// testCluster is an in-process quorum of combined nodes on 127.0.0.1.
type testCluster struct {
	t      *testing.T
	voters []Voter
	dirs   []string
	nodes  []*Controller // nil when stopped
	states []*memState   // each node's coordinator state store
}

// memState is a StateStore that keeps the change sets as a list.
type memState struct {
	mu  sync.Mutex
	log []string
}

func (m *memState) ApplyState(b []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.log = append(m.log, string(b))
	return nil
}

func (m *memState) SnapshotState() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return json.Marshal(m.log)
}

func (m *memState) RestoreState(b []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.log = nil
	if b == nil {
		return nil
	}
	return json.Unmarshal(b, &m.log)
}

func (m *memState) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return strings.Join(m.log, ",")
}

const (
	testSession   = 1500 * time.Millisecond
	testHeartbeat = 100 * time.Millisecond
)

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

func startCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, nodes: make([]*Controller, n)}
	lns := make([]net.Listener, n)
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		tc.voters = append(tc.voters, Voter{ID: int32(i + 1), Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port})
		tc.dirs = append(tc.dirs, t.TempDir())
		tc.states = append(tc.states, &memState{})
	}
	for i := range n {
		tc.start(i, lns[i])
	}
	t.Cleanup(func() {
		for _, c := range tc.nodes {
			if c != nil {
				c.Close()
			}
		}
	})
	return tc
}

func (tc *testCluster) start(i int, ln net.Listener) {
	tc.t.Helper()
	if ln == nil {
		var err error
		for range 50 { // the port may linger briefly after Close
			ln, err = net.Listen("tcp", tc.voters[i].Addr())
			if err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			tc.t.Fatal(err)
		}
	}
	c, err := Start(Config{
		NodeID:                   int32(i + 1),
		Voters:                   tc.voters,
		Dir:                      tc.dirs[i],
		Listener:                 ln,
		ClusterID:                "test-cluster",
		BrokerSessionTimeout:     testSession,
		BrokerHeartbeatInterval:  testHeartbeat,
		ElectionTimeout:          400 * time.Millisecond,
		DefaultReplicationFactor: 3,
		DefaultNumPartitions:     3,
		Logger:                   testLogger(tc.t),
		State:                    tc.states[i],
	})
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.nodes[i] = c
}

func (tc *testCluster) stop(i int) {
	tc.t.Helper()
	if err := tc.nodes[i].Close(); err != nil {
		tc.t.Logf("close node %d: %v", i+1, err)
	}
	tc.nodes[i] = nil
}

// active waits for an active controller and returns its index.
func (tc *testCluster) active() int {
	tc.t.Helper()
	var idx int
	waitFor(tc.t, 15*time.Second, "an active controller", func() bool {
		for i, c := range tc.nodes {
			if c != nil && c.active.Load() {
				idx = i
				return true
			}
		}
		return false
	})
	return idx
}

// follower returns a running node other than the active one.
func (tc *testCluster) follower() int {
	a := tc.active()
	for i, c := range tc.nodes {
		if c != nil && i != a {
			return i
		}
	}
	tc.t.Fatal("no follower")
	return -1
}

// registerAll registers every running node's broker and waits until all
// are unfenced.
func (tc *testCluster) registerAll(ctx context.Context) {
	tc.t.Helper()
	for i, c := range tc.nodes {
		if c == nil {
			continue
		}
		ep := []Endpoint{{Listener: "PLAINTEXT", Host: "127.0.0.1", Port: int32(9000 + i), SecurityProtocol: 0}}
		if err := c.RegisterBroker(ctx, ep, ""); err != nil {
			tc.t.Fatalf("register broker %d: %v", i+1, err)
		}
	}
	for i, c := range tc.nodes {
		if c == nil {
			continue
		}
		if err := c.WaitUnfenced(ctx); err != nil {
			tc.t.Fatalf("broker %d: %v", i+1, err)
		}
	}
}

// allImages waits until every running node's image satisfies cond.
func (tc *testCluster) allImages(what string, cond func(*Image) bool) {
	tc.t.Helper()
	waitFor(tc.t, 15*time.Second, what, func() bool {
		for _, c := range tc.nodes {
			if c != nil && !cond(c.Image()) {
				return false
			}
		}
		return true
	})
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestParseVoters(t *testing.T) {
	t.Parallel()
	vs, err := ParseVoters("1@a:9093, 2@[::1]:9094,3@c.example:1")
	if err != nil || len(vs) != 3 || vs[1] != (Voter{ID: 2, Host: "::1", Port: 9094}) || vs[1].Addr() != "[::1]:9094" {
		t.Fatalf("%+v %v", vs, err)
	}
	for _, bad := range []string{"", "1@a", "x@a:1", "1@a:0", "1@:1", "1@a:1,1@b:2", "-1@a:1", "1@a:99999"} {
		if _, err := ParseVoters(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestCluster runs one 3-node quorum through the controller's life:
// election, registration, topic operations from a follower, AlterPartition
// rules, producer ids, fencing on a lost session and re-registration,
// failover, and restart from the raft directory.
func TestCluster(t *testing.T) {
	tc := startCluster(t, 3)
	ctx := testCtx(t)
	tc.active()
	tc.registerAll(ctx)

	// CreateTopic from a follower lands in every image: RF 3, leaders
	// spread over the three brokers.
	f := tc.nodes[tc.follower()]
	top, err := f.CreateTopic(ctx, CreateTopicSpec{Name: "orders", NumPartitions: -1, ReplicationFactor: -1, Configs: map[string]string{"cleanup.policy": "compact"}})
	if err != nil {
		t.Fatal(err)
	}
	if f.Image().Topics["orders"] != top {
		t.Fatal("CreateTopic returned before the caller's image had the topic")
	}
	leaders := map[int32]bool{}
	for _, p := range top.Partitions {
		if len(p.Replicas) != 3 || len(p.ISR) != 3 || p.Leader != p.Replicas[0] {
			t.Fatalf("partition %+v", p)
		}
		leaders[p.Leader] = true
	}
	if len(leaders) != 3 {
		t.Fatalf("leaders not distinct: %+v", top.Partitions)
	}
	tc.allImages("orders everywhere", func(img *Image) bool { return img.TopicsByID[top.ID] != nil })
	if _, err := f.CreateTopic(ctx, CreateTopicSpec{Name: "orders", NumPartitions: 1, ReplicationFactor: 1}); !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	if _, err := f.CreateTopic(ctx, CreateTopicSpec{Name: "wide", NumPartitions: 1, ReplicationFactor: 4}); !errors.Is(err, kerr.InvalidReplicationFactor) {
		t.Fatalf("rf 4 on 3 brokers: %v", err)
	}
	if vt, err := f.CreateTopic(ctx, CreateTopicSpec{Name: "dry", NumPartitions: 2, ReplicationFactor: 2, ValidateOnly: true}); err != nil || len(vt.Partitions) != 2 || f.Image().Topics["dry"] != nil {
		t.Fatalf("validate only: %+v %v", vt, err)
	}
	if err := f.CreatePartitions(ctx, "orders", 4, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.SetTopicConfigs(ctx, "orders", map[string]string{"retention.ms": "1000"}); err != nil {
		t.Fatal(err)
	}
	if ot := f.Image().Topics["orders"]; len(ot.Partitions) != 4 || ot.Configs["retention.ms"] != "1000" || ot.Configs["cleanup.policy"] != "" {
		t.Fatalf("after CreatePartitions + SetTopicConfigs: %+v", ot)
	}
	if _, err := f.CreateTopic(ctx, CreateTopicSpec{Name: "gone", NumPartitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	if err := f.DeleteTopic(ctx, "gone"); err != nil || f.Image().Topics["gone"] != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := f.DeleteTopic(ctx, "gone"); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("delete again: %v", err)
	}

	// AlterPartition, sent by the partition leader's node.
	p0 := f.Image().Topics["orders"].Partitions[0]
	leader := tc.nodes[p0.Leader-1]
	shrunk := slices.DeleteFunc(slices.Clone(p0.ISR), func(id int32) bool { return id != p0.Leader && id == p0.Replicas[2] })
	got, err := leader.AlterPartition(ctx, "orders", 0, p0.LeaderEpoch, p0.PartitionEpoch, shrunk)
	if err != nil || !slices.Equal(got.ISR, shrunk) || got.PartitionEpoch != p0.PartitionEpoch+1 || got.LeaderEpoch != p0.LeaderEpoch {
		t.Fatalf("shrink: %+v %v", got, err)
	}
	if _, err := leader.AlterPartition(ctx, "orders", 0, p0.LeaderEpoch, p0.PartitionEpoch, p0.ISR); !errors.Is(err, kerr.InvalidUpdateVersion) {
		t.Fatalf("stale partition epoch: %v", err)
	}
	if _, err := leader.AlterPartition(ctx, "orders", 0, p0.LeaderEpoch-1, got.PartitionEpoch, p0.ISR); !errors.Is(err, kerr.FencedLeaderEpoch) {
		t.Fatalf("stale leader epoch: %v", err)
	}
	other := tc.nodes[p0.Replicas[1]-1]
	if _, err := other.AlterPartition(ctx, "orders", 0, p0.LeaderEpoch, got.PartitionEpoch, p0.ISR); !errors.Is(err, kerr.NotLeaderForPartition) {
		t.Fatalf("from a follower: %v", err)
	}
	got, err = leader.AlterPartition(ctx, "orders", 0, p0.LeaderEpoch, got.PartitionEpoch, p0.ISR)
	if err != nil || len(got.ISR) != 3 {
		t.Fatalf("expand: %+v %v", got, err)
	}

	// Producer id blocks never overlap, whichever node asks.
	var firsts []int64
	for _, c := range tc.nodes {
		for range 2 {
			first, n, err := c.AllocateProducerIDs(ctx)
			if err != nil || n != producerIDBlock {
				t.Fatalf("allocate: %d %d %v", first, n, err)
			}
			firsts = append(firsts, first)
		}
	}
	slices.Sort(firsts)
	for i := 1; i < len(firsts); i++ {
		if firsts[i] < firsts[i-1]+producerIDBlock {
			t.Fatalf("overlapping producer id blocks: %v", firsts)
		}
	}

	// A broker whose heartbeats stop is fenced after the session timeout:
	// its leaderships move with a new epoch, it leaves the ISRs, and a
	// partition only it could lead goes offline.
	victim := int32(tc.follower() + 1)
	vc := tc.nodes[victim-1]
	solo, err := f.CreateTopic(ctx, CreateTopicSpec{Name: "solo", NumPartitions: -1, ReplicationFactor: -1, Assignment: [][]int32{{victim}}})
	if err != nil {
		t.Fatal(err)
	}
	before := f.Image().Topics["orders"]
	vc.lifecycle.stop()
	tc.allImages("victim fenced", func(img *Image) bool { return img.Brokers[victim].Fenced })
	img := f.Image()
	for i, p := range img.Topics["orders"].Partitions {
		old := before.Partitions[i]
		if p.Leader == victim || slices.Contains(p.ISR, victim) {
			t.Errorf("orders-%d still has the fenced broker: %+v", i, p)
		}
		if old.Leader == victim && (p.LeaderEpoch != old.LeaderEpoch+1 || p.Leader == -1) {
			t.Errorf("orders-%d: leader moved from %+v to %+v", i, old, p)
		}
		if p.PartitionEpoch <= old.PartitionEpoch {
			t.Errorf("orders-%d: partition epoch not bumped: %+v", i, p)
		}
	}
	if p := img.Topics["solo"].Partitions[0]; p.Leader != -1 || !slices.Equal(p.ISR, []int32{victim}) {
		t.Errorf("solo after fence: %+v", p)
	}

	// The node restarts from its directory: its broker registers a new
	// incarnation, catches up, is unfenced, and the offline partition
	// comes back.
	tc.stop(int(victim - 1))
	tc.start(int(victim-1), nil)
	tc.registerAllOne(ctx, tc.nodes[victim-1])
	tc.allImages("solo back", func(img *Image) bool {
		p := img.Topics["solo"].Partitions[0]
		return p.Leader == victim && p.LeaderEpoch == solo.Partitions[0].LeaderEpoch+2
	})

	// Controlled shutdown of a follower's broker moves its leaderships.
	cs := tc.nodes[tc.follower()]
	if err := cs.ControlledShutdown(ctx); err != nil {
		t.Fatal(err)
	}
	csID := cs.cfg.NodeID
	img = cs.Image()
	if !img.Brokers[csID].Fenced {
		t.Errorf("broker %d not fenced after controlled shutdown: %+v", csID, img.Brokers[csID])
	}
	for i, p := range img.Topics["orders"].Partitions {
		if p.Leader == csID {
			t.Errorf("orders-%d still led by the shut-down broker: %+v", i, p)
		}
	}

	// Failover: close the active controller; another takes over and
	// operations keep working from the remaining nodes.
	old := tc.active()
	// A snapshot first, so that the restart below restores one and then
	// replays the log after it.
	if err := tc.nodes[old].raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	tc.stop(old)
	na := tc.active()
	if na == old {
		t.Fatal("no new active controller")
	}
	for _, c := range tc.nodes {
		if c != nil && c.ActiveID() != int32(na+1) {
			waitFor(t, 10*time.Second, "ActiveID", func() bool { return c.ActiveID() == int32(na+1) })
		}
	}
	if _, err := tc.nodes[tc.follower()].CreateTopic(ctx, CreateTopicSpec{Name: "after-failover", NumPartitions: 2, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}

	// Restart the closed node from its directory: same image.
	tc.start(old, nil)
	want := tc.nodes[na]
	waitFor(t, 15*time.Second, "restarted node caught up", func() bool {
		return tc.nodes[old].Image().Offset == want.Image().Offset
	})
	if a, b := encodeSnapshot(tc.nodes[old].Image(), nil), encodeSnapshot(want.Image(), nil); !bytes.Equal(a, b) {
		t.Fatalf("restarted image differs:\n%s\n%s", a, b)
	}
	if tc.nodes[old].Image().Topics["after-failover"] == nil {
		t.Fatal("restarted node missed the topic created while it was down")
	}
}

func (tc *testCluster) registerAllOne(ctx context.Context, c *Controller) {
	tc.t.Helper()
	ep := []Endpoint{{Listener: "PLAINTEXT", Host: "127.0.0.1", Port: 9999}}
	if err := c.RegisterBroker(ctx, ep, ""); err != nil {
		tc.t.Fatal(err)
	}
	if err := c.WaitUnfenced(ctx); err != nil {
		tc.t.Fatal(fmt.Errorf("re-registered broker: %w", err))
	}
}

// Coordinator state appended by the active controller reaches every node's
// store in order, survives a snapshot and a restart (rebuilt from the
// snapshot and the log), and only the active controller may append.
func TestCoordinatorStateReplicated(t *testing.T) {
	tc := startCluster(t, 3)
	a := tc.active()
	for _, s := range []string{"a", "b", "c"} {
		if err := tc.nodes[a].AppendState(testCtx(t), []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	f := tc.follower()
	if err := tc.nodes[f].AppendState(testCtx(t), []byte("x")); !errors.Is(err, kerr.NotController) {
		t.Fatalf("AppendState on a follower: %v, want NOT_CONTROLLER", err)
	}
	for i := range tc.nodes {
		waitFor(t, 5*time.Second, "state on every node", func() bool { return tc.states[i].String() == "a,b,c" })
	}
	if err := tc.nodes[f].raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if err := tc.nodes[a].AppendState(testCtx(t), []byte("d")); err != nil {
		t.Fatal(err)
	}
	tc.stop(f)
	tc.states[f].RestoreState([]byte(`["stale"]`))
	tc.start(f, nil)
	waitFor(t, 10*time.Second, "the restarted node's state", func() bool { return tc.states[f].String() == "a,b,c,d" })
}
