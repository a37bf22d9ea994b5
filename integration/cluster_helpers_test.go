package integration

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kbroker/kbroker/broker"
)

// testCluster is a cluster of in-process brokers on 127.0.0.1, each a
// combined broker+controller node with its own data directory.
type testCluster struct {
	nodes []*clusterNode
}

type clusterNode struct {
	id    int32
	dir   string
	props map[string]string
	srv   *broker.Server // nil while stopped
}

// clusterProps are the settings every test cluster shares: short broker
// sessions and elections so failover takes about a second, and new topics
// replicated to every node.
func clusterProps(n int) map[string]string {
	return map[string]string{
		"broker.session.timeout.ms":             "1500",
		"broker.heartbeat.interval.ms":          "200",
		"controller.quorum.election.timeout.ms": "1000",
		"replica.lag.time.max.ms":               "3000",
		"replica.fetch.backoff.ms":              "100",
		"default.replication.factor":            fmt.Sprint(n),
		"offsets.topic.replication.factor":      fmt.Sprint(n),
		"group.initial.rebalance.delay.ms":      "0",
	}
}

// startCluster starts n nodes at once (each waits for a quorum) and stops
// them at cleanup. props override every node's configs; "{id}" in a value
// is the node's id, "{listeners}" the listeners it would have had.
func startCluster(t testing.TB, n int, props map[string]string) *testCluster {
	t.Helper()
	// A port found free can be taken by another test's connection before a
	// node binds it: then start over on other ports.
	for attempt := 1; ; attempt++ {
		c, err := tryStartCluster(t, n, props)
		if err == nil {
			return c
		}
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("starting the cluster again on other ports: %v", err)
	}
}

func tryStartCluster(t testing.TB, n int, props map[string]string) (*testCluster, error) {
	var voters []string
	c := &testCluster{}
	for i := 1; i <= n; i++ {
		addr, ctlAddr := freeAddr(t), freeAddr(t)
		voters = append(voters, fmt.Sprintf("%d@%s", i, ctlAddr))
		all := clusterProps(n)
		maps.Copy(all, map[string]string{
			"node.id":                   fmt.Sprint(i),
			"listeners":                 "PLAINTEXT://" + addr + ",CONTROLLER://" + ctlAddr,
			"controller.listener.names": "CONTROLLER",
			"log.dirs":                  t.TempDir(),
			"http.listener":             "",
		})
		for k, v := range props {
			// "{listeners}" is the default listeners, to add one to them.
			all[k] = strings.ReplaceAll(strings.ReplaceAll(v, "{id}", fmt.Sprint(i)), "{listeners}", all["listeners"])
		}
		c.nodes = append(c.nodes, &clusterNode{id: int32(i), dir: all["log.dirs"], props: all})
	}
	for _, nd := range c.nodes {
		nd.props["controller.quorum.voters"] = strings.Join(voters, ",")
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, nd := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.startNode(t, nd)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, nd := range c.nodes {
			if nd.srv != nil {
				nd.srv.Close()
			}
		}
		return nil, err
	}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, nd := range c.nodes {
			if nd.srv != nil {
				wg.Add(1)
				go func() { defer wg.Done(); nd.srv.Close() }()
			}
		}
		wg.Wait()
	})
	return c, nil
}

func (c *testCluster) startNode(t testing.TB, nd *clusterNode) error {
	cfg, err := broker.ParseConfig(nd.props)
	if err != nil {
		return fmt.Errorf("node %d config: %w", nd.id, err)
	}
	cfg.Logger = testLogger()
	srv, err := broker.Start(cfg)
	if err != nil {
		return fmt.Errorf("start node %d: %w", nd.id, err)
	}
	nd.srv = srv
	return nil
}

// stop closes node id (a clean shutdown: controlled unless the node's
// props turn it off).
func (c *testCluster) stop(t testing.TB, id int32) {
	t.Helper()
	nd := c.nodes[id-1]
	if err := nd.srv.Close(); err != nil {
		t.Errorf("close node %d: %v", id, err)
	}
	nd.srv = nil
}

// restart starts a stopped node again on its data directory and ports.
func (c *testCluster) restart(t testing.TB, id int32) {
	t.Helper()
	if err := c.startNode(t, c.nodes[id-1]); err != nil {
		t.Fatal(err)
	}
}

// seeds lists the broker addresses of the running nodes.
func (c *testCluster) seeds() []string {
	var out []string
	for _, nd := range c.nodes {
		out = append(out, strings.TrimPrefix(strings.Split(nd.props["listeners"], ",")[0], "PLAINTEXT://"))
	}
	return out
}

// client returns a kgo client seeded with every node, closed at cleanup.
func (c *testCluster) client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.seeds()...), kgo.MetadataMinAge(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// testLogger is the brokers' logger: nil (discard) unless KBROKER_TEST_LOG
// asks for the logs on stderr.
func testLogger() *slog.Logger {
	if os.Getenv("KBROKER_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
