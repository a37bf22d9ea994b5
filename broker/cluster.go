package broker

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kbroker/kbroker/controller"
	"github.com/kbroker/kbroker/protocol"
	"github.com/kbroker/kbroker/storage"
)

// cluster is a clustered broker's link to the metadata quorum and to the
// other replicas of its partitions (Kafka's BrokerServer metadata
// publishing plus ReplicaManager's become-leader/become-follower and
// ReplicaFetcherManager). A single-node broker has none.
//
// The controller's image is the truth: reconcile makes the local logs and
// the Partition states follow it, one image at a time, in order.
type cluster struct {
	s   *Server
	ctl *controller.Controller

	reconcileMu sync.Mutex // one reconcile at a time
	applied     *controller.Image
	// parts are this broker's replicas: copy-on-write, replaced by reconcile.
	parts atomic.Pointer[map[topicPartition]*Partition]
	wake  chan struct{} // capacity 1: a newer image is waiting
	ready atomic.Bool   // registered and caught up: reconcile may delete

	fetchMu  sync.Mutex
	fetchers map[int32]*replicaFetcher // by leader id

	clientsMu sync.Mutex
	clients   map[int32]*protocol.Client // inter-broker connections, by broker id

	// state is this node's copy of the coordinators' state; active and
	// activeWake drive runCoordinators.
	state      *coordinatorState
	active     atomic.Bool
	activeWake chan struct{}
}

type topicPartition struct {
	topic     string
	partition int32
}

