package main

// The consumer group workloads: how long a fresh member waits for its first
// record, and how long a group of members takes to spread a topic's
// partitions and to take back a departed member's share. All members use
// kgo's classic group protocol (JoinGroup/SyncGroup) with its default
// balancer, cooperative-sticky.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// groupOpts are the options every bench group member shares. kgo's default
// protocol is KIP-848's "consumer"; the bench measures the classic one. ctx
// bounds the client's requests too, so that Close cannot outlive the phase
// when the broker never answers a JoinGroup.
func groupOpts(ctx context.Context, addr, group, topic string, heartbeat time.Duration) []kgo.Opt {
	return []kgo.Opt{
		kgo.WithContext(ctx),
		kgo.SeedBrokers(addr),
		kgo.ConsumerGroup(group),
		kgo.GroupProtocol("classic"),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.HeartbeatInterval(heartbeat),
		kgo.DisableAutoCommit(), // nothing to commit: each run has its own group
	}
}

// produceSmall writes n small records to topic, spread over its partitions.
func produceSmall(ctx context.Context, addr, topic string, n int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return err
	}
	defer cl.Close()
	var failed failures
	for i := 0; i < n && ctx.Err() == nil; i++ {
		cl.Produce(ctx, &kgo.Record{Value: fmt.Appendf(nil, "group bench record %d", i)}, failed.promise)
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	return failed.err(n)
}

// joinToFirstRecord creates a consumer in a new group on a topic that already
// has records and returns the time from client creation until PollFetches
// first returns a record: FindCoordinator, JoinGroup (twice: the first answer
// is MEMBER_ID_REQUIRED), SyncGroup, OffsetFetch, ListOffsets and Fetch.
func joinToFirstRecord(ctx context.Context, addr, group, topic string, heartbeat time.Duration) (time.Duration, error) {
	start := time.Now()
	cl, err := kgo.NewClient(groupOpts(ctx, addr, group, topic, heartbeat)...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if err := fetchErr(fs); err != nil {
			return 0, err
		}
		if fs.NumRecords() > 0 {
			return time.Since(start), nil
		}
	}
}

// ownership tracks which member owns which partitions, from the members'
// OnPartitionsAssigned, OnPartitionsRevoked and OnPartitionsLost callbacks.
// With the cooperative balancer these carry only the change, so the tracker
// keeps the running sets. changed is signalled (without blocking) after each
// update.
type ownership struct {
	mu      sync.Mutex
	owned   map[string]map[int32]bool // member → partitions
	left    map[string]bool           // members closed: their late callbacks do not count
	changed chan struct{}             // capacity 1
}

func newOwnership() *ownership {
	return &ownership{
		owned:   make(map[string]map[int32]bool),
		left:    make(map[string]bool),
		changed: make(chan struct{}, 1),
	}
}

func (o *ownership) update(member string, ps []int32, add bool) {
	o.mu.Lock()
	if o.left[member] {
		o.mu.Unlock()
		return
	}
	set := o.owned[member]
	if set == nil {
		set = make(map[int32]bool)
		o.owned[member] = set
	}
	for _, p := range ps {
		if add {
			set[p] = true
		} else {
			delete(set, p)
		}
	}
	o.mu.Unlock()
	select {
	case o.changed <- struct{}{}:
	default:
	}
}

// leave drops a member that is closing.
func (o *ownership) leave(member string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.left[member] = true
	delete(o.owned, member)
}

// opts returns the callbacks that feed the tracker for member.
func (o *ownership) opts(member, topic string) []kgo.Opt {
	cb := func(add bool) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(_ context.Context, _ *kgo.Client, m map[string][]int32) { o.update(member, m[topic], add) }
	}
	return []kgo.Opt{
		kgo.OnPartitionsAssigned(cb(true)),
		kgo.OnPartitionsRevoked(cb(false)),
		kgo.OnPartitionsLost(cb(false)),
	}
}

// settled reports whether the live members own all partitions, each exactly
// once, as evenly as possible.
func (o *ownership) settled(live []string, partitions int32) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	sets := make([]map[int32]bool, 0, len(live))
	for _, m := range live {
		sets = append(sets, o.owned[m])
	}
	return assignmentSettled(sets, partitions)
}

// assignmentSettled reports whether sets (one per live member) cover
// partitions 0..partitions-1 with no partition in two sets and no set more
// than one partition larger than another: the end state of a rebalance with
// kgo's balancers, as opposed to the intermediate ones where the first
// member to join holds everything.
func assignmentSettled(sets []map[int32]bool, partitions int32) bool {
	if len(sets) == 0 {
		return false
	}
	seen := make(map[int32]bool, partitions)
	lo, hi := int(partitions)+1, -1
	for _, s := range sets {
		for p := range s {
			if p < 0 || p >= partitions || seen[p] {
				return false
			}
			seen[p] = true
		}
		lo, hi = min(lo, len(s)), max(hi, len(s))
	}
	return len(seen) == int(partitions) && hi-lo <= 1
}

// rebalanceTimes is what one rebalance run measured.
type rebalanceTimes struct {
	Join  time.Duration // all members started → partitions settled across them
	Leave time.Duration // one member's Close called → settled across the rest
}

