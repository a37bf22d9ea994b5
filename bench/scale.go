package main

// The scale section (-scale): how each cost grows with the number of
// partitions and of connections. Every step starts a fresh broker, so the
// steps do not share caches or memory.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type scaleConfig struct {
	partitions  []int // partition counts, one step each
	connections []int // connection counts, one step each
	topicSize   int   // partitions per topic
}

// scalePartitionStep is one broker at one partition count.
type scalePartitionStep struct {
	Partitions    int     `json:"partitions"`
	CreateMs      float64 `json:"create_ms"`       // CreateTopics of them all, in requests of 100 topics
	MetadataMs    float64 `json:"metadata_ms"`     // median of 5 Metadata requests for all topics
	RSSMiB        float64 `json:"rss_mib"`         // after the creation
	CleanStartMs  float64 `json:"clean_start_ms"`  // SIGTERM, then exec → first Metadata; 0: not measured
	CrashStartMs  float64 `json:"crash_start_ms"`  // SIGKILL, then exec → first Metadata; 0: not measured
	RestartRSSMiB float64 `json:"restart_rss_mib"` // after the crash restart
	Err           string  `json:"error,omitempty"`
}

// scaleConnStep is one broker with n client connections open.
type scaleConnStep struct {
	Connections int     `json:"connections"`
	OpenMs      float64 `json:"open_ms"`     // connect + ApiVersions + Metadata on each, all at once
	RSSMiB      float64 `json:"rss_mib"`     // with all of them open
	MetadataMs  float64 `json:"metadata_ms"` // median Metadata round trip of one more client meanwhile
	Err         string  `json:"error,omitempty"`
}

// benchScale runs the scale steps for one broker. restartable says the
// broker keeps its data across a restart (not kfake-mem).
func benchScale(ctx context.Context, cfg config, res *Result, spec brokerSpec, tmp string, restartable bool) {
	logf := func(format string, args ...any) { log.Printf(spec.Name+": scale: "+format, args...) }
	for _, n := range cfg.scale.partitions {
		if ctx.Err() != nil {
			return
		}
		st := scalePartitions(ctx, cfg, spec, tmp, n, restartable)
		if st.Err != "" {
			res.fail(fmt.Sprintf("scale, %d partitions", n), errors.New(st.Err))
			logf("%d partitions: %s", n, st.Err)
		} else {
			logf("%d partitions: create %.0f ms, metadata %.1f ms, RSS %.1f MiB, clean start %.1f ms, crash start %.1f ms",
				n, st.CreateMs, st.MetadataMs, st.RSSMiB, st.CleanStartMs, st.CrashStartMs)
		}
		res.ScalePartitions = append(res.ScalePartitions, st)
	}
	for _, n := range cfg.scale.connections {
		if ctx.Err() != nil {
			return
		}
		st := scaleConnections(ctx, cfg, spec, tmp, n)
		if st.Err != "" {
			res.fail(fmt.Sprintf("scale, %d connections", n), errors.New(st.Err))
			logf("%d connections: %s", n, st.Err)
		} else {
			logf("%d connections: open %.0f ms, RSS %.1f MiB, metadata %.2f ms", n, st.OpenMs, st.RSSMiB, st.MetadataMs)
		}
		res.ScaleConnections = append(res.ScaleConnections, st)
	}
}

