package compat

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kbroker/kbroker/broker"
)

// startCluster starts three in-process kbroker nodes on 127.0.0.1 as one
// replicated cluster (combined broker+controller nodes; failover within
// about a second) and returns their servers, stopped at cleanup, and their
// configs, to start a stopped one again.
func startCluster(t *testing.T) ([]*broker.Server, []broker.Config) {
	t.Helper()
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	const n = 3
	var addrs, ctls, voters []string
	for i := range n {
		addrs, ctls = append(addrs, free()), append(ctls, free())
		voters = append(voters, fmt.Sprintf("%d@%s", i+1, ctls[i]))
	}
	srvs := make([]*broker.Server, n)
	cfgs := make([]broker.Config, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { // each node waits for a quorum: start them together
			defer wg.Done()
			cfg, err := broker.ParseConfig(map[string]string{
				"node.id":                          fmt.Sprint(i + 1),
				"listeners":                        "PLAINTEXT://" + addrs[i] + ",CONTROLLER://" + ctls[i],
				"controller.listener.names":        "CONTROLLER",
				"controller.quorum.voters":         strings.Join(voters, ","),
				"log.dirs":                         t.TempDir(),
				"http.listener":                    "",
				"broker.session.timeout.ms":        "1500",
				"broker.heartbeat.interval.ms":     "200",
				"default.replication.factor":       "3",
				"offsets.topic.replication.factor": "3",
				"group.initial.rebalance.delay.ms": "0",
			})
			if err == nil {
				cfgs[i] = cfg
				srvs[i], err = broker.Start(cfg)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, s := range srvs {
			if s != nil {
				s.Close()
			}
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i+1, err)
		}
	}
	return srvs, cfgs
}

// An idempotent sarama producer (acks=all) writes to a partition with three
// replicas while its leader is stopped midway: every record is stored once,
// in order. Offsets a group committed survive the stop of the coordinator.
func TestClusterFailoverWithSarama(t *testing.T) {
	srvs, cfgs := startCluster(t)
	seeds := []string{srvs[0].Addr(), srvs[1].Addr(), srvs[2].Addr()}
	stop := func(addr string) {
		for i, s := range srvs {
			if s != nil && s.Addr() == addr {
				s.Close()
				srvs[i] = nil
			}
		}
	}
	restart := func() {
		for i, s := range srvs {
			if s == nil {
				var err error
				if srvs[i], err = broker.Start(cfgs[i]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	admin, err := sarama.NewClusterAdmin(seeds, newConfig(""))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	minISR := "2"
	const topic = "replicated"
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 3,
		ConfigEntries: map[string]*string{"min.insync.replicas": &minISR}}, false); err != nil {
		t.Fatal(err)
	}

	cfg := producerConfig("")
	cfg.Producer.Retry.Max = 100
	cfg.Metadata.Retry.Max = 100
	var p sarama.SyncProducer
	if err := bounded(t, "NewSyncProducer", func() (err error) {
		p, err = sarama.NewSyncProducer(seeds, cfg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n = 400
	want := numbered("fo", 0, n)
	for i := range n / 2 {
		send(t, p, messages(topic, 0, want[i]))
	}
	client, err := sarama.NewClient(seeds, newConfig(""))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	leader, err := client.Leader(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	stop(leader.Addr())
	for i := n / 2; i < n; i++ {
		send(t, p, messages(topic, 0, want[i]))
	}
	live := slices.DeleteFunc(slices.Clone(seeds), func(a string) bool { return a == leader.Addr() })
	got := readUntil(t, live[0], topic, 0, sarama.ReadUncommitted, want[n-1])
	if !slices.Equal(values(got), want) {
		t.Fatalf("after failover the partition holds %d records, want %d in order, each once", len(got), n)
	}
	restart()

	// Committed offsets outlive the coordinator.
	mgr, err := sarama.NewOffsetManagerFromClient("failover-group", client)
	if err != nil {
		t.Fatal(err)
	}
	pom, err := mgr.ManagePartition(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	pom.MarkOffset(n, "")
	mgr.Commit()
	pom.Close()
	mgr.Close()
	coordinator, err := client.Coordinator("failover-group")
	if err != nil {
		t.Fatal(err)
	}
	stop(coordinator.Addr())
	left := slices.DeleteFunc(slices.Clone(seeds), func(a string) bool { return a == coordinator.Addr() })
	var off int64 = -1
	var last any
	deadline := time.Now().Add(waitFor)
	for off < 0 && time.Now().Before(deadline) {
		// A new admin each time: sarama's keeps the coordinator it found
		// first, and it is the one that stopped.
		admin2, err := sarama.NewClusterAdmin(left, newConfig(""))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := admin2.ListConsumerGroupOffsets("failover-group", map[string][]int32{topic: {0}})
		admin2.Close()
		last = err
		if err == nil {
			b := resp.GetBlock(topic, 0)
			last = b
			if b != nil && b.Err == sarama.ErrNoError && b.Offset >= 0 {
				off = b.Offset
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if off < 0 {
		t.Fatalf("no committed offset after the coordinator stopped: last answer %+v", last)
	}
	if off != n {
		t.Fatalf("committed offset %d after the coordinator stopped, want %d", off, n)
	}
}
