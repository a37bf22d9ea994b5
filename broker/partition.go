package broker

import (
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kbroker/kbroker/controller"
	"github.com/kbroker/kbroker/storage"
)

// Partition is this broker's replica of one partition in a cluster (Kafka's
// cluster.Partition): its registration from the metadata image and, while
// this broker leads it, what it knows of each follower's progress, from
// which it moves the high watermark and proposes ISR changes.
//
// Single-node brokers have none: partitionState answers for them.
type Partition struct {
	topic string
	index int32
	log   *storage.Log
	self  int32

	// leaderIsrUpdateLock is held shared by appends as leader and
	// exclusively by registration changes (Kafka's leaderIsrUpdateLock).
	leaderIsrUpdateLock sync.RWMutex

	mu  sync.Mutex
	reg controller.PartitionRegistration
	// followers is the leader's view of each other replica (Kafka's
	// Replica): reset whenever this broker becomes leader at a new epoch.
	followers map[int32]*followerState
	// alterInFlight is set while an AlterPartition this leader sent is
	// pending, so at most one is in flight (Kafka's PendingShrinkIsr /
	// PendingExpandIsr).
	alterInFlight bool
	// leaderEpochStartOffset is the LEO when this broker became leader: a
	// follower joins the ISR only once it has reached it (Kafka's
	// isFollowerInSync), so it holds every record of the new epoch's
	// predecessor.
	leaderEpochStartOffset int64

	watchMu     sync.Mutex // guards watchers, apart from mu: notified from the produce path
	watchers    map[uint64]chan<- struct{}
	nextWatcher uint64
}

// followerState is a follower's progress as its fetches show it (Kafka's
// ReplicaState).
type followerState struct {
	leo int64 // log end offset: the offset it fetched from last, -1 unknown
	// lastCaughtUp is the last time it was known to have everything the
	// leader had when it fetched (Kafka's lastCaughtUpTimeMs); the ISR
	// shrinks past replica.lag.time.max.ms since.
	lastCaughtUp time.Time
	// lastFetchLeaderLEO and lastFetch are the leader's LEO at and time of
	// the previous fetch (Kafka's lastFetchLeaderLogEndOffset).
	lastFetchLeaderLEO int64
	lastFetch          time.Time
}

// state returns the partition's registration as PartitionState.
func (p *Partition) state() PartitionState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PartitionState{Leader: p.reg.Leader, LeaderEpoch: p.reg.LeaderEpoch, Replicas: p.reg.Replicas, ISR: p.reg.ISR}
}

// update installs a new registration. It reports whether this broker
// became leader at a new epoch (the caller stops fetching it) and whether
// it follows a new leader or epoch (the caller re-truncates and fetches).
func (p *Partition) update(reg controller.PartitionRegistration, now time.Time) (becameLeader, newFollower bool) {
	p.leaderIsrUpdateLock.Lock()
	defer p.leaderIsrUpdateLock.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.reg
	p.reg = reg
	epochChanged := old.LeaderEpoch != reg.LeaderEpoch || old.Leader != reg.Leader || p.followers == nil && reg.Leader == p.self
	if reg.Leader == p.self {
		if epochChanged {
			// Kafka's makeLeader: every follower starts unknown, and the ones
			// in the ISR count as caught up now, so none leaves the ISR
			// before it had a chance to fetch from the new leader.
			p.followers = make(map[int32]*followerState)
			for _, r := range reg.Replicas {
				if r == p.self {
					continue
				}
				f := &followerState{leo: -1, lastFetchLeaderLEO: -1}
				if slices.Contains(reg.ISR, r) {
					f.lastCaughtUp = now
				}
				p.followers[r] = f
			}
			p.alterInFlight = false
			p.leaderEpochStartOffset = p.log.LogEndOffset()
			return true, false
		}
		// Same epoch: an ISR change (ours, through AlterPartition) or a
		// reassignment; keep what the followers told us.
		for _, r := range reg.Replicas {
			if _, ok := p.followers[r]; !ok && r != p.self {
				p.followers[r] = &followerState{leo: -1, lastFetchLeaderLEO: -1}
			}
		}
		return false, false
	}
	p.followers = nil
	p.alterInFlight = false
	return false, epochChanged && reg.Leader >= 0
}

