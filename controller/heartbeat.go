package controller

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// brokerSession is what the active controller keeps in memory about a
// broker between heartbeats (Kafka's BrokerHeartbeatManager.BrokerHeartbeatState).
// It is not replicated: a new active controller starts every registered
// broker on a fresh session.
type brokerSession struct {
	lastContact time.Time
	// shutdownOffset is the offset of the entry that moved the broker's
	// leaderships away for its controlled shutdown; it may shut down once
	// it has applied it. -1: not known (the shutdown began under another
	// controller).
	shutdownOffset int64
}

// heartbeatResult is a BrokerHeartbeatResponse's payload.
type heartbeatResult struct {
	caughtUp, fenced, shouldShutdown bool
	offset                           uint64
}

// brokerHeartbeat processes a heartbeat (Kafka's
// ReplicationControlManager.processBrokerHeartbeat): it renews the session,
// unfences a fenced broker once it has applied its own registration, runs a
// controlled shutdown (leaderships away first, then ShouldShutDown and fence
// once the broker has applied that), and honours WantFence.
func (c *Controller) brokerHeartbeat(id int32, epoch, offset int64, wantFence, wantShutdown bool) (heartbeatResult, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	var res heartbeatResult
	if !c.active.Load() {
		return res, errNotController(c.cfg.NodeID)
	}
	img := c.fsm.image()
	b, ok := img.Brokers[id]
	if !ok || b.Epoch != epoch {
		return res, kerrf(kerr.StaleBrokerEpoch, "broker %d epoch %d is not the registered one", id, epoch)
	}
	s := c.sessions[id]
	if s == nil {
		s = &brokerSession{shutdownOffset: -1}
		c.sessions[id] = s
	}
	s.lastContact = time.Now()
	res.caughtUp = offset >= b.Epoch

	var plan func(*Image) []record
	switch {
	case wantShutdown && !b.Fenced && !b.InControlledShutdown:
		plan = func(img *Image) []record { return controlledShutdownRecords(img, id, c.unclean()) }
	case wantShutdown && !b.Fenced:
		if s.shutdownOffset < 0 {
			s.shutdownOffset = int64(img.Offset)
		}
		if offset >= s.shutdownOffset {
			res.shouldShutdown = true
			plan = func(img *Image) []record { return fenceBrokerRecords(img, id, c.unclean()) }
		}
	case wantShutdown:
		res.shouldShutdown = true
	case wantFence && !b.Fenced:
		plan = func(img *Image) []record { return fenceBrokerRecords(img, id, c.unclean()) }
	case !wantFence && b.Fenced && res.caughtUp:
		plan = func(img *Image) []record { return unfenceBrokerRecords(img, id, c.unclean()) }
	}
	res.offset = img.Offset
	if plan != nil {
		off, err := c.writeLocked(func(img *Image) ([]record, error) { return plan(img), nil })
		if err != nil {
			return res, err
		}
		res.offset = off
		if wantShutdown && b.eligible() {
			s.shutdownOffset = int64(off)
		}
	}
	res.fenced = c.fsm.image().Brokers[id].Fenced
	return res, nil
}

// registerBroker registers a broker incarnation (Kafka's
// ClusterControlManager.registerBroker) and returns its epoch. The same
// incarnation registering again is a retry and gets its epoch back.
func (c *Controller) registerBroker(reg BrokerRegistration, clusterID string) (int64, error) {
	if clusterID != c.cfg.ClusterID {
		return 0, kerrf(kerr.InconsistentClusterID, "cluster id %q, expected %q", clusterID, c.cfg.ClusterID)
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if old, ok := c.fsm.image().Brokers[reg.ID]; ok && old.IncarnationID == reg.IncarnationID && c.active.Load() {
		return old.Epoch, nil
	}
	off, err := c.writeLocked(func(img *Image) ([]record, error) {
		return registerBrokerRecords(img, reg, c.unclean()), nil
	})
	if err != nil {
		return 0, err
	}
	c.sessions[reg.ID] = &brokerSession{lastContact: time.Now(), shutdownOffset: -1}
	return int64(off), nil
}

// expireSessions fences brokers whose session timed out, while this node
// is the active controller (Kafka's maybeFenceOneStaleBroker).
func (c *Controller) expireSessions() {
	defer c.wg.Done()
	tick := c.cfg.BrokerSessionTimeout / 8
	tick = max(10*time.Millisecond, min(tick, 250*time.Millisecond))
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-c.closing:
			return
		case <-t.C:
		}
		if !c.active.Load() {
			continue
		}
		c.writeMu.Lock()
		now := time.Now()
		for id, b := range c.fsm.image().Brokers {
			if b.Fenced {
				continue
			}
			s := c.sessions[id]
			if s == nil {
				s = &brokerSession{lastContact: now, shutdownOffset: -1}
				c.sessions[id] = s
			}
			if now.Sub(s.lastContact) <= c.cfg.BrokerSessionTimeout {
				continue
			}
			c.logger.Info("fencing broker: session expired", "broker", id, "last_contact", s.lastContact)
			if _, err := c.writeLocked(func(img *Image) ([]record, error) {
				return fenceBrokerRecords(img, id, c.unclean()), nil
			}); err != nil {
				c.logger.Warn("fencing broker failed", "broker", id, "err", err)
				break
			}
		}
		c.writeMu.Unlock()
	}
}
