package controller

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kbroker/kbroker/protocol"
)

// Voter is one member of the static metadata quorum.
type Voter struct {
	ID   int32
	Host string
	Port int
}

// Addr is host:port.
func (v Voter) Addr() string { return net.JoinHostPort(v.Host, strconv.Itoa(v.Port)) }

// ParseVoters parses controller.quorum.voters: "1@host:port,2@host:port".
func ParseVoters(s string) ([]Voter, error) {
	var vs []Voter
	seen := map[int32]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		idStr, hostPort, ok := strings.Cut(part, "@")
		if !ok {
			return nil, fmt.Errorf("controller.quorum.voters: %q is not id@host:port", part)
		}
		id, err := strconv.ParseInt(idStr, 10, 32)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("controller.quorum.voters: bad node id in %q", part)
		}
		host, portStr, err := net.SplitHostPort(hostPort)
		if err != nil || host == "" {
			return nil, fmt.Errorf("controller.quorum.voters: bad address in %q", part)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil || port <= 0 || port > 65535 {
			return nil, fmt.Errorf("controller.quorum.voters: bad port in %q", part)
		}
		if seen[int32(id)] {
			return nil, fmt.Errorf("controller.quorum.voters: node %d listed twice", id)
		}
		seen[int32(id)] = true
		vs = append(vs, Voter{ID: int32(id), Host: host, Port: port})
	}
	return vs, nil
}

// Config configures one combined broker+controller node's controller.
type Config struct {
	NodeID int32
	Voters []Voter
	// Dir holds raft's state: raft.db (log and stable store) and snapshots,
	// e.g. <log.dirs>/__cluster_metadata-0.
	Dir string
	// Listener is this node's bound controller listener (its voter
	// address); raft and the controller APIs are served on it. Close
	// closes it.
	Listener  net.Listener
	ClusterID string
	// BrokerSessionTimeout is broker.session.timeout.ms (default 9s).
	BrokerSessionTimeout time.Duration
	// BrokerHeartbeatInterval is broker.heartbeat.interval.ms (default 2s).
	BrokerHeartbeatInterval time.Duration
	// ElectionTimeout is controller.quorum.election.timeout.ms (default 1s).
	ElectionTimeout          time.Duration
	DefaultReplicationFactor int16 // default.replication.factor (default 1)
	DefaultNumPartitions     int32 // num.partitions (default 1)
	// ValidateTopicConfigs checks topic config overrides; nil accepts all,
	// an error is INVALID_CONFIG.
	ValidateTopicConfigs func(map[string]string) error
	// UncleanLeaderElection is the effective unclean.leader.election.enable
	// of a topic with these overrides; nil is false.
	UncleanLeaderElection func(topicConfigs map[string]string) bool
	Logger                *slog.Logger
	// OnImage is called after every applied entry (and snapshot restore)
	// with the new image, in order, from one goroutine. Keep it quick.
	OnImage func(*Image)
	// State, if set, keeps the coordinators' state that AppendState
	// writes, on every node (see StateStore).
	State StateStore
	// OnActive is told when this node becomes the active controller (its
	// image caught up with every committed entry) and when it stops being
	// it, from one goroutine, in order. Keep it quick.
	OnActive func(active bool)
}

// Timeouts for internal steps.
const (
	applyTimeout      = 10 * time.Second // one raft Apply on the active controller
	requestTimeout    = 10 * time.Second // one request to the active controller
	maxControllerBody = 8 << 20          // controller API request frames
	producerIDBlock   = 1000             // Kafka's ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE
)

// Controller is one node's member of the metadata quorum: its raft node,
// the replicated image, the active controller's logic when this node leads,
// and this node's broker lifecycle.
type Controller struct {
	cfg    Config
	logger *slog.Logger
	voters map[int32]Voter

	raft      *raft.Raft
	store     *raftboltdb.BoltStore
	transport *raft.NetworkTransport
	fsm       *fsm
	mux       *mux

	// writeMu serialises the active controller's writes: each plans its
	// records on the image its predecessor left, as Kafka's single
	// controller thread does. It guards sessions too.
	writeMu  sync.Mutex
	active   atomic.Bool // leader, and the image has caught up (barrier done)
	sessions map[int32]*brokerSession

	clientsMu sync.Mutex
	clients   map[int32]*protocol.Client // to the active controller, by node

	lifecycle lifecycle

	closeOnce sync.Once
	closing   chan struct{}
	wg        sync.WaitGroup
}

