package compat

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kbroker/kbroker/broker"
)

// startBroker starts an in-process kbroker on 127.0.0.1:0 with its data in a
// temporary directory, stopped at cleanup, and returns its address.
func startBroker(t testing.TB) string {
	t.Helper()
	cfg, err := broker.ParseConfig(map[string]string{
		"listeners":                        "PLAINTEXT://127.0.0.1:0",
		"log.dirs":                         t.TempDir(),
		"http.listener":                    "",
		"group.initial.rebalance.delay.ms": "0",
		"group.min.session.timeout.ms":     "1000",
	})
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
	return srv.Addr()
}

// newConfig is the sarama configuration every test starts from: a version
// recent enough for JoinGroup v5+ (static membership, KIP-345), a short
// session so a lost member is noticed within a test, errors returned on the
// group's Errors channel, and offsets committed every 100ms.
func newConfig(instanceID string) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_0_0_0
	cfg.ClientID = "kbroker-compat"
	cfg.Consumer.Group.InstanceId = instanceID
	cfg.Consumer.Group.Session.Timeout = 6 * time.Second
	cfg.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	cfg.Consumer.Group.Rebalance.Timeout = 10 * time.Second
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
	cfg.Consumer.Return.Errors = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Metadata.Retry.Backoff = 50 * time.Millisecond
	return cfg
}

func createTopic(t testing.TB, addr, topic string, partitions int32) {
	t.Helper()
	admin, err := sarama.NewClusterAdmin([]string{addr}, newConfig(""))
	if err != nil {
		t.Fatalf("admin: %v", err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// sessionEvent is one Setup or Cleanup of a member's group session.
type sessionEvent struct {
	member     string
	setup      bool // false: Cleanup
	memberID   string
	generation int32
	claims     []int32 // of the test's topic, as sarama sorts them
}

func (e sessionEvent) String() string {
	kind := "cleanup"
	if e.setup {
		kind = "setup"
	}
	return fmt.Sprintf("%s %s gen %d %v", e.member, kind, e.generation, e.claims)
}

// record is a consumed message.
type record struct {
	partition int32
	offset    int64
	value     string
}

// handler reports every session's Setup and Cleanup on events and every
// message on records (when not nil), marking each message consumed.
type handler struct {
	member  string
	topic   string
	events  chan<- sessionEvent
	records chan<- record
}

func (h *handler) event(s sarama.ConsumerGroupSession, setup bool) {
	h.events <- sessionEvent{h.member, setup, s.MemberID(), s.GenerationID(), s.Claims()[h.topic]}
}

func (h *handler) Setup(s sarama.ConsumerGroupSession) error   { h.event(s, true); return nil }
func (h *handler) Cleanup(s sarama.ConsumerGroupSession) error { h.event(s, false); return nil }

func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-c.Messages():
			if !ok {
				return nil
			}
			if h.records != nil {
				select {
				case h.records <- record{m.Partition, m.Offset, string(m.Value)}:
				case <-s.Context().Done():
					return nil
				}
			}
			s.MarkMessage(m, "")
		case <-s.Context().Done():
			return nil
		}
	}
}

// member is one running sarama consumer group client: Consume in a loop
// until the loop's context ends, Consume returns an error other than a
// rebalance's, or the group is closed.
type member struct {
	name   string
	group  sarama.ConsumerGroup
	cancel context.CancelFunc
	done   chan struct{}
	err    error // what ended the loop; read after done
	errs   chan error
	once   sync.Once // close runs once
}

// startMember starts a group member named name (its instance id when static
// is true). Setup and Cleanup are reported on events, messages on records.
// The member is closed at cleanup if the test did not close it.
func startMember(t testing.TB, addr, groupID, topic, name string, static bool, events chan<- sessionEvent, records chan<- record) *member {
	t.Helper()
	instanceID := ""
	if static {
		instanceID = name
	}
	g, err := sarama.NewConsumerGroup([]string{addr}, groupID, newConfig(instanceID))
	if err != nil {
		t.Fatalf("consumer group %s: %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{name: name, group: g, cancel: cancel, done: make(chan struct{}), errs: make(chan error, 16)}
	// The group's Errors channel must be drained; the first few are kept.
	go func() {
		for err := range g.Errors() {
			select {
			case m.errs <- err:
			default:
			}
		}
	}()
	h := &handler{member: name, topic: topic, events: events, records: records}
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			if err := g.Consume(ctx, []string{topic}, h); err != nil {
				m.err = err
				return
			}
		}
	}()
	t.Cleanup(func() { m.close(t) })
	return m
}

// close stops the Consume loop and closes the client: for a static member
// sarama sends no LeaveGroup (KIP-345: its session simply stops), for a
// dynamic one it does. Offsets marked so far are committed first.
func (m *member) close(t testing.TB) {
	t.Helper()
	m.once.Do(func() { m.closeNow(t) })
}

func (m *member) closeNow(t testing.TB) {
	t.Helper()
	m.cancel()
	if err := m.group.Close(); err != nil {
		t.Errorf("close %s: %v", m.name, err)
	}
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		t.Errorf("%s: Consume did not return within 10s of Close", m.name)
	}
}

// waitEvent returns the next event for which ok is true, failing the test
// at the deadline. Events that do not match are returned in skipped.
func waitEvent(t testing.TB, events <-chan sessionEvent, timeout time.Duration, what string, ok func(sessionEvent) bool) (ev sessionEvent, skipped []sessionEvent) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-events:
			if ok(ev) {
				return ev, skipped
			}
			skipped = append(skipped, ev)
		case <-deadline:
			t.Fatalf("no %s within %v; events seen: %v", what, timeout, skipped)
		}
	}
}
