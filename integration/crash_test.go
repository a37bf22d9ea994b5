package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The broker as a separate process, so a test can kill -9 it.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// kbrokerBinary builds cmd/kbroker once per test run.
func kbrokerBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kbroker-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "kbroker")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/kbroker/kbroker/cmd/kbroker").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type brokerProcess struct {
	cmd  *exec.Cmd
	addr string
}

// startProcess runs kbroker on dataDir at a free 127.0.0.1 port and waits
// until it accepts connections.
func startProcess(t testing.TB, dataDir string, extra ...string) *brokerProcess {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	args := append([]string{"--data-dir", dataDir, "--log-level", "warn", "--override", "listeners=PLAINTEXT://" + addr}, extra...)
	cmd := exec.Command(kbrokerBinary(t), args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &brokerProcess{cmd: cmd, addr: addr}
	t.Cleanup(func() { p.kill() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker at %s did not start: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *brokerProcess) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
	}
}

// Kill -9 the broker while producers are writing; after restart every
// acknowledged record is at the offset it was acknowledged with, and the
// log reads back cleanly (no torn batch is served). With the default fsync
// policy (leave it to the OS) acknowledged data is in the page cache, which
// a process crash does not lose.
func TestCrashKeepsAcknowledgedRecords(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startProcess(t, dir, "--override", "log.segment.bytes=65536")
	cl := newClient(t, p.addr, kgo.DefaultProduceTopic("crash"), kgo.AllowAutoTopicCreation(),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite(), kgo.ProducerLinger(0),
		kgo.RecordRetries(0), kgo.RecordDeliveryTimeout(3*time.Second))
	produceSync(t, cl, &kgo.Record{Value: []byte("warm-up")})

	var (
		mu    sync.Mutex
		acked = map[string]int64{} // value → offset
	)
	produceCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000 && produceCtx.Err() == nil; i++ {
				v := fmt.Sprintf("w%d-%07d-%s", w, i, make([]byte, 200))
				cl.Produce(produceCtx, &kgo.Record{Value: []byte(v)}, func(r *kgo.Record, err error) {
					if err == nil {
						mu.Lock()
						acked[string(r.Value)] = r.Offset
						mu.Unlock()
					}
				})
			}
		}()
	}
	// Kill once enough is acknowledged to cross several segments.
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 3000 || produceCtx.Err() != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.kill()
	cancel()
	wg.Wait()
	cl.Close()

	mu.Lock()
	defer mu.Unlock()
	if len(acked) < 1000 {
		t.Fatalf("only %d records acknowledged before the kill", len(acked))
	}

	p = startProcess(t, dir)
	end := newClient(t, p.addr)
	offsets, err := kadm.NewClient(end).ListEndOffsets(ctx(t), "crash")
	if err != nil {
		t.Fatal(err)
	}
	o, _ := offsets.Lookup("crash", 0)
	got := consumeN(t, p.addr, "crash", int(o.Offset))
	byValue := map[string]int64{}
	for i, r := range got {
		if r.Offset != int64(i) {
			t.Fatalf("record %d has offset %d: the log has a hole", i, r.Offset)
		}
		byValue[string(r.Value)] = r.Offset
	}
	for v, off := range acked {
		if got, ok := byValue[v]; !ok || got != off {
			t.Fatalf("acknowledged record at offset %d lost or moved (found: %v at %d)", off, ok, got)
		}
	}
	t.Logf("%d acknowledged records, %d in the log after kill -9 and restart", len(acked), len(got))
}