// Start opens the raft state in cfg.Dir (bootstrapping the static quorum on
// first start), serves cfg.Listener and joins the quorum.
func Start(cfg Config) (*Controller, error) {
	if cfg.Listener == nil || cfg.Dir == "" || len(cfg.Voters) == 0 {
		return nil, errors.New("controller: Listener, Dir and Voters are required")
	}
	if cfg.BrokerSessionTimeout <= 0 {
		cfg.BrokerSessionTimeout = 9 * time.Second
	}
	if cfg.BrokerHeartbeatInterval <= 0 {
		cfg.BrokerHeartbeatInterval = 2 * time.Second
	}
	if cfg.ElectionTimeout <= 0 {
		cfg.ElectionTimeout = time.Second
	}
	if cfg.DefaultReplicationFactor <= 0 {
		cfg.DefaultReplicationFactor = 1
	}
	if cfg.DefaultNumPartitions <= 0 {
		cfg.DefaultNumPartitions = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Controller{
		cfg:     cfg,
		logger:  cfg.Logger.With("component", "controller", "node", cfg.NodeID),
		voters:  map[int32]Voter{},
		clients: map[int32]*protocol.Client{},
		closing: make(chan struct{}),
	}
	var self *Voter
	for i, v := range cfg.Voters {
		c.voters[v.ID] = v
		if v.ID == cfg.NodeID {
			self = &cfg.Voters[i]
		}
	}
	if self == nil {
		return nil, fmt.Errorf("controller: node %d is not in controller.quorum.voters", cfg.NodeID)
	}
	c.lifecycle.init()
	if err := c.startRaft(self.Addr()); err != nil {
		c.mux.close()
		if c.store != nil {
			c.store.Close()
		}
		return nil, err
	}
	c.wg.Add(2)
	go c.watchLeadership()
	go c.expireSessions()
	return c, nil
}

func (c *Controller) startRaft(selfAddr string) error {
	cfg := c.cfg
	c.mux = newMux(cfg.Listener, selfAddr, c.serveKafka)
	c.mux.wg.Add(1)
	go c.mux.serve()

	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return err
	}
	hl := newHCLogger(c.logger)
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db")})
	if err != nil {
		return fmt.Errorf("controller: open raft.db: %w", err)
	}
	c.store = store
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hl)
	if err != nil {
		return fmt.Errorf("controller: snapshot store: %w", err)
	}
	c.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  raftLayer{c.mux},
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  hl,
	})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(strconv.Itoa(int(cfg.NodeID)))
	rc.HeartbeatTimeout = cfg.ElectionTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.ElectionTimeout / 2
	rc.Logger = hl
	notify := make(chan bool, 8)
	rc.NotifyCh = notify
	c.lifecycle.notify = notify

	existing, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return err
	}
	if !existing {
		var servers []raft.Server
		for _, v := range cfg.Voters {
			servers = append(servers, raft.Server{
				Suffrage: raft.Voter,
				ID:       raft.ServerID(strconv.Itoa(int(v.ID))),
				Address:  raft.ServerAddress(v.Addr()),
			})
		}
		if err := raft.BootstrapCluster(rc, store, store, snaps, c.transport, raft.Configuration{Servers: servers}); err != nil {
			return fmt.Errorf("controller: bootstrap: %w", err)
		}
	}
	if cfg.State != nil {
		// raft restores the latest snapshot and replays the log after it:
		// the store starts empty, as the image does.
		if err := cfg.State.RestoreState(nil); err != nil {
			return fmt.Errorf("controller: clear coordinator state: %w", err)
		}
	}
	c.fsm = newFSM(c.logger, cfg.OnImage, cfg.State)
	r, err := raft.NewRaft(rc, c.fsm, store, store, snaps, c.transport)
	if err != nil {
		c.transport.Close()
		return fmt.Errorf("controller: raft: %w", err)
	}
	c.raft = r
	return nil
}

// Close stops the broker heartbeats, raft and the listener. It is
// idempotent.
func (c *Controller) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.closing)
		c.lifecycle.stop()
		c.active.Store(false)
		if c.raft != nil {
			err = c.raft.Shutdown().Error()
		}
		c.wg.Wait()
		c.mux.close()
		if c.transport != nil {
			c.transport.Close()
		}
		c.clientsMu.Lock()
		for id, cl := range c.clients {
			cl.Close()
			delete(c.clients, id)
		}
		c.clientsMu.Unlock()
		if cerr := c.store.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// Image returns the latest applied image.
func (c *Controller) Image() *Image { return c.fsm.image() }

// ActiveID is the raft leader's node id, -1 if none is known.
func (c *Controller) ActiveID() int32 {
	_, id := c.raft.LeaderWithID()
	if id == "" {
		return -1
	}
	n, err := strconv.ParseInt(string(id), 10, 32)
	if err != nil {
		return -1
	}
	return int32(n)
}