func scalePartitions(ctx context.Context, cfg config, spec brokerSpec, tmp string, n int, restartable bool) (st scalePartitionStep) {
	st.Partitions = n
	fail := func(what string, err error) scalePartitionStep {
		st.Err = what + ": " + err.Error()
		return st
	}
	c, err := startChild(spec, tmp)
	if err != nil {
		return fail("start", err)
	}
	defer func() { c.stop() }()
	pctx, cancel := context.WithTimeout(ctx, 4*cfg.phaseTimeout)
	defer cancel()
	if _, err := waitReady(pctx, c); err != nil {
		return fail("start", err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.addr), kgo.RequestTimeoutOverhead(cfg.phaseTimeout))
	if err != nil {
		return fail("client", err)
	}
	defer cl.Close()
	topics := scaleTopics(n, cfg.scale.topicSize)
	began := time.Now()
	for chunk := range slices.Chunk(topics, 100) {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.TimeoutMillis = int32(cfg.phaseTimeout.Milliseconds())
		for _, t := range chunk {
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic, rt.NumPartitions, rt.ReplicationFactor = t.name, int32(t.partitions), 1
			req.Topics = append(req.Topics, rt)
		}
		resp, err := req.RequestWith(pctx, cl)
		if err != nil {
			return fail("create", err)
		}
		for _, t := range resp.Topics {
			if t.ErrorCode != 0 {
				return fail("create", fmt.Errorf("%s: error code %d", t.Topic, t.ErrorCode))
			}
		}
	}
	st.CreateMs = ms(time.Since(began))

	var runs []float64
	for range 5 {
		d, got, err := timeMetadata(pctx, cl)
		if err != nil {
			return fail("metadata", err)
		}
		if got != n {
			return fail("metadata", fmt.Errorf("%d partitions listed, want %d", got, n))
		}
		runs = append(runs, ms(d))
	}
	st.MetadataMs = median(runs)
	if rss, _, err := memStats(c.pid()); err == nil {
		st.RSSMiB = mib(rss)
	}
	cl.Close()
	if !restartable {
		return st
	}

	// A clean restart, then a crash and a restart: the first Metadata that
	// lists every partition is the start-up time.
	restart := func(stop func()) (float64, error) {
		stop()
		port, err := freePort()
		if err != nil {
			return 0, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		nc, err := startProc(spec.Name, spec.Bin, spec.Args(port, c.dataDir), addr, c.dataDir, c.logPath)
		if err != nil {
			return 0, err
		}
		c = nc
		d, err := waitPartitions(pctx, c, n)
		return ms(d), err
	}
	if st.CleanStartMs, err = restart(func() { c.terminate() }); err != nil {
		return fail("clean restart", err)
	}
	if st.CrashStartMs, err = restart(c.kill); err != nil {
		return fail("crash restart", err)
	}
	if rss, _, err := memStats(c.pid()); err == nil {
		st.RestartRSSMiB = mib(rss)
	}
	return st
}

type scaleTopic struct {
	name       string
	partitions int
}

// scaleTopics splits n partitions into topics of size partitions (the last
// one smaller).
func scaleTopics(n, size int) []scaleTopic {
	var ts []scaleTopic
	for i := 0; n > 0; i++ {
		p := min(n, size)
		ts = append(ts, scaleTopic{name: fmt.Sprintf("scale-%05d", i), partitions: p})
		n -= p
	}
	return ts
}

// timeMetadata times one Metadata request for all topics and counts the
// partitions it lists.
func timeMetadata(ctx context.Context, cl *kgo.Client) (time.Duration, int, error) {
	req := kmsg.NewPtrMetadataRequest()
	began := time.Now()
	resp, err := req.RequestWith(ctx, cl)
	d := time.Since(began)
	if err != nil {
		return 0, 0, err
	}
	n := 0
	for _, t := range resp.Topics {
		n += len(t.Partitions)
	}
	return d, n, nil
}

// waitPartitions is waitReady that also waits until Metadata lists n
// partitions: a broker that answers before it has loaded its logs is not
// started.
func waitPartitions(ctx context.Context, c *child, n int) (time.Duration, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.addr), kgo.RetryBackoffFn(func(int) time.Duration { return time.Millisecond }))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	for {
		_, got, err := timeMetadata(ctx, cl)
		if err == nil && got == n {
			return time.Since(c.started), nil
		}
		if exitErr := c.exited(); exitErr != nil {
			return 0, exitErr
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("Metadata never listed %d partitions: %v (last: %d, %v)", n, ctx.Err(), got, err)
		}
		time.Sleep(time.Millisecond)
	}
}