// updateFollowerFetch records a follower's fetch from fetchOffset (its LEO)
// at now and moves the high watermark if that commits more (Kafka's
// Partition.updateFollowerFetchState). It is a no-op unless this broker
// leads the partition and r is one of its replicas.
func (p *Partition) updateFollowerFetch(r int32, fetchOffset int64, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.followers[r]
	if f == nil || p.reg.Leader != p.self {
		return
	}
	leo := p.log.LogEndOffset()
	switch {
	case fetchOffset >= leo:
		f.lastCaughtUp = now
	case fetchOffset >= f.lastFetchLeaderLEO && f.lastFetchLeaderLEO >= 0:
		// It has what the leader had at its previous fetch.
		if f.lastFetch.After(f.lastCaughtUp) {
			f.lastCaughtUp = f.lastFetch
		}
	}
	f.leo, f.lastFetchLeaderLEO, f.lastFetch = fetchOffset, leo, now
	p.maybeIncrementHighWatermarkLocked()
}

// maybeIncrementHighWatermark moves the high watermark to the smallest
// LEO among the ISR (Kafka's maybeIncrementLeaderHW); it never moves back.
func (p *Partition) maybeIncrementHighWatermark() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.maybeIncrementHighWatermarkLocked()
}

func (p *Partition) maybeIncrementHighWatermarkLocked() {
	if p.reg.Leader != p.self {
		return
	}
	hw := p.log.LogEndOffset()
	for _, r := range p.reg.ISR {
		if r == p.self {
			continue
		}
		f := p.followers[r]
		if f == nil || f.leo < 0 {
			return // not heard from yet: nothing new is committed
		}
		hw = min(hw, f.leo)
	}
	if hw > p.log.HighWatermark() {
		p.log.UpdateHighWatermark(hw)
	}
}

// isrChange is an ISR this leader wants the controller to record.
type isrChange struct {
	leaderEpoch, partitionEpoch int32
	isr                         []int32
}

// proposedISR returns the ISR change this leader should propose now, if
// any, and marks it in flight: eligible followers (eligible reports a
// broker registered, unfenced and not shutting down) that caught up with
// the high watermark and reached this leader's first offset join, and
// followers not caught up for lagMax leave (Kafka's maybeExpandIsr /
// maybeShrinkIsr with isReplicaIsrEligible).
func (p *Partition) proposedISR(now time.Time, lagMax time.Duration, eligible func(int32) bool) (isrChange, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reg.Leader != p.self || p.alterInFlight {
		return isrChange{}, false
	}
	hw := p.log.HighWatermark()
	isr := []int32{p.self}
	changed := false
	for _, r := range p.reg.Replicas {
		if r == p.self {
			continue
		}
		f := p.followers[r]
		in := slices.Contains(p.reg.ISR, r)
		switch {
		case in && f != nil && now.Sub(f.lastCaughtUp) > lagMax:
			changed = true // out of sync: leaves
		case in:
			isr = append(isr, r)
		case f != nil && f.leo >= hw && f.leo >= p.leaderEpochStartOffset && now.Sub(f.lastCaughtUp) <= lagMax && eligible(r):
			isr = append(isr, r) // caught up: joins
			changed = true
		}
	}
	if !changed {
		return isrChange{}, false
	}
	p.alterInFlight = true
	return isrChange{leaderEpoch: p.reg.LeaderEpoch, partitionEpoch: p.reg.PartitionEpoch, isr: isr}, true
}

// alterDone clears the in-flight mark and installs the registration the
// controller answered with (nil on failure), unless the image already
// brought a newer one.
func (p *Partition) alterDone(reg *controller.PartitionRegistration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.alterInFlight = false
	if reg != nil && reg.LeaderEpoch == p.reg.LeaderEpoch && reg.PartitionEpoch > p.reg.PartitionEpoch {
		p.reg = *reg
		p.maybeIncrementHighWatermarkLocked()
	}
}

// errNotFollowing is returned when a fetcher's data arrives for a leader or
// epoch the partition no longer follows: it is dropped.
var errNotFollowing = errors.New("broker: partition no longer follows that leader and epoch")

// following reports, under p.mu, whether p still follows leader at epoch.
func (p *Partition) followingLocked(leader, epoch int32) bool {
	return p.reg.Leader == leader && p.reg.LeaderEpoch == epoch && leader != p.self
}

// appendAsFollower appends what the leader sent and takes the leader's
// high watermark as far as this log reaches (Kafka's
// Partition.appendRecordsToFollowerOrFutureReplica). The leadership check
// and the append hold p.mu, so a become-leader cannot slip in between.
func (p *Partition) appendAsFollower(leader, epoch int32, records []byte, leaderHW int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.followingLocked(leader, epoch) {
		return errNotFollowing
	}
	if len(records) > 0 {
		if _, err := p.log.AppendAsFollower(records); err != nil {
			return err
		}
	}
	p.log.UpdateHighWatermark(min(leaderHW, p.log.LogEndOffset()))
	return nil
}

