package main

// Child process management: every broker under test runs as its own process so
// that start-up time and memory belong to that broker alone.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// brokerSpec says how to start one broker under test.
type brokerSpec struct {
	Name string
	Bin  string
	// Args returns the command line for a broker listening on
	// 127.0.0.1:port, keeping its files (if any) in dataDir.
	Args func(port int, dataDir string) []string
	// Null is the null broker: no groups, no transactions, no cluster.
	Null bool
}

func kbrokerSpec(bin string) brokerSpec {
	return brokerSpec{
		Name: "kbroker",
		Bin:  bin,
		Args: func(port int, dataDir string) []string {
			return []string{
				"--data-dir", dataDir,
				"--override", fmt.Sprintf("listeners=PLAINTEXT://127.0.0.1:%d", port),
				"--override", "group.initial.rebalance.delay.ms=0",
				"--override", "http.listener=127.0.0.1:0", // metrics on a free port: parallel runs do not clash
			}
		},
	}
}

// kfakeSpec re-executes this binary with the hidden serve-kfake subcommand.
func kfakeSpec(self string, disk bool) brokerSpec {
	name := "kfake-mem"
	if disk {
		name = "kfake-disk"
	}
	return brokerSpec{
		Name: name,
		Bin:  self,
		Args: func(port int, dataDir string) []string {
			args := []string{"serve-kfake", "-port", strconv.Itoa(port)}
			if disk {
				args = append(args, "-data-dir", dataDir)
			}
			return args
		},
	}
}

// nullSpec re-executes this binary with the hidden serve-null subcommand.
func nullSpec(self string) brokerSpec {
	return brokerSpec{
		Name: "null",
		Bin:  self,
		Args: func(port int, _ string) []string { return []string{"serve-null", "-port", strconv.Itoa(port)} },
		Null: true,
	}
}

// buildKbroker compiles the kbroker command in its own module (go build
// refuses package paths outside the current module, so run it from src).
func buildKbroker(ctx context.Context, src, out string) error {
	abs, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, ".")
	cmd.Dir = abs
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build in %s: %v\n%s", abs, err, strings.TrimSpace(buf.String()))
	}
	return nil
}

// child is one running broker process.
type child struct {
	name    string
	cmd     *exec.Cmd
	addr    string
	dataDir string
	logPath string
	logFile *os.File
	done    chan struct{} // closed when the process has exited
	started time.Time     // just before exec
}

// startChild execs the broker in a fresh data directory under tmp, in its own
// process group so stop can kill anything it spawned.
func startChild(spec brokerSpec, tmp string) (*child, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dataDir, err := os.MkdirTemp(tmp, spec.Name+"-data-")
	if err != nil {
		return nil, err
	}
	logFile, err := os.CreateTemp(tmp, spec.Name+"-*.log")
	if err != nil {
		return nil, err
	}
	logFile.Close()
	c, err := startProc(spec.Name, spec.Bin, spec.Args(port, dataDir), net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dataDir, logFile.Name())
	if err != nil {
		os.RemoveAll(dataDir)
		os.Remove(logFile.Name())
	}
	return c, err
}

// startProc execs bin with args in its own process group, appending its
// output to logPath (so a restarted cluster node keeps one log). addr is
// where it will listen; dataDir is removed by stop, not by kill.
func startProc(name, bin string, args []string, addr, dataDir, logPath string) (*child, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Pdeathsig: if the harness itself dies, the broker goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	c := &child{
		name:    name,
		cmd:     cmd,
		addr:    addr,
		dataDir: dataDir,
		logPath: logPath,
		logFile: logFile,
		done:    make(chan struct{}),
	}
	c.started = time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	go func() {
		cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// kill sends SIGKILL to the process group and waits for the process,
// keeping its data directory and log (a cluster node is restarted on them).
func (c *child) kill() {
	syscall.Kill(-c.pid(), syscall.SIGKILL)
	<-c.done
	c.logFile.Close()
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop asks the broker to shut down, kills it after a grace period, and
// removes its data directory and log.
func (c *child) stop() {
	pgid := c.pid()
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		fmt.Fprintf(os.Stderr, "bench: %s did not exit within 5s of SIGTERM, killing\n", c.name)
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-c.done
	}
	// Anything left in the group (grandchildren) goes too.
	syscall.Kill(-pgid, syscall.SIGKILL)
	c.logFile.Close()
	os.RemoveAll(c.dataDir)
	os.Remove(c.logPath)
}

// exited reports whether the process is gone, with the tail of its output.
func (c *child) exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("%s exited (%v); last output:\n%s", c.name, c.cmd.ProcessState, c.logTail(2000))
	default:
		return nil
	}
}

