package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol"
)

// replicaFetcher copies the partitions one leader leads into this broker's
// follower replicas (Kafka's ReplicaFetcherThread, one per source broker):
// each partition is first truncated to where its log agrees with the
// leader's (OffsetForLeaderEpoch, KIP-101), then fetched from its log end
// offset with this broker's replica id, appended as sent, and its high
// watermark set from the leader's.
type replicaFetcher struct {
	c      *cluster
	leader int32

	mu    sync.Mutex
	parts map[*Partition]*fetchState
	kick  chan struct{} // capacity 1: the partition set changed

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// fetchState is a partition's progress in its fetcher (Kafka's
// PartitionFetchState).
type fetchState struct {
	epoch     int32 // the leader epoch it follows
	truncated bool  // truncation to the leader's log is done
	delayed   time.Time
}

// Fetch and OffsetForLeaderEpoch versions the fetcher speaks: the newest
// that still name topics and carry ReplicaID (v15 moves it to ReplicaState).
const (
	replicaFetchVersion    = 12
	replicaOffsetForEpochV = 4
)

func (c *cluster) startFetching(p *Partition, leader, epoch int32) {
	c.fetchMu.Lock()
	f := c.fetchers[leader]
	if f == nil {
		ctx, cancel := context.WithCancel(context.Background())
		f = &replicaFetcher{c: c, leader: leader, parts: map[*Partition]*fetchState{}, kick: make(chan struct{}, 1), ctx: ctx, cancel: cancel, done: make(chan struct{})}
		if !c.s.goroutine(f.run) {
			c.fetchMu.Unlock()
			cancel()
			return
		}
		c.fetchers[leader] = f
	}
	c.fetchMu.Unlock()
	f.mu.Lock()
	f.parts[p] = &fetchState{epoch: epoch}
	f.mu.Unlock()
	notify(f.kick)
}

// stopFetching removes p from whichever fetcher has it; a fetcher left
// with nothing stops.
func (c *cluster) stopFetching(p *Partition) {
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	for id, f := range c.fetchers {
		f.mu.Lock()
		_, ok := f.parts[p]
		delete(f.parts, p)
		empty := len(f.parts) == 0
		f.mu.Unlock()
		if ok && empty {
			delete(c.fetchers, id)
			f.cancel()
		}
	}
}

func (f *replicaFetcher) stop() {
	f.cancel()
	<-f.done
}

func (f *replicaFetcher) run() {
	defer close(f.done)
	s := f.c.s
	var cl *protocol.Client
	defer func() {
		if cl != nil {
			cl.Close()
		}
	}()
	backoff := func() {
		select {
		case <-time.After(max(s.cfg.ReplicaFetchBackoff, 10*time.Millisecond)):
		case <-f.ctx.Done():
		}
	}
	for f.ctx.Err() == nil {
		if cl == nil {
			var err error
			if cl, err = f.dial(); err != nil {
				s.logger.Debug("replica fetcher cannot reach leader", "leader", f.leader, "err", err)
				backoff()
				continue
			}
		}
		err := f.truncate(cl)
		if err == nil {
			err = f.fetch(cl)
		}
		if err != nil {
			if f.ctx.Err() != nil {
				return
			}
			s.logger.Debug("replica fetch failed", "leader", f.leader, "err", err)
			cl.Close()
			cl = nil
			backoff()
		}
	}
}

func (f *replicaFetcher) dial() (*protocol.Client, error) {
	s := f.c.s
	ep, ok := f.c.endpoint(f.leader, s.cfg.InterBrokerListener())
	if !ok {
		return nil, fmt.Errorf("broker %d has no %s endpoint", f.leader, s.cfg.InterBrokerListener())
	}
	ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
	defer cancel()
	cl, err := protocol.Dial(ctx, net.JoinHostPort(ep.Host, strconv.Itoa(int(ep.Port))), "kbroker-replica-fetcher-"+strconv.Itoa(int(s.cfg.NodeID)))
	if err != nil {
		return nil, err
	}
	cl.MaxResponseBytes = max(s.cfg.ReplicaFetchResponseMaxBytes, s.cfg.ReplicaFetchMaxBytes) + 1<<20
	return cl, nil
}

// snapshot returns the partitions and their states, copied.
func (f *replicaFetcher) snapshot() map[*Partition]fetchState {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[*Partition]fetchState, len(f.parts))
	for p, st := range f.parts {
		out[p] = *st
	}
	return out
}

// setState changes p's state if p is still fetched at epoch.
func (f *replicaFetcher) setState(p *Partition, epoch int32, change func(*fetchState)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st := f.parts[p]; st != nil && st.epoch == epoch {
		change(st)
	}
}

