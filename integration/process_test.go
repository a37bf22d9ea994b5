package integration

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The broker as a separate process: for crash tests (kill -9) and for the
// command line itself.

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
	cmd      *exec.Cmd
	addr     string
	httpAddr string // http.listener
}

var (
	portsMu sync.Mutex
	ports   = map[int]bool{} // handed out by freeAddr in this run
)

// freeAddr returns a 127.0.0.1 address with a port free a moment ago,
// below the ephemeral range (so that no test's outgoing connection takes
// it before the broker binds it) and never handed out before in this run.
func freeAddr(t testing.TB) string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		p := 20000 + rand.IntN(12000)
		if ports[p] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		ln.Close()
		ports[p] = true
		return ln.Addr().String()
	}
	t.Fatal("no free port in 20000-31999")
	return ""
}

// startProcess runs kbroker on dataDir at a free 127.0.0.1 port (and its
// HTTP endpoint at another) and waits until it accepts connections.
func startProcess(t testing.TB, dataDir string, extra ...string) *brokerProcess {
	t.Helper()
	return startProcessAt(t, dataDir, freeAddr(t), freeAddr(t), extra...)
}

// startProcessAt is startProcess on given addresses, e.g. those of a
// killed broker, so that its clients find it again.
func startProcessAt(t testing.TB, dataDir, addr, httpAddr string, extra ...string) *brokerProcess {
	t.Helper()
	args := append([]string{"--data-dir", dataDir, "--log-level", "warn", "--override", "listeners=PLAINTEXT://" + addr,
		"--override", "http.listener=" + httpAddr}, extra...)
	cmd := exec.Command(kbrokerBinary(t), args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &brokerProcess{cmd: cmd, addr: addr, httpAddr: httpAddr}
	t.Cleanup(func() { p.kill() })
	waitListening(t, addr)
	return p
}

// waitListening waits until addr accepts connections.
func waitListening(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
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

// SIGTERM shuts the broker down cleanly (exit 0); --ephemeral removes its
// temporary data directory at exit; the next start on a kept directory
// finds everything.
func TestProcessSignalsAndEphemeral(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(kbrokerBinary(t), "--ephemeral", "--override", "listeners=PLAINTEXT://"+addr, "--override", "http.listener=")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitListening(t, addr)
	cl := newClient(t, addr, kgo.AllowAutoTopicCreation())
	produceSync(t, cl, &kgo.Record{Topic: "eph", Value: []byte("x")})
	if entries, _ := os.ReadDir(tmp); len(entries) != 1 {
		t.Fatalf("want one ephemeral data dir in %s, have %d entries", tmp, len(entries))
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Fatalf("ephemeral data dir left behind: %v", entries)
	}
}
