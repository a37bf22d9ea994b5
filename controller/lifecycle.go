package controller

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// lifecycle is this node's broker as the controller sees it (Kafka's
// BrokerLifecycleManager): one registration per process, with a fresh
// incarnation id, then a heartbeat every interval.
type lifecycle struct {
	incarnation [16]byte
	notify      chan bool // raft leadership notifications (see watchLeadership)

	mu             sync.Mutex
	epoch          int64 // -1 until registered
	wantShutdown   bool
	shouldShutdown bool
	changed        chan struct{} // closed and replaced when the fields above change
	kick           chan struct{} // asks the heartbeat loop to beat now
	stopped        chan struct{}
	stopCtx        context.Context // done when stopped
	stopCancel     context.CancelFunc
	stopOnce       sync.Once
	running        bool
	wg             sync.WaitGroup
}

func (l *lifecycle) init() {
	_, _ = rand.Read(l.incarnation[:])
	l.epoch = -1
	l.changed = make(chan struct{})
	l.kick = make(chan struct{}, 1)
	l.stopped = make(chan struct{})
	l.stopCtx, l.stopCancel = context.WithCancel(context.Background())
}

func (l *lifecycle) epochOr(def int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.epoch < 0 {
		return def
	}
	return l.epoch
}

// update changes state under mu and wakes waiters.
func (l *lifecycle) update(fn func()) {
	l.mu.Lock()
	fn()
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

func (l *lifecycle) stop() {
	l.stopOnce.Do(func() { close(l.stopped); l.stopCancel() })
	l.wg.Wait()
}

// RegisterBroker registers this node's broker with the active controller
// (a fresh incarnation id per process start; a previous incarnation is
// fenced at once) and starts heartbeating every BrokerHeartbeatInterval. It
// returns once the registration is in this node's image. The broker starts
// fenced: see WaitUnfenced.
func (c *Controller) RegisterBroker(ctx context.Context, endpoints []Endpoint, rack string) error {
	l := &c.lifecycle
	l.mu.Lock()
	if l.running {
		l.mu.Unlock()
		return errors.New("controller: broker already registered")
	}
	l.mu.Unlock()
	req := kmsg.NewPtrBrokerRegistrationRequest()
	req.Version = 4
	req.BrokerID, req.ClusterID, req.IncarnationID = c.cfg.NodeID, c.cfg.ClusterID, l.incarnation
	if rack != "" {
		req.Rack = kmsg.StringPtr(rack)
	}
	for _, e := range endpoints {
		req.Listeners = append(req.Listeners, kmsg.BrokerRegistrationRequestListener{Name: e.Listener, Host: e.Host, Port: uint16(e.Port), SecurityProtocol: e.SecurityProtocol})
	}
	kresp, err := c.route(ctx, req)
	if err != nil {
		return err
	}
	resp := kresp.(*kmsg.BrokerRegistrationResponse)
	if err := kafkaErr(resp.ErrorCode, nil); err != nil {
		return err
	}
	if _, err := c.waitApplied(ctx, uint64(resp.BrokerEpoch)); err != nil {
		return err
	}
	l.update(func() { l.epoch, l.running = resp.BrokerEpoch, true })
	l.wg.Add(1)
	go c.heartbeatLoop()
	return nil
}

// heartbeatLoop sends BrokerHeartbeat every interval (or at once when
// kicked) with this node's applied offset, until stopped or told to shut
// down.
func (c *Controller) heartbeatLoop() {
	l := &c.lifecycle
	defer l.wg.Done()
	t := time.NewTicker(c.cfg.BrokerHeartbeatInterval)
	defer t.Stop()
	for {
		l.mu.Lock()
		epoch, want, done := l.epoch, l.wantShutdown, l.shouldShutdown
		l.mu.Unlock()
		if done {
			return
		}
		req := kmsg.NewPtrBrokerHeartbeatRequest()
		req.Version = 2
		req.BrokerID, req.BrokerEpoch = c.cfg.NodeID, epoch
		req.CurrentMetadataOffset = int64(c.Image().Offset)
		req.WantShutdown = want
		// A heartbeat that cannot reach the controller within the session
		// timeout is as good as lost.
		ctx, cancel := context.WithTimeout(l.stopCtx, c.cfg.BrokerSessionTimeout)
		kresp, err := c.route(ctx, req)
		if err == nil {
			resp := kresp.(*kmsg.BrokerHeartbeatResponse)
			switch err := kafkaErr(resp.ErrorCode, nil); {
			case err == nil:
				// Shut down only once this node's image shows the
				// controller's last word (leaderships moved, fenced).
				if resp.ShouldShutdown {
					if _, err := c.waitApplied(ctx, offsetFromTags(&resp.UnknownTags)); err == nil {
						l.update(func() { l.shouldShutdown = true })
					}
				}
			case errors.Is(err, kerr.StaleBrokerEpoch):
				c.logger.Warn("broker heartbeat: stale broker epoch; a newer registration of this broker exists", "epoch", epoch)
			default:
				c.logger.Warn("broker heartbeat refused", "err", err)
			}
		}
		cancel()
		select {
		case <-l.stopped:
			return
		case <-t.C:
		case <-l.kick:
		}
	}
}

// WaitUnfenced waits until this node's image shows its broker registration
// (this incarnation) unfenced.
func (c *Controller) WaitUnfenced(ctx context.Context) error {
	for {
		img, ch := c.fsm.imageAndChanged()
		if b, ok := img.Brokers[c.cfg.NodeID]; ok && b.IncarnationID == c.lifecycle.incarnation && !b.Fenced {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("controller: waiting to be unfenced: %w", ctx.Err())
		case <-c.closing:
			return errors.New("controller: closed")
		}
	}
}

// ControlledShutdown heartbeats WantShutDown until the controller answers
// ShouldShutDown (this broker's leaderships have moved and it has left the
// ISRs it could leave; the controller then fences it) or ctx ends. The
// heartbeats stop after ShouldShutDown.
func (c *Controller) ControlledShutdown(ctx context.Context) error {
	l := &c.lifecycle
	l.mu.Lock()
	running := l.running
	l.mu.Unlock()
	if !running {
		return errors.New("controller: broker not registered")
	}
	l.update(func() { l.wantShutdown = true })
	for {
		l.mu.Lock()
		done, ch := l.shouldShutdown, l.changed
		l.mu.Unlock()
		if done {
			return nil
		}
		select {
		case l.kick <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-time.After(c.cfg.BrokerHeartbeatInterval / 4):
			// beat faster than the interval while shutting down
		case <-ctx.Done():
			return fmt.Errorf("controller: controlled shutdown: %w", ctx.Err())
		case <-l.stopped:
			return errors.New("controller: closed")
		}
	}
}