// watchLeadership follows raft's leadership notifications: on gaining it,
// wait until every committed entry is applied (a barrier), then act as the
// active controller with fresh sessions for all brokers (Kafka's
// QuorumController.claim + BrokerHeartbeatManager reset).
func (c *Controller) watchLeadership() {
	defer c.wg.Done()
	for {
		select {
		case <-c.closing:
			return
		case leader := <-c.lifecycle.notify:
			if !leader {
				if c.active.Swap(false) && c.cfg.OnActive != nil {
					c.cfg.OnActive(false)
				}
				continue
			}
			if !c.barrier() {
				continue
			}
			c.writeMu.Lock()
			c.sessions = map[int32]*brokerSession{}
			now := time.Now()
			for id := range c.fsm.image().Brokers {
				c.sessions[id] = &brokerSession{lastContact: now, shutdownOffset: -1}
			}
			active := c.raft.State() == raft.Leader
			c.active.Store(active)
			c.writeMu.Unlock()
			if !active {
				continue
			}
			c.logger.Info("active controller", "offset", c.fsm.image().Offset)
			if c.cfg.OnActive != nil {
				c.cfg.OnActive(true)
			}
		}
	}
}

// barrier waits until every entry committed before this term is applied,
// retrying while this node is still the leader. It reports whether the
// node may act as the active controller.
func (c *Controller) barrier() bool {
	for c.raft.State() == raft.Leader {
		err := c.raft.Barrier(applyTimeout).Error()
		if err == nil {
			return true
		}
		c.logger.Warn("barrier after election failed", "err", err)
		select {
		case <-c.closing:
			return false
		case <-time.After(minBackoff):
		}
	}
	return false
}

// errNotController is NOT_CONTROLLER: retry at the (new) active controller.
func errNotController(node int32) error {
	return kerrf(kerr.NotController, "node %d is not the active controller", node)
}

// MaxRecordsPerUserOp is the most metadata records one client request may
// write, Kafka's QuorumController.MAX_RECORDS_PER_USER_OP; past it Kafka
// fails the request with POLICY_VIOLATION and ExcessiveBatchMessage.
const MaxRecordsPerUserOp = 10_000

// ExcessiveBatchMessage is Kafka's message for a request past
// MaxRecordsPerUserOp.
const ExcessiveBatchMessage = "Unable to perform excessively large batch operation."

// write plans records on the current image under writeMu and commits them
// through raft as one entry. It returns the offset to wait for: the entry's
// index, or the image's offset when there is nothing to write.
func (c *Controller) write(plan func(img *Image) ([]record, error)) (uint64, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.writeLocked(plan)
}

func (c *Controller) writeLocked(plan func(img *Image) ([]record, error)) (uint64, error) {
	if !c.active.Load() {
		return 0, errNotController(c.cfg.NodeID)
	}
	img := c.fsm.image()
	recs, err := plan(img)
	if err != nil || len(recs) == 0 {
		return img.Offset, err
	}
	f := c.raft.Apply(encodeEntry(recs), applyTimeout)
	if err := f.Error(); err != nil {
		// Lost leadership (raft's notification will deactivate us) or
		// shutting down: the entry may or may not commit; the caller
		// retries at the active controller, whose plan sees the outcome.
		return 0, fmt.Errorf("%w (%v)", errNotController(c.cfg.NodeID), err)
	}
	if err, _ := f.Response().(error); err != nil {
		return 0, kerrf(kerr.UnknownServerError, "metadata entry refused: %v", err)
	}
	return f.Index(), nil
}

// AppendState commits one change set of the coordinators' state through
// the metadata log; it returns once this node has applied it. Only the
// active controller, whose coordinators these are, may append:
// NOT_CONTROLLER elsewhere, or when leadership was lost meanwhile.
func (c *Controller) AppendState(ctx context.Context, changes []byte) error {
	_, err := c.write(func(*Image) ([]record, error) {
		return []record{{Type: recCoordinatorState, State: changes}}, nil
	})
	return err
}

// Active reports whether this node is the active controller now.
func (c *Controller) Active() bool { return c.active.Load() }

func (c *Controller) unclean() uncleanFunc { return c.cfg.UncleanLeaderElection }

// newTopicID returns a random topic id (a version 4 UUID, never zero).
func newTopicID() [16]byte {
	var id [16]byte
	for id == ([16]byte{}) {
		_, _ = rand.Read(id[:])
		id[6] = id[6]&0x0f | 0x40
		id[8] = id[8]&0x3f | 0x80
	}
	return id
}
