package integration

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kbroker/kbroker/broker"
)

// testBroker is an in-process broker on 127.0.0.1:0 with its data in a
// temporary directory.
type testBroker struct {
	*broker.Server
	dir   string
	props map[string]string
}

// startBroker starts a broker for the test and stops it at cleanup. props
// override broker configs by their Kafka names.
func startBroker(t testing.TB, props map[string]string) *testBroker {
	t.Helper()
	return startBrokerIn(t, t.TempDir(), props)
}

// startBrokerIn starts a broker on dir, e.g. again after a restart.
func startBrokerIn(t testing.TB, dir string, props map[string]string) *testBroker {
	t.Helper()
	all := map[string]string{"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": dir, "http.listener": "127.0.0.1:0"}
	for k, v := range props {
		all[k] = v
	}
	cfg, err := broker.ParseConfig(all)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if os.Getenv("KBROKER_TEST_LOG") != "" { // broker logs on stderr, for debugging a test
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := broker.Start(cfg)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return &testBroker{Server: srv, dir: dir, props: props}
}

// restart closes the broker and starts a new one on the same data dir (and a
// new port).
func (b *testBroker) restart(t testing.TB) *testBroker {
	t.Helper()
	if err := b.Close(); err != nil {
		t.Fatalf("close broker: %v", err)
	}
	return startBrokerIn(t, b.dir, b.props)
}

// restartSamePort restarts the broker on its data dir and its port, so
// connected clients reconnect to it.
func (b *testBroker) restartSamePort(t testing.TB) *testBroker {
	t.Helper()
	addr := b.Addr()
	if err := b.Close(); err != nil {
		t.Fatalf("close broker: %v", err)
	}
	props := map[string]string{"listeners": "PLAINTEXT://" + addr}
	for k, v := range b.props {
		props[k] = v
	}
	nb := startBrokerIn(t, b.dir, props)
	nb.props = b.props
	return nb
}

// client returns a kgo client for the broker, closed at cleanup.
func (b *testBroker) client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return newClient(t, b.Addr(), opts...)
}

func newClient(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.RetryTimeout(5 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// admin returns a kadm client for the broker.
func (b *testBroker) admin(t testing.TB) *kadm.Client {
	t.Helper()
	return kadm.NewClient(b.client(t))
}

// ctx is a per-test context bounded so a hung broker fails the test instead
// of the whole run.
func ctx(t testing.TB) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// createTopic creates a topic through kadm and fails the test on error.
func createTopic(t testing.TB, adm *kadm.Client, topic string, partitions int32, configs map[string]*string) {
	t.Helper()
	resp, err := adm.CreateTopic(ctx(t), partitions, 1, configs, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create topic %s: %v / %v", topic, err, resp.Err)
	}
}

// produceSync produces records and fails the test on any error.
func produceSync(t testing.TB, cl *kgo.Client, rs ...*kgo.Record) {
	t.Helper()
	if err := cl.ProduceSync(ctx(t), rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// consumeN reads n records from topic from the start with a fresh client.
func consumeN(t testing.TB, addr, topic string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl := newClient(t, addr, append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	c := ctx(t)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(c)
		if err := c.Err(); err != nil {
			t.Fatalf("consume %s: got %d of %d records: %v", topic, len(out), n, err)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("consume %s/%d: %v", topic, p, err)
		})
		out = append(out, fs.Records()...)
	}
	return out
}

func value(i int) []byte { return []byte(fmt.Sprintf("value-%06d", i)) }

// hasConfig reports whether configs holds key=value.
func hasConfig(configs []kadm.Config, key, value string) bool {
	for _, c := range configs {
		if c.Key == key && c.Value != nil && *c.Value == value {
			return true
		}
	}
	return false
}

// topicID looks a topic's id up, for requests that address topics by id.
func topicID(t testing.TB, adm *kadm.Client, topic string) [16]byte {
	t.Helper()
	td, err := adm.ListTopics(ctx(t), topic)
	if err != nil || td[topic].Err != nil {
		t.Fatalf("metadata for %s: %v %v", topic, err, td[topic].Err)
	}
	return td[topic].ID
}