// startCluster binds the controller listener, joins the metadata quorum,
// registers this broker with the endpoints its listeners advertise (they
// are bound already) and waits until the controller has unfenced it, which
// means its image has caught up; then it makes the local logs match the
// image. Only then does the broker serve clients (Kafka's broker start-up
// waits for the same catch-up).
func (s *Server) startCluster() error {
	cfg := s.cfg
	c := &cluster{s: s, wake: make(chan struct{}, 1), fetchers: make(map[int32]*replicaFetcher), activeWake: make(chan struct{}, 1)}
	empty := map[topicPartition]*Partition{}
	c.parts.Store(&empty)
	cl := cfg.ControllerListeners[0]
	port := cl.Port
	if i := slices.IndexFunc(cfg.QuorumVoters, func(v controller.Voter) bool { return v.ID == cfg.NodeID }); port == 0 && i >= 0 {
		port = cfg.QuorumVoters[i].Port
	}
	metaDir := filepath.Join(cfg.LogDir, storage.MetadataTopic+"-0")
	if err := os.MkdirAll(metaDir, 0o755); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	state, err := openCoordinatorState(filepath.Join(metaDir, "coordinators.db"))
	if err != nil {
		return err
	}
	c.state = state
	s.cluster = c // closes the state on failure from here on
	ln, err := net.Listen("tcp", net.JoinHostPort(cl.Host, fmt.Sprint(port)))
	if err != nil {
		return fmt.Errorf("broker: controller listener %s: %w", cl, err)
	}
	ctl, err := controller.Start(controller.Config{
		NodeID:                   cfg.NodeID,
		Voters:                   cfg.QuorumVoters,
		Dir:                      metaDir,
		Listener:                 ln,
		ClusterID:                s.clusterID,
		BrokerSessionTimeout:     cfg.BrokerSessionTimeout,
		BrokerHeartbeatInterval:  cfg.BrokerHeartbeatInterval,
		ElectionTimeout:          cfg.QuorumElectionTimeout,
		DefaultReplicationFactor: cfg.DefaultReplicationFactor,
		DefaultNumPartitions:     cfg.NumPartitions,
		ValidateTopicConfigs: func(configs map[string]string) error {
			_, err := validateTopicConfigs(configs)
			return err
		},
		UncleanLeaderElection: s.uncleanLeaderElection,
		Logger:                s.logger,
		OnImage:               func(*controller.Image) { notify(c.wake) },
		State:                 state,
		OnActive: func(active bool) {
			c.active.Store(active)
			notify(c.activeWake)
		},
	})
	if err != nil {
		ln.Close()
		return fmt.Errorf("broker: metadata quorum: %w", err)
	}
	c.ctl = ctl
	s.goroutine(c.runCoordinators)

	var endpoints []controller.Endpoint
	for _, bl := range s.listeners {
		a := s.advertisedFor(bl)
		endpoints = append(endpoints, controller.Endpoint{Listener: a.Name, Host: a.Host, Port: int32(a.Port)})
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	defer cancel()
	if err := ctl.RegisterBroker(ctx, endpoints, cfg.BrokerRack); err != nil {
		return fmt.Errorf("broker: register with the controller: %w", err)
	}
	if err := ctl.WaitUnfenced(ctx); err != nil {
		return fmt.Errorf("broker: wait to be unfenced: %w", err)
	}
	c.ready.Store(true)
	c.reconcile()
	s.goroutine(c.reconcileLoop)
	s.goroutine(c.isrLoop)
	return nil
}

// uncleanLeaderElection is a topic's effective
// unclean.leader.election.enable: its override, else the broker's.
func (s *Server) uncleanLeaderElection(overrides map[string]string) bool {
	v, ok := overrides["unclean.leader.election.enable"]
	if !ok {
		v = s.cfg.Props["unclean.leader.election.enable"]
	}
	return v == "true"
}

func (c *cluster) reconcileLoop() {
	for {
		select {
		case <-c.wake:
			c.reconcile()
		case <-c.s.closing:
			return
		}
	}
}

// sync reconciles the newest image now: a handler that just changed the
// metadata through the controller calls it, so its own next read sees the
// change locally.
func (c *cluster) sync() { c.reconcile() }

// reconcile brings the local logs and partition states to the controller's
// current image (Kafka's BrokerMetadataPublisher → ReplicaManager.applyDelta).
func (c *cluster) reconcile() {
	c.reconcileMu.Lock()
	defer c.reconcileMu.Unlock()
	img := c.ctl.Image()
	if img == c.applied || !c.ready.Load() {
		return
	}
	s := c.s
	logs := s.logs
	now := time.Now()

	// Topics: create, grow, reconfigure, recreate (same name, new id) and,
	// once caught up, delete what the image no longer has.
	for name, ti := range img.Topics {
		t, ok := logs.Topic(name)
		if ok && t.ID != storage.TopicID(ti.ID) {
			if err := logs.DeleteTopic(name); err != nil {
				s.logger.Error("delete replaced topic", "topic", name, "err", err)
				continue
			}
			ok = false
		}
		var err error
		switch {
		case !ok:
			t, err = logs.CreateTopicWithID(name, storage.TopicID(ti.ID), int32(len(ti.Partitions)), ti.Configs)
		case len(t.Partitions) < len(ti.Partitions):
			t, err = logs.CreatePartitions(name, int32(len(ti.Partitions)))
		}
		if err == nil && !maps.Equal(t.Configs, ti.Configs) && !(len(t.Configs) == 0 && len(ti.Configs) == 0) {
			t, err = logs.SetTopicConfig(name, ti.Configs)
		}
		if err != nil {
			s.logger.Error("apply topic metadata", "topic", name, "err", err)
		}
	}
	for _, t := range logs.Topics() {
		if _, ok := img.Topics[t.Name]; !ok {
			if err := logs.DeleteTopic(t.Name); err != nil && !errors.Is(err, storage.ErrUnknownTopic) {
				s.logger.Error("delete topic", "topic", t.Name, "err", err)
			}
		}
	}

	// Partitions: this broker's replicas become leaders or followers.
	old := *c.parts.Load()
	parts := make(map[topicPartition]*Partition, len(old))
	for name, ti := range img.Topics {
		t, ok := logs.Topic(name)
		if !ok {
			continue
		}
		for i, reg := range ti.Partitions {
			if !slices.Contains(reg.Replicas, s.cfg.NodeID) || i >= len(t.Partitions) {
				continue
			}
			tp := topicPartition{name, int32(i)}
			p := old[tp]
			if p == nil || p.log != t.Partitions[i] {
				p = &Partition{topic: name, index: int32(i), log: t.Partitions[i], self: s.cfg.NodeID, reg: controller.PartitionRegistration{Leader: -1, LeaderEpoch: -1}}
			}
			parts[tp] = p
			becameLeader, newFollower := p.update(reg, now)
			switch {
			case becameLeader:
				c.stopFetching(p)
				s.logger.Info("became leader", "topic", name, "partition", i, "epoch", reg.LeaderEpoch, "isr", reg.ISR)
			case newFollower:
				c.stopFetching(p)
				c.startFetching(p, reg.Leader, reg.LeaderEpoch)
				s.logger.Info("became follower", "topic", name, "partition", i, "leader", reg.Leader, "epoch", reg.LeaderEpoch)
			case reg.Leader < 0:
				c.stopFetching(p)
			}
			// A smaller ISR (a follower fenced or shut down) may commit
			// what waited for it.
			p.maybeIncrementHighWatermark()
		}
	}
	for tp, p := range old {
		if parts[tp] != p {
			c.stopFetching(p)
		}
	}
	c.parts.Store(&parts)
	if s.authz != nil && (c.applied == nil || img.ACLs != c.applied.ACLs) {
		s.authz.SetACLs(img.ACLs.Bindings())
	}
	c.applied = img
	// Waiting acks=all produces and follower fetches re-check leadership.
	for _, p := range parts {
		p.notifyAppend()
	}
}

// partition returns this broker's replica of topic's partition, nil if it
// holds none.
func (c *cluster) partition(topic string, partition int32) *Partition {
	return (*c.parts.Load())[topicPartition{topic, partition}]
}

// registration returns a partition's registration in the image.
func (c *cluster) registration(topic string, partition int32) (controller.PartitionRegistration, bool) {
	ti := c.ctl.Image().Topics[topic]
	if ti == nil || partition < 0 || int(partition) >= len(ti.Partitions) {
		return controller.PartitionRegistration{}, false
	}
	return ti.Partitions[partition], true
}

// endpoint returns how broker id is reached on listener, from its
// registration.
func (c *cluster) endpoint(id int32, listener string) (controller.Endpoint, bool) {
	b, ok := c.ctl.Image().Brokers[id]
	if !ok {
		return controller.Endpoint{}, false
	}
	i := slices.IndexFunc(b.Endpoints, func(e controller.Endpoint) bool { return e.Listener == listener })
	if i < 0 {
		return controller.Endpoint{}, false
	}
	return b.Endpoints[i], true
}

// isrLoop proposes ISR changes for the partitions this broker leads, at
// half replica.lag.time.max.ms as Kafka's isr-expiration task does
// (followers that catch up are also added at once, from their fetches).
func (c *cluster) isrLoop() {
	every := max(c.s.cfg.ReplicaLagTimeMax/2, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			for _, p := range *c.parts.Load() {
				c.maybeAlterISR(p)
			}
		case <-c.s.closing:
			return
		}
	}
}

