package main

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestKbrokerNodeArgs(t *testing.T) {
	t.Parallel()
	cc := clusterConfig{sessionTimeout: 2 * time.Second, heartbeat: 250 * time.Millisecond}
	got := kbrokerNodeArgs(2, "/tmp/d2", []int{9001, 9002, 9003}, []int{9101, 9102, 9103}, cc)
	want := []string{
		"--data-dir", "/tmp/d2",
		"--override", "node.id=2",
		"--override", "listeners=PLAINTEXT://127.0.0.1:9002,CONTROLLER://127.0.0.1:9102",
		"--override", "controller.listener.names=CONTROLLER",
		"--override", "controller.quorum.voters=1@127.0.0.1:9101,2@127.0.0.1:9102,3@127.0.0.1:9103",
		"--override", "default.replication.factor=3",
		"--override", "offsets.topic.replication.factor=3",
		"--override", "group.initial.rebalance.delay.ms=0",
		"--override", "http.listener=127.0.0.1:0",
		"--override", "broker.session.timeout.ms=2000",
		"--override", "broker.heartbeat.interval.ms=250",
	}
	if !slices.Equal(got, want) {
		t.Errorf("kbrokerNodeArgs:\n got %q\nwant %q", got, want)
	}
}

func TestKfakeClusterArgs(t *testing.T) {
	t.Parallel()
	if got, want := kfakeClusterArgs([]int{1, 2, 3}, ""), []string{"serve-kfake", "-ports", "1,2,3"}; !slices.Equal(got, want) {
		t.Errorf("in memory: got %q, want %q", got, want)
	}
	if got, want := kfakeClusterArgs([]int{1, 2, 3}, "/d"), []string{"serve-kfake", "-ports", "1,2,3", "-data-dir", "/d"}; !slices.Equal(got, want) {
		t.Errorf("on disk: got %q, want %q", got, want)
	}
}

func TestMedianMax(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		xs       []float64
		med, max float64
	}{
		{nil, 0, 0},
		{[]float64{2400}, 2400, 2400},
		{[]float64{3100, 2400, 2900}, 2900, 3100},
		{[]float64{3000, 2000, 2500, 9000}, 2750, 9000},
	} {
		med, mx := medianMax(tc.xs)
		if med != tc.med || mx != tc.max {
			t.Errorf("medianMax(%v) = %v, %v; want %v, %v", tc.xs, med, mx, tc.med, tc.max)
		}
	}
}

func TestFreePortsDistinct(t *testing.T) {
	t.Parallel()
	ps, err := freePorts(6)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 6 || len(slices.Compact(slices.Sorted(slices.Values(ps)))) != 6 {
		t.Errorf("freePorts(6) = %v, want 6 distinct ports", ps)
	}
}

func TestFailoverProducerWatch(t *testing.T) {
	t.Parallel()
	p := &failoverProducer{acked: make(chan time.Time, 1)}
	t0 := time.Now()
	p.done(t0.Add(-time.Millisecond), nil) // before any watch
	p.watch(t0)
	p.done(t0.Add(-time.Millisecond), nil) // sent before the kill: not it
	select {
	case <-p.acked:
		t.Fatal("a record sent before the watch counted")
	default:
	}
	p.done(t0.Add(time.Millisecond), nil)
	p.done(t0.Add(2*time.Millisecond), nil) // a second one must not block
	select {
	case <-p.acked:
	default:
		t.Fatal("the first record sent after the watch was not reported")
	}
	p.done(t0, errTest)
	if _, acks, fails, err := p.state(); acks != 4 || fails != 1 || err != errTest {
		t.Errorf("state: %d acks, %d fails, %v; want 4, 1, %v", acks, fails, err, errTest)
	}
}

var errTest = errors.New("test")

func TestTopicInSync(t *testing.T) {
	t.Parallel()
	resp := func(topicErr int16, parts ...kmsg.MetadataResponseTopicPartition) *kmsg.MetadataResponse {
		r := kmsg.NewPtrMetadataResponse()
		tp := kmsg.NewMetadataResponseTopic()
		tp.Topic = kmsg.StringPtr("t")
		tp.ErrorCode = topicErr
		tp.Partitions = parts
		r.Topics = append(r.Topics, tp)
		return r
	}
	part := func(p, leader int32, isr ...int32) kmsg.MetadataResponseTopicPartition {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition, mp.Leader, mp.ISR = p, leader, isr
		return mp
	}
	for _, tc := range []struct {
		name string
		resp *kmsg.MetadataResponse
		want bool
	}{
		{"unknown topic", resp(3), false},
		{"all in sync", resp(0, part(0, 1, 1, 2, 3), part(1, 2, 2, 3, 1)), true},
		{"one partition short", resp(0, part(0, 1, 1, 2, 3), part(1, 2, 2, 3)), false},
		{"no leader", resp(0, part(0, -1, 1, 2, 3), part(1, 2, 2, 3, 1)), false},
		{"a partition missing", resp(0, part(0, 1, 1, 2, 3)), false},
	} {
		if got, state := topicInSync(tc.resp, "t", 2, 3); got != tc.want {
			t.Errorf("%s: topicInSync = %v (%s), want %v", tc.name, got, state, tc.want)
		}
	}
	if got, _ := topicInSync(resp(0, part(0, 1, 1, 2, 3)), "other", 1, 3); got {
		t.Error("topicInSync found a topic that is not in the response")
	}
}
