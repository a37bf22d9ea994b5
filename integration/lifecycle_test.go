package integration

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// lockedBuffer collects a process's stderr while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startConfiguredProcess runs kbroker configured through the environment
// the way an apache/kafka container is (KAFKA_LISTENERS,
// KAFKA_HTTP_LISTENER), logging at info into the returned buffer.
func startConfiguredProcess(t *testing.T, dataDir, addr, httpAddr string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	cmd := exec.Command(kbrokerBinary(t), "--data-dir", dataDir, "--log-format", "text")
	cmd.Env = append(os.Environ(), "KAFKA_LISTENERS=PLAINTEXT://"+addr, "KAFKA_HTTP_LISTENER="+httpAddr,
		"KAFKA_NUM_PARTITIONS=1", "KAFKA_HEAP_OPTS=-Xmx1G")
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	// The listeners are bound before the log directory loads, so a
	// connection does not mean the start is over: wait for its last line.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "kbroker started") {
		if time.Now().After(deadline) {
			t.Fatalf("broker did not start in 20 s:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cmd, logs
}

// healthcheck runs `kbroker healthcheck` as a container would, with the
// broker's environment.
func runHealthcheck(t *testing.T, httpAddr string) (int, string) {
	t.Helper()
	cmd := exec.Command(kbrokerBinary(t), "healthcheck", "--timeout", "2s")
	cmd.Env = append(os.Environ(), "KAFKA_HTTP_LISTENER="+httpAddr)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// A broker process configured from the environment answers the healthcheck;
// SIGTERM stops it with exit 0 after a clean shutdown; the restart finds the
// clean-shutdown marker (no recovery) and every acknowledged record.
func TestProcessHealthcheckAndGracefulShutdown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr, httpAddr := freeAddr(t), freeAddr(t)
	cmd, logs := startConfiguredProcess(t, dir, addr, httpAddr)

	if code, out := runHealthcheck(t, httpAddr); code != 0 {
		t.Fatalf("healthcheck of a running broker: exit %d: %s", code, out)
	}
	ms := scrape(t, httpAddr)
	if v, _ := ms.value("kbroker_build_info"); v != 1 {
		t.Errorf("kbroker_build_info missing from the process's /metrics")
	}
	// The process serves prometheus' default registry: the Go and process
	// collectors are there once, beside the broker's own.
	ms.expectAtLeast(t, 1, "go_goroutines")
	ms.expectAtLeast(t, 1, "process_resident_memory_bytes")
	if !strings.Contains(logs.String(), "kbroker started") || !strings.Contains(logs.String(), "version=") {
		t.Errorf("no start line with the version:\n%s", logs)
	}

	const n = 200
	cl := newClient(t, addr, kgo.DefaultProduceTopic("durable"), kgo.AllowAutoTopicCreation(),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite())
	var rs []*kgo.Record
	for i := range n {
		rs = append(rs, &kgo.Record{Value: value(i)})
	}
	produceSync(t, cl, rs...)
	cl.Close()

	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit 20 s after SIGTERM\n%s", logs)
	}
	if out := logs.String(); !strings.Contains(out, "shutting down") || !strings.Contains(out, "kbroker stopped") {
		t.Errorf("shutdown not logged:\n%s", out)
	}
	if code, _ := runHealthcheck(t, httpAddr); code != 1 {
		t.Errorf("healthcheck of a stopped broker: exit %d, want 1", code)
	}

	addr2, httpAddr2 := freeAddr(t), freeAddr(t)
	_, logs2 := startConfiguredProcess(t, dir, addr2, httpAddr2)
	if out := logs2.String(); !strings.Contains(out, "clean_shutdown=true") {
		t.Errorf("restart after SIGTERM does not find the clean-shutdown marker:\n%s", out)
	}
	got := consumeN(t, addr2, "durable", n)
	for i, r := range got[:n] {
		if r.Offset != int64(i) || string(r.Value) != string(value(i)) {
			t.Fatalf("record %d after restart: offset %d value %q", i, r.Offset, r.Value)
		}
	}
	if len(got) != n {
		t.Errorf("%d records after restart, want %d", len(got), n)
	}
	scrape(t, httpAddr2).expect(t, n, "kafka_topic_partition_current_offset", "topic", "durable", "partition", "0")
}