// isrEligible reports whether broker id may join an ISR: registered,
// unfenced and not in controlled shutdown.
func (c *cluster) isrEligible(id int32) bool {
	b, ok := c.ctl.Image().Brokers[id]
	return ok && !b.Fenced && !b.InControlledShutdown
}

// maybeAlterISR sends the ISR change p's leader proposes, if any, to the
// controller in the background (Kafka's AlterPartitionManager).
func (c *cluster) maybeAlterISR(p *Partition) {
	ch, ok := p.proposedISR(time.Now(), c.s.cfg.ReplicaLagTimeMax, c.isrEligible)
	if !ok {
		return
	}
	started := c.s.goroutine(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		go func() {
			select {
			case <-c.s.closing:
				cancel()
			case <-ctx.Done():
			}
		}()
		reg, err := c.ctl.AlterPartition(ctx, p.topic, p.index, ch.leaderEpoch, ch.partitionEpoch, ch.isr)
		if err != nil {
			// A newer epoch, or the change written together with a new
			// leader (a reassignment completing): the image tells.
			if !errors.Is(err, kerr.FencedLeaderEpoch) && !errors.Is(err, kerr.NewLeaderElected) {
				c.s.logger.Warn("AlterPartition failed", "topic", p.topic, "partition", p.index, "isr", ch.isr, "err", err)
			}
			p.alterDone(nil)
			c.sync()
			return
		}
		c.s.logger.Info("ISR changed", "topic", p.topic, "partition", p.index, "isr", reg.ISR, "partition_epoch", reg.PartitionEpoch)
		p.alterDone(&reg)
		c.sync()
	})
	if !started {
		p.alterDone(nil)
	}
}

