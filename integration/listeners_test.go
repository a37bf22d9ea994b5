package integration

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// advertisedBroker asks the broker, through a client seeded at addr, which
// address it advertises, by Metadata, DescribeCluster and FindCoordinator.
func advertisedBroker(t *testing.T, addr string) (metadata, cluster, coordinator string) {
	t.Helper()
	cl := newClient(t, addr)
	adm := kadm.NewClient(cl)
	md, err := adm.BrokerMetadata(ctx(t))
	if err != nil || len(md.Brokers) != 1 {
		t.Fatalf("metadata via %s: %v %v", addr, md.Brokers, err)
	}
	b := md.Brokers[0]
	metadata = net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
	dc, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx(t), cl)
	if err != nil || len(dc.Brokers) != 1 {
		t.Fatalf("describe cluster via %s: %v %v", addr, dc, err)
	}
	cluster = net.JoinHostPort(dc.Brokers[0].Host, strconv.Itoa(int(dc.Brokers[0].Port)))
	for _, c := range adm.FindGroupCoordinators(ctx(t), "listeners-group") {
		if c.Err != nil {
			t.Fatalf("find coordinator via %s: %v", addr, c.Err)
		}
		coordinator = net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port)))
	}
	return metadata, cluster, coordinator
}

// listenerAddrs maps the broker's bound listeners by name.
func listenerAddrs(t *testing.T, addrs []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range addrs {
		name, addr, _ := strings.Cut(a, "://")
		out[name] = addr
	}
	return out
}

// Two named listeners, as a compose file has for other containers and for
// the host: a client learns the advertised address of the listener it came
// in through, by Metadata, DescribeCluster and FindCoordinator, and both
// reach the same data. The controller listener is not bound.
func TestNamedListeners(t *testing.T) {
	t.Parallel()
	b := startBroker(t, map[string]string{
		"listeners":                      "INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.1:0,CONTROLLER://127.0.0.1:0",
		"advertised.listeners":           "INTERNAL://127.0.0.1:0,EXTERNAL://localhost:0",
		"listener.security.protocol.map": "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
		"controller.listener.names":      "CONTROLLER",
		"inter.broker.listener.name":     "INTERNAL",
		"process.roles":                  "broker,controller",
		"node.id":                        "3",
	})
	addrs := listenerAddrs(t, b.Addrs())
	if len(addrs) != 2 || addrs["INTERNAL"] == "" || addrs["EXTERNAL"] == "" {
		t.Fatalf("bound listeners %v, want INTERNAL and EXTERNAL only", b.Addrs())
	}
	_, externalPort, _ := net.SplitHostPort(addrs["EXTERNAL"])
	for name, want := range map[string]string{
		"INTERNAL": addrs["INTERNAL"],
		"EXTERNAL": net.JoinHostPort("localhost", externalPort),
	} {
		md, dc, fc := advertisedBroker(t, addrs[name])
		if md != want || dc != want || fc != want {
			t.Errorf("via %s: metadata %s, describe cluster %s, coordinator %s; want %s for all", name, md, dc, fc, want)
		}
	}

	// What one listener's client writes the other's reads.
	internal := newClient(t, addrs["INTERNAL"], kgo.AllowAutoTopicCreation())
	produceSync(t, internal, &kgo.Record{Topic: "two-listeners", Value: []byte("from inside")})
	if got := consumeN(t, net.JoinHostPort("localhost", externalPort), "two-listeners", 1); string(got[0].Value) != "from inside" {
		t.Errorf("read %q via EXTERNAL", got[0].Value)
	}

	ms := scrape(t, b.HTTPAddr())
	ms.expectAtLeast(t, 1, "kbroker_connections_accepted_total", "listener", "INTERNAL")
	ms.expectAtLeast(t, 1, "kbroker_connections_accepted_total", "listener", "EXTERNAL")
	ms.expect(t, 1, "kafka_brokers")
}

// The environment of Apache Kafka's own single-node docker-compose example
// (docker/examples: a PLAINTEXT listener for other containers, PLAINTEXT_HOST
// for the host, a KRaft CONTROLLER listener) starts the kbroker command
// unchanged apart from addresses this test can bind: the image swap the
// README promises.
func TestProcessWithKafkaComposeEnvironment(t *testing.T) {
	t.Parallel()
	hostAddr, containerAddr, controllerAddr, httpAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	port := func(a string) string { _, p, _ := net.SplitHostPort(a); return p }
	cmd := exec.Command(kbrokerBinary(t))
	cmd.Env = append(os.Environ(),
		"KAFKA_NODE_ID=1",
		"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=CONTROLLER:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT,PLAINTEXT:PLAINTEXT",
		"KAFKA_ADVERTISED_LISTENERS=PLAINTEXT_HOST://localhost:"+port(hostAddr)+",PLAINTEXT://127.0.0.1:"+port(containerAddr),
		"KAFKA_PROCESS_ROLES=broker,controller",
		"KAFKA_CONTROLLER_QUORUM_VOTERS=1@127.0.0.1:"+port(controllerAddr),
		"KAFKA_LISTENERS=CONTROLLER://127.0.0.1:"+port(controllerAddr)+",PLAINTEXT_HOST://127.0.0.1:"+port(hostAddr)+",PLAINTEXT://127.0.0.1:"+port(containerAddr),
		"KAFKA_INTER_BROKER_LISTENER_NAME=PLAINTEXT",
		"KAFKA_CONTROLLER_LISTENER_NAMES=CONTROLLER",
		"CLUSTER_ID=4L6g3nShT-eMCtK--X86sw",
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=1",
		"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS=0",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR=1",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR=1",
		"KAFKA_LOG_DIRS="+t.TempDir(),
		"KAFKA_HTTP_LISTENER="+httpAddr,
	)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &brokerProcess{cmd: cmd, addr: hostAddr, httpAddr: httpAddr}
	t.Cleanup(p.kill)
	waitListening(t, hostAddr)
	waitListening(t, containerAddr)

	for addr, want := range map[string]string{
		hostAddr:      net.JoinHostPort("localhost", port(hostAddr)),
		containerAddr: containerAddr,
	} {
		if md, _, _ := advertisedBroker(t, addr); md != want {
			t.Errorf("via %s: advertised %s, want %s", addr, md, want)
		}
	}
	cl := newClient(t, net.JoinHostPort("localhost", port(hostAddr)), kgo.AllowAutoTopicCreation())
	if md, err := kadm.NewClient(cl).BrokerMetadata(ctx(t)); err != nil || md.Cluster != "4L6g3nShT-eMCtK--X86sw" {
		t.Errorf("cluster id %q (%v), want CLUSTER_ID's", md.Cluster, err)
	}
	produceSync(t, cl, &kgo.Record{Topic: "compose", Value: []byte("v")})
	if got := consumeN(t, containerAddr, "compose", 1); string(got[0].Value) != "v" {
		t.Errorf("read %q", got[0].Value)
	}
	if c, err := net.DialTimeout("tcp", controllerAddr, time.Second); err == nil {
		c.Close()
		t.Errorf("the controller listener %s accepts connections", controllerAddr)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, &stderr)
	}
	// Every key of the example is known: no warnings.
	if strings.Contains(stderr.String(), "level=WARN") {
		t.Errorf("warnings at start:\n%s", &stderr)
	}
}