// truncate asks the leader, for every partition not yet truncated, where
// its log ends for this replica's latest epoch and cuts the local log
// there (Kafka's AbstractFetcherThread.truncateToEpochEndOffsets). A log
// without epochs keeps what is below its high watermark.
func (f *replicaFetcher) truncate(cl *protocol.Client) error {
	s := f.c.s
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.SetVersion(replicaOffsetForEpochV)
	req.ReplicaID = s.cfg.NodeID
	asked := map[topicPartition]*Partition{}
	epochs := map[topicPartition]int32{}
	for p, st := range f.snapshot() {
		if st.truncated {
			continue
		}
		latest := p.log.LatestEpoch()
		if latest < 0 {
			if err := p.truncateAsFollower(f.leader, st.epoch, p.log.HighWatermark()); err != nil {
				return err
			}
			f.setState(p, st.epoch, func(st *fetchState) { st.truncated = true })
			continue
		}
		tp := topicPartition{p.topic, p.index}
		asked[tp], epochs[tp] = p, st.epoch
		rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
		rt.Topic = p.topic
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = p.index, st.epoch, latest
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	if len(req.Topics) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer cancel()
	kresp, err := cl.Request(ctx, req)
	if err != nil {
		return err
	}
	resp := kresp.(*kmsg.OffsetForLeaderEpochResponse)
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			tp := topicPartition{rt.Topic, rp.Partition}
			p, epoch := asked[tp], epochs[tp]
			if p == nil {
				continue
			}
			if rp.ErrorCode != 0 {
				f.partitionError(p, epoch, rp.ErrorCode)
				continue
			}
			to, done := truncationOffset(p, rp.LeaderEpoch, rp.EndOffset)
			if err := p.truncateAsFollower(f.leader, epoch, to); err != nil {
				return err
			}
			if done {
				f.setState(p, epoch, func(st *fetchState) { st.truncated = true })
			}
		}
	}
	return nil
}

// truncationOffset is where a follower's log must be cut given the
// leader's answer for the follower's latest epoch (Kafka's
// AbstractFetcherThread.getOffsetTruncationState): done is false when the
// leader knows only an older epoch, and the follower must ask again for
// that one after cutting.
func truncationOffset(p *Partition, leaderEpoch int32, endOffset int64) (to int64, done bool) {
	leo := p.log.LogEndOffset()
	if leaderEpoch < 0 || endOffset < 0 {
		return min(p.log.HighWatermark(), leo), true // no common epoch: keep the committed part
	}
	if leaderEpoch == p.log.LatestEpoch() {
		return min(endOffset, leo), true
	}
	followerEpoch, followerEnd := p.log.EndOffsetForEpoch(leaderEpoch)
	to = min(endOffset, followerEnd, leo)
	return to, followerEpoch == leaderEpoch
}

// fetch sends one Fetch for every truncated partition and applies the
// answer.
func (f *replicaFetcher) fetch(cl *protocol.Client) error {
	s := f.c.s
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(replicaFetchVersion)
	req.ReplicaID = s.cfg.NodeID
	req.MaxWaitMillis = int32(s.cfg.ReplicaFetchWaitMax / time.Millisecond)
	req.MinBytes = s.cfg.ReplicaFetchMinBytes
	req.MaxBytes = s.cfg.ReplicaFetchResponseMaxBytes
	req.SessionEpoch = fetchSessionFinalEpoch // no session: every fetch is full
	asked := map[topicPartition]*Partition{}
	epochs := map[topicPartition]int32{}
	now := time.Now()
	for p, st := range f.snapshot() {
		if !st.truncated || now.Before(st.delayed) {
			continue
		}
		tp := topicPartition{p.topic, p.index}
		asked[tp], epochs[tp] = p, st.epoch
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = p.topic
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = p.index
		rp.CurrentLeaderEpoch = st.epoch
		rp.FetchOffset = p.log.LogEndOffset()
		rp.LastFetchedEpoch = p.log.LatestEpoch()
		rp.LogStartOffset = p.log.LogStartOffset()
		rp.PartitionMaxBytes = s.cfg.ReplicaFetchMaxBytes
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	if len(req.Topics) == 0 {
		// Nothing to fetch: wait for a change or a delay to pass.
		select {
		case <-f.kick:
		case <-time.After(max(s.cfg.ReplicaFetchBackoff, 10*time.Millisecond)):
		case <-f.ctx.Done():
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(f.ctx, time.Duration(req.MaxWaitMillis)*time.Millisecond+30*time.Second)
	defer cancel()
	kresp, err := cl.Request(ctx, req)
	if err != nil {
		return err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if resp.ErrorCode != 0 {
		return kerr.ErrorForCode(resp.ErrorCode)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			tp := topicPartition{rt.Topic, rp.Partition}
			p, epoch := asked[tp], epochs[tp]
			if p == nil {
				continue
			}
			if rp.ErrorCode != 0 {
				f.partitionError(p, epoch, rp.ErrorCode)
				if rp.ErrorCode == kerr.OffsetOutOfRange.Code && p.log.LogEndOffset() < rp.LogStartOffset {
					// Behind the leader's log start: start over there
					// (Kafka's handleOutOfRangeError).
					if err := p.truncateFullyAsFollower(f.leader, epoch, rp.LogStartOffset); err != nil {
						return err
					}
					f.setState(p, epoch, func(st *fetchState) { st.truncated, st.delayed = true, time.Time{} })
				}
				continue
			}
			if err := p.appendAsFollower(f.leader, epoch, rp.RecordBatches, rp.HighWatermark); err != nil {
				if errors.Is(err, errNotFollowing) {
					continue
				}
				s.logger.Error("replica append failed", "topic", p.topic, "partition", p.index, "err", err)
				f.setState(p, epoch, func(st *fetchState) { st.truncated = false; st.delayed = time.Now().Add(s.cfg.ReplicaFetchBackoff) })
			}
		}
	}
	return nil
}

// partitionError handles a per-partition error from the leader: a log
// that ran past the leader's end is truncated again; a leader that does
// not know the epoch yet (its metadata lags) is asked again later; a
// newer epoch elsewhere waits for this broker's metadata to catch up.
func (f *replicaFetcher) partitionError(p *Partition, epoch int32, code int16) {
	delay := time.Now().Add(f.c.s.cfg.ReplicaFetchBackoff)
	f.setState(p, epoch, func(st *fetchState) {
		st.delayed = delay
		if code == kerr.OffsetOutOfRange.Code {
			st.truncated = false
		}
	})
}