// close stops the fetchers and leaves the quorum. With controlled
// shutdown it first asks the controller to move leadership off this
// broker, so clients move on before the connections close.
func (c *cluster) controlledShutdown(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.ctl.ControlledShutdown(ctx); err != nil {
		c.s.logger.Warn("controlled shutdown did not complete", "err", err)
		return
	}
	c.sync()
}

func (c *cluster) close() {
	c.fetchMu.Lock()
	fetchers := c.fetchers
	c.fetchers = map[int32]*replicaFetcher{}
	c.fetchMu.Unlock()
	for _, f := range fetchers {
		f.stop()
	}
	c.clientsMu.Lock()
	for _, cl := range c.clients {
		cl.Close()
	}
	c.clients = nil
	c.clientsMu.Unlock()
	if c.ctl != nil {
		c.ctl.Close()
	}
	if c.state != nil {
		c.state.close()
	}
}

// allocateProducerIDs takes a block of producer ids from the controller,
// for the ProducerIDManager of a clustered broker.
func (s *Server) allocateProducerIDs() (int64, int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first, count, err := s.cluster.ctl.AllocateProducerIDs(ctx)
	return first, int64(count), err
}

// partitionState is a partition's state as this broker acts on it: its own
// replica's (which changes only when reconcile has made the log follow), or
// for a partition it holds no replica of, the image's.
func (c *cluster) partitionState(topic string, partition int32) PartitionState {
	if p := c.partition(topic, partition); p != nil {
		return p.state()
	}
	reg, ok := c.registration(topic, partition)
	if !ok {
		return PartitionState{Leader: -1, LeaderEpoch: -1}
	}
	return PartitionState{Leader: reg.Leader, LeaderEpoch: reg.LeaderEpoch, Replicas: reg.Replicas, ISR: reg.ISR}
}

// controllerTimeout bounds a metadata change made for a client request.
const controllerTimeout = 30 * time.Second

// createTopic creates a topic through the controller and returns its local
// logs. A concurrent creation of the same topic is not an error.
func (c *cluster) createTopic(spec controller.CreateTopicSpec) (*storage.Topic, error) {
	err := c.change(func(ctx context.Context) error {
		_, err := c.ctl.CreateTopic(ctx, spec)
		return err
	})
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return nil, err
	}
	c.sync()
	t, ok := c.s.logs.Topic(spec.Name)
	if !ok {
		return nil, kerr.UnknownTopicOrPartition
	}
	return t, nil
}

// deleteTopic, createPartitions and setTopicConfigs change a topic through
// the controller and wait until the local logs follow.
func (c *cluster) deleteTopic(name string) error {
	return c.change(func(ctx context.Context) error { return c.ctl.DeleteTopic(ctx, name) })
}

func (c *cluster) createPartitions(name string, total int32, assignment [][]int32) error {
	return c.change(func(ctx context.Context) error { return c.ctl.CreatePartitions(ctx, name, total, assignment) })
}

func (c *cluster) setTopicConfigs(name string, configs map[string]string) error {
	return c.change(func(ctx context.Context) error { return c.ctl.SetTopicConfigs(ctx, name, configs) })
}

func (c *cluster) change(op func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), controllerTimeout)
	defer cancel()
	if err := op(ctx); err != nil {
		return err
	}
	c.sync()
	return nil
}