func scaleConnections(ctx context.Context, cfg config, spec brokerSpec, tmp string, n int) (st scaleConnStep) {
	st.Connections = n
	c, err := startChild(spec, tmp)
	if err != nil {
		st.Err = "start: " + err.Error()
		return st
	}
	defer c.stop()
	pctx, cancel := context.WithTimeout(ctx, 4*cfg.phaseTimeout)
	defer cancel()
	if _, err := waitReady(pctx, c); err != nil {
		st.Err = "start: " + err.Error()
		return st
	}
	if err := createTopic(pctx, c.addr, "scale-conns", 6); err != nil {
		st.Err = "create: " + err.Error()
		return st
	}

	// Each connection does what a client's first moments do: ApiVersions,
	// then Metadata; then it stays open and idle.
	conns := make([]net.Conn, n)
	defer func() {
		for _, nc := range conns {
			if nc != nil {
				nc.Close()
			}
		}
	}()
	errs := make(chan error, n)
	began := time.Now()
	for i := range conns {
		go func() {
			nc, err := (&net.Dialer{}).DialContext(pctx, "tcp", c.addr)
			if err == nil {
				conns[i] = nc
				err = handshake(nc)
			}
			errs <- err
		}()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	st.OpenMs = ms(time.Since(began))
	if first != nil {
		st.Err = "connections: " + first.Error()
		return st
	}
	if rss, _, err := memStats(c.pid()); err == nil {
		st.RSSMiB = mib(rss)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.addr))
	if err != nil {
		st.Err = err.Error()
		return st
	}
	defer cl.Close()
	var runs []float64
	for range 21 {
		d, _, err := timeMetadata(pctx, cl)
		if err != nil {
			st.Err = "metadata: " + err.Error()
			return st
		}
		runs = append(runs, ms(d))
	}
	st.MetadataMs = median(runs[1:]) // the first one connects
	return st
}

// handshake sends ApiVersions v3 and Metadata v12 (all topics) on nc and
// reads both answers.
func handshake(nc net.Conn) error {
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	defer nc.SetDeadline(time.Time{})
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("bench-scale"))
	av := kmsg.NewPtrApiVersionsRequest()
	av.SetVersion(3)
	av.ClientSoftwareName, av.ClientSoftwareVersion = "bench", "1"
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(12)
	for i, req := range []kmsg.Request{av, md} {
		if _, err := nc.Write(f.AppendRequest(nil, req, int32(i))); err != nil {
			return err
		}
		var size [4]byte
		if _, err := io.ReadFull(nc, size[:]); err != nil {
			return err
		}
		n := int(size[0])<<24 | int(size[1])<<16 | int(size[2])<<8 | int(size[3])
		if _, err := io.CopyN(io.Discard, nc, int64(n)); err != nil {
			return err
		}
	}
	return nil
}

// terminate asks the broker to stop and waits, keeping its data directory
// (stop removes it).
func (c *child) terminate() {
	syscall.Kill(-c.pid(), syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		syscall.Kill(-c.pid(), syscall.SIGKILL)
		<-c.done
	}
	c.logFile.Close()
}

// printScale prints the scale section: one table per curve, brokers side
// by side.
func printScale(w io.Writer, results []*Result) {
	var ran []*Result
	for _, r := range results {
		if len(r.ScalePartitions) > 0 || len(r.ScaleConnections) > 0 {
			ran = append(ran, r)
		}
	}
	if len(ran) == 0 {
		return
	}
	cell := func(v float64) string { return formatValue(v) }
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Scale: partitions (topics of 100 partitions, RF 1)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := []string{"broker", "partitions", "create ms", "metadata ms", "RSS MiB", "clean start ms", "crash start ms", "RSS after restart MiB"}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	var errs []string
	for _, r := range ran {
		for _, s := range r.ScalePartitions {
			if s.Err != "" {
				errs = append(errs, fmt.Sprintf("%s, %d partitions: %s", r.Broker, s.Partitions, s.Err))
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Broker, s.Partitions, cell(s.CreateMs), cell(s.MetadataMs), cell(s.RSSMiB),
				cell(s.CleanStartMs), cell(s.CrashStartMs), cell(s.RestartRSSMiB))
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Scale: idle client connections (each did ApiVersions + Metadata)")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "broker\tconnections\topen ms\tRSS MiB\tmetadata ms (one more client)")
	for _, r := range ran {
		for _, s := range r.ScaleConnections {
			if s.Err != "" {
				errs = append(errs, fmt.Sprintf("%s, %d connections: %s", r.Broker, s.Connections, s.Err))
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", r.Broker, s.Connections, cell(s.OpenMs), cell(s.RSSMiB), cell(s.MetadataMs))
		}
	}
	tw.Flush()
	for _, e := range errs {
		fmt.Fprintln(w, e)
	}
}

// parseCounts parses a comma-separated list of positive counts.
func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, errors.New("want positive counts separated by commas, got " + strconv.Quote(s))
		}
		out = append(out, n)
	}
	return out, nil
}