func (c *child) logTail(n int) string {
	b, _ := os.ReadFile(c.logPath)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// memStats reads the resident set size and its high-water mark, in bytes.
func memStats(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseMemStatus(string(b))
}

// cpuTime is the CPU time the process's threads have run so far: the sum of
// the first field of each /proc/<pid>/task/*/schedstat, in nanoseconds
// (/proc/<pid>/stat counts in 10 ms ticks, too coarse for one bench phase).
// A thread that exits takes its time with it; Go rarely ends threads.
func cpuTime(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("no threads of pid %d in /proc: %v", pid, err)
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread ended meanwhile
		}
		ns, err := parseSchedstat(string(b))
		if err != nil {
			return 0, fmt.Errorf("%s: %w", t, err)
		}
		sum += ns
	}
	return sum, nil
}

// cpuMeter measures a broker's CPU time over one phase.
type cpuMeter struct {
	pid   int
	start time.Duration
	err   error
}

func startCPU(pid int) cpuMeter {
	t, err := cpuTime(pid)
	return cpuMeter{pid: pid, start: t, err: err}
}

// perRecordUs is the CPU the broker spent since startCPU, in µs per record;
// 0 (and the error handed to fail) if it could not be read.
func (m cpuMeter) perRecordUs(records int, fail func(string, error)) float64 {
	end, err := cpuTime(m.pid)
	if err = errors.Join(m.err, err); err != nil {
		fail("broker CPU", err)
		return 0
	}
	if records == 0 {
		return 0
	}
	return float64(end-m.start) / 1e3 / float64(records)
}

// parseSchedstat reads the run time, the first of schedstat's three fields.
func parseSchedstat(s string) (time.Duration, error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return 0, fmt.Errorf("schedstat %q: want 3 fields", s)
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	return time.Duration(ns), err
}

func parseMemStatus(status string) (rss, hwm int64, err error) {
	for _, line := range strings.Split(status, "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse %s: %v", key, err)
		}
		if key == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	if rss == 0 {
		return 0, 0, errors.New("no VmRSS in /proc status")
	}
	return rss, hwm, nil
}

// freePort asks the kernel for an unused port; the tiny window before the
// broker binds it again is acceptable on a quiet machine.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// serveKfake is the hidden subcommand behind kfake-mem and kfake-disk: one
// kfake broker on 127.0.0.1:port, or with -ports a cluster of one broker per
// port in this one process, until SIGTERM.
func serveKfake(args []string) int {
	fs := flag.NewFlagSet("serve-kfake", flag.ExitOnError)
	port := fs.Int("port", 0, "port to listen on (127.0.0.1)")
	portList := fs.String("ports", "", "comma-separated ports, one broker each (instead of -port)")
	dataDir := fs.String("data-dir", "", "persist to this directory (empty: in memory)")
	fs.Parse(args)

	ports := []int{*port}
	if *portList != "" {
		ports = ports[:0]
		for _, p := range strings.Split(*portList, ",") {
			n, err := strconv.Atoi(p)
			if err != nil {
				fmt.Fprintln(os.Stderr, "kfake: -ports:", err)
				return 1
			}
			ports = append(ports, n)
		}
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(len(ports)),
		kfake.Ports(ports...),
		kfake.AllowAutoTopicCreation(),
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	<-sigs
	c.Close()
	return 0
}