// coordinatorID is the broker that coordinates every group and
// transaction of the cluster: the active controller, whose coordinators
// write their state through the metadata log (so the next active
// controller takes over with it); -1 while there is none. One coordinator,
// not one per __consumer_offsets partition as in Kafka: a transactional
// offset commit and its transaction meet in one place.
func (c *cluster) coordinatorID() int32 { return c.ctl.ActiveID() }

// coordinator returns the coordinator of every key and its endpoint on
// listener.
func (c *cluster) coordinator(listener string) (int32, controller.Endpoint, bool) {
	id := c.coordinatorID()
	if id < 0 {
		return -1, controller.Endpoint{}, false
	}
	ep, ok := c.endpoint(id, listener)
	return id, ep, ok
}

// clusterIDFromVoters names a cluster whose nodes were given no CLUSTER_ID:
// every node of one quorum derives the same id from the voters, where Kafka
// would have them formatted with one id by kafka-storage.
func clusterIDFromVoters(voters []controller.Voter) string {
	h := sha256.New()
	for _, v := range voters {
		fmt.Fprintf(h, "%d@%s:%d,", v.ID, v.Host, v.Port)
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:16])
}

// runCoordinators runs the group and transaction coordinators on this node
// while it is the active controller (Kafka's coordinators load on becoming
// a partition's leader and unload on resigning): started over the
// replicated state once the controller has caught up, swapped out and
// closed when it stops being active.
func (c *cluster) runCoordinators() {
	s := c.s
	for {
		select {
		case <-c.activeWake:
		case <-s.closing:
			return
		}
		if c.active.Load() && s.coord.Load() == nil {
			coord, err := s.newCoordinators(replicatedStateDB{state: c.state, ctl: c.ctl})
			if err != nil {
				s.logger.Error("starting the coordinators", "err", err)
				continue
			}
			s.mu.Lock()
			if s.closed { // Close has taken its coordinators already
				s.mu.Unlock()
				coord.close()
				return
			}
			s.coord.Store(coord)
			s.mu.Unlock()
			s.logger.Info("coordinating groups and transactions")
			if !c.active.Load() {
				notify(c.activeWake) // lost it meanwhile: unload below
			}
		} else if !c.active.Load() {
			if old := s.coord.Swap(nil); old != nil {
				s.logger.Info("no longer coordinating groups and transactions")
				old.close()
			}
		}
	}
}

// replicaLog is leaderLog for fetches a follower may serve (KIP-392): any
// replica this broker holds of a partition that has a leader, with the
// client's CurrentLeaderEpoch checked as the leader checks it.
func (c *cluster) replicaLog(t *storage.Topic, partition, currentLeaderEpoch int32) (*storage.Log, PartitionState, *kerr.Error) {
	if t == nil || partition < 0 || int(partition) >= len(t.Partitions) {
		return nil, PartitionState{}, kerr.UnknownTopicOrPartition
	}
	p := c.partition(t.Name, partition)
	if p == nil {
		return nil, c.partitionState(t.Name, partition), kerr.NotLeaderForPartition
	}
	st := p.state()
	if err := checkLeaderEpoch(currentLeaderEpoch, st); err != nil {
		return nil, st, err
	}
	if st.Leader < 0 {
		return nil, st, kerr.LeaderNotAvailable
	}
	return p.log, st, nil
}

// preferredReadReplica is the replica a consumer in rack should read from
// (Kafka's RackAwareReplicaSelector): this leader if it is in that rack or
// no live in-sync replica is, else the first such replica; -1 means here.
func (c *cluster) preferredReadReplica(rack string, st PartitionState) int32 {
	img := c.ctl.Image()
	if img.Brokers[c.s.cfg.NodeID].Rack == rack {
		return -1
	}
	for _, r := range st.ISR {
		if b, ok := img.Brokers[r]; ok && r != c.s.cfg.NodeID && !b.Fenced && b.Rack == rack {
			return r
		}
	}
	return -1
}