// truncateAsFollower cuts the log at offset if p still follows leader at
// epoch.
func (p *Partition) truncateAsFollower(leader, epoch int32, offset int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.followingLocked(leader, epoch) {
		return nil
	}
	return p.log.TruncateTo(offset)
}

// truncateFullyAsFollower empties the log and restarts it at offset, the
// leader's log start, if p still follows leader at epoch.
func (p *Partition) truncateFullyAsFollower(leader, epoch int32, offset int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.followingLocked(leader, epoch) {
		return nil
	}
	return p.log.TruncateFullyAndStartAt(offset)
}

// watchAppends registers ch for a non-blocking send after every append to
// p's log and every change of its registration: follower fetches wait on
// it, since a leader's appends do not move the high watermark by
// themselves (Kafka's DelayedFetch for replicas completes on LEO moves).
func (p *Partition) watchAppends(ch chan<- struct{}) (cancel func()) {
	p.watchMu.Lock()
	id := p.nextWatcher
	p.nextWatcher++
	if p.watchers == nil {
		p.watchers = map[uint64]chan<- struct{}{}
	}
	p.watchers[id] = ch
	p.watchMu.Unlock()
	return func() {
		p.watchMu.Lock()
		delete(p.watchers, id)
		p.watchMu.Unlock()
	}
}

func (p *Partition) notifyAppend() {
	p.watchMu.Lock()
	for _, ch := range p.watchers {
		notify(ch)
	}
	p.watchMu.Unlock()
}

// appendRecordsToLeader appends a produce batch while this broker leads
// the partition (Kafka's Partition.appendRecordsToLeader): leadership and
// the ISR size are checked under leaderIsrUpdateLock held shared, so no
// become-follower truncation interleaves with the append. With a one-member
// ISR the append is committed at once.
func (p *Partition) appendRecordsToLeader(records []byte, acks int16, minISR int32) (storage.LogAppendInfo, error) {
	p.leaderIsrUpdateLock.RLock()
	defer p.leaderIsrUpdateLock.RUnlock()
	st := p.state()
	if st.Leader != p.self {
		return storage.LogAppendInfo{}, kerr.NotLeaderForPartition
	}
	if acks == -1 && int32(len(st.ISR)) < minISR {
		return storage.LogAppendInfo{}, kerr.NotEnoughReplicas
	}
	info, err := p.log.AppendAsLeader(records, st.LeaderEpoch)
	if err == nil && !info.Duplicate {
		p.maybeIncrementHighWatermark()
		p.notifyAppend()
	}
	return info, err
}

// appendMarkerToLeader appends a transaction marker while this broker
// leads the partition.
func (p *Partition) appendMarkerToLeader(m storage.EndTxnMarker) error {
	p.leaderIsrUpdateLock.RLock()
	defer p.leaderIsrUpdateLock.RUnlock()
	st := p.state()
	if st.Leader != p.self {
		return kerr.NotLeaderForPartition
	}
	if _, err := p.log.AppendTxnMarker(m, st.LeaderEpoch); err != nil {
		return err
	}
	p.maybeIncrementHighWatermark()
	p.notifyAppend()
	return nil
}

// waitCommitted waits until the high watermark reaches offset (Kafka's
// DelayedProduce for acks=all), then checks the ISR is still large enough.
// Leadership lost meanwhile is NOT_LEADER_OR_FOLLOWER; a timeout is
// REQUEST_TIMED_OUT.
func (p *Partition) waitCommitted(offset int64, minISR int32, timeout time.Duration, closing <-chan struct{}) *kerr.Error {
	wake := make(chan struct{}, 1)
	defer p.log.Watch(wake)()
	defer p.watchAppends(wake)()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		st := p.state()
		if st.Leader != p.self {
			return kerr.NotLeaderForPartition
		}
		if p.log.HighWatermark() >= offset {
			if int32(len(st.ISR)) < minISR {
				return kerr.NotEnoughReplicasAfterAppend
			}
			return nil
		}
		select {
		case <-wake:
		case <-timer.C:
			return kerr.RequestTimedOut
		case <-closing:
			return kerr.NotLeaderForPartition
		}
	}
}

// notify makes a non-blocking send on ch: a pending signal is not repeated.
func notify(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