// rebalance starts members group members on topic at once, waits for the
// partitions to settle across them, then closes one and waits for its
// partitions to settle across the rest. Each member polls in its own
// goroutine, as a real consumer would.
func rebalance(ctx context.Context, addr, group, topic string, members int, partitions int32, heartbeat time.Duration) (rebalanceTimes, error) {
	own := newOwnership()
	clients := make(map[string]*kgo.Client, members)
	var wg sync.WaitGroup
	defer func() {
		for _, cl := range clients {
			cl.Close() // ends PollFetches
		}
		wg.Wait()
	}()

	var live []string
	start := time.Now()
	for i := range members {
		name := fmt.Sprintf("member-%d", i)
		cl, err := kgo.NewClient(append(groupOpts(ctx, addr, group, topic, heartbeat), own.opts(name, topic)...)...)
		if err != nil {
			return rebalanceTimes{}, err
		}
		clients[name] = cl
		live = append(live, name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if fs := cl.PollFetches(ctx); fs.IsClientClosed() {
					return
				}
			}
		}()
	}
	var times rebalanceTimes
	if err := own.await(ctx, live, partitions); err != nil {
		return times, fmt.Errorf("%d members joining: %w", members, err)
	}
	times.Join = time.Since(start)

	leaver := live[len(live)-1]
	live = live[:len(live)-1]
	start = time.Now()
	own.leave(leaver)
	clients[leaver].Close() // kgo sends LeaveGroup for a dynamic member
	delete(clients, leaver)
	if err := own.await(ctx, live, partitions); err != nil {
		return times, fmt.Errorf("after %s left: %w", leaver, err)
	}
	times.Leave = time.Since(start)
	return times, nil
}

// await waits until the partitions are settled across live, or ctx is done.
func (o *ownership) await(ctx context.Context, live []string, partitions int32) error {
	for !o.settled(live, partitions) {
		select {
		case <-o.changed:
		case <-ctx.Done():
			o.mu.Lock()
			state := make(map[string][]int32)
			for _, m := range live {
				state[m] = slices.Sorted(maps.Keys(o.owned[m]))
			}
			o.mu.Unlock()
			return fmt.Errorf("partitions not settled: %w; ownership: %v", ctx.Err(), state)
		}
	}
	return nil
}

// The rebalance workload's shape: two partitions per member.
const rebalanceMembers, rebalancePartitions = 10, 20

// benchGroups runs both group workloads cfg.groupRuns times, each run a phase
// of its own with a new group, and records the medians in res.
func benchGroups(cfg config, res *Result, phase phaseFunc, addr string, logf func(string, ...any)) {
	const joinTopic, rebalanceTopic = "bench-group-join", "bench-rebalance"
	const joinRecords = 1000
	if phase("create topic", cfg.phaseTimeout, func(ctx context.Context) error {
		if err := createTopic(ctx, addr, joinTopic, 6); err != nil {
			return err
		}
		return produceSmall(ctx, addr, joinTopic, joinRecords)
	}) {
		for i := 1; i <= cfg.groupRuns; i++ {
			ok := phase("group join → first record", cfg.phaseTimeout, func(ctx context.Context) error {
				d, err := joinToFirstRecord(ctx, addr, fmt.Sprintf("bench-join-%d", i), joinTopic, cfg.groupHeartbeat)
				if err == nil {
					logf("group join → first record %d/%d: %.1f ms", i, cfg.groupRuns, ms(d))
					res.GroupJoinRunsMs = append(res.GroupJoinRunsMs, ms(d))
				}
				return err
			})
			if !ok {
				break
			}
		}
		if len(res.GroupJoinRunsMs) == cfg.groupRuns {
			res.GroupJoinFirstRecordMs = median(res.GroupJoinRunsMs)
		}
	}

	if phase("create topic", cfg.phaseTimeout, func(ctx context.Context) error {
		return createTopic(ctx, addr, rebalanceTopic, rebalancePartitions)
	}) {
		for i := 1; i <= cfg.groupRuns; i++ {
			ok := phase("rebalance", cfg.phaseTimeout, func(ctx context.Context) error {
				t, err := rebalance(ctx, addr, fmt.Sprintf("bench-rebalance-%d", i), rebalanceTopic, rebalanceMembers, rebalancePartitions, cfg.groupHeartbeat)
				if err == nil {
					logf("rebalance %d/%d: %d members settled in %.1f ms, one leaving in %.1f ms", i, cfg.groupRuns, rebalanceMembers, ms(t.Join), ms(t.Leave))
					res.RebalanceJoinRunsMs = append(res.RebalanceJoinRunsMs, ms(t.Join))
					res.RebalanceLeaveRunsMs = append(res.RebalanceLeaveRunsMs, ms(t.Leave))
				}
				return err
			})
			if !ok {
				break
			}
		}
		if len(res.RebalanceJoinRunsMs) == cfg.groupRuns {
			res.RebalanceJoinMs = median(res.RebalanceJoinRunsMs)
			res.RebalanceLeaveMs = median(res.RebalanceLeaveRunsMs)
		}
	}
}
