package coordinator

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kbroker/kbroker/internal/kvlog"
)

// TopicMetadata is what the coordinator needs to know about topics: commits
// to unknown topics are refused, and KIP-848 assignment spreads partitions.
type TopicMetadata interface {
	// Topic returns a topic's id and partition count; ok is false if there
	// is no such topic.
	Topic(name string) (id [16]byte, partitions int32, ok bool)
	// TopicByID resolves a topic id.
	TopicByID(id [16]byte) (name string, partitions int32, ok bool)
	// TopicNames lists every topic, for regex subscriptions.
	TopicNames() []string
}

// RequestContext is what a handler knows about the client beyond the
// request body.
type RequestContext struct {
	ClientID   string
	ClientHost string // as Kafka reports it: "/127.0.0.1"
}

// group is one entry of the coordinator's group table: a *ClassicGroup or
// a *ConsumerGroup (Kafka's Group interface).
type group interface {
	// Type is what ListGroups reports: "classic" or "consumer".
	Type() string
	// State is the state ListGroups and Describe* report.
	State() string
	// ProtocolType is "consumer" for consumer groups; "" for a group that
	// only ever had offsets committed.
	ProtocolType() string
	// IsEmpty reports whether the group has no members.
	IsEmpty() bool
	// memberCount is the number of members, for metrics.
	memberCount() int
	// validateOffsetCommit checks who commits (Group.validateOffsetCommit):
	// nil, or the error every partition of the commit gets.
	validateOffsetCommit(memberID string, instanceID *string, generationOrEpoch int32, transactional bool, version int16) *kerr.Error
	// validateOffsetFetch checks the member of an OffsetFetch v9+ that
	// names one (KIP-848); other fetches pass memberID "" and epoch -1.
	validateOffsetFetch(memberID string, memberEpoch int32) *kerr.Error
	// validateOffsetDelete is the group-level check of OffsetDelete.
	validateOffsetDelete() *kerr.Error
	// isSubscribedToTopic reports whether a member consumes topic, which
	// protects its offsets from OffsetDelete and from expiry.
	isSubscribedToTopic(topic string) bool
	// record is the group's persisted form.
	record() storedGroup
	// stop cancels the group's timers and fails its waiting requests; the
	// group is being deleted or the coordinator is closing.
	stop()
}

// Group types and states as Kafka names them on the wire.
const (
	groupTypeClassic  = "classic"
	groupTypeConsumer = "consumer"
)

// GroupCoordinator is Kafka's GroupCoordinator for one broker: every group
// is coordinated here.
type GroupCoordinator struct {
	cfg    Config
	topics TopicMetadata
	logger *slog.Logger
	store  *store
	now    func() time.Time

	mu      sync.Mutex
	groups  map[string]group
	offsets map[string]map[TopicPartition]OffsetAndMetadata // committed offsets by group
	txn     txnOffsets                                      // offsets staged by open transactions
	closed  bool
	done    chan struct{} // closed by Close: waiting requests give up
	wg      sync.WaitGroup
}

// NewGroupCoordinator loads the stored groups and offsets from db and starts
// the coordinator.
func NewGroupCoordinator(cfg Config, db kvlog.DB, topics TopicMetadata, logger *slog.Logger) (*GroupCoordinator, error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	st, err := newStore(db)
	if err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	gc := &GroupCoordinator{
		cfg:     cfg,
		topics:  topics,
		logger:  logger,
		store:   st,
		now:     time.Now,
		groups:  make(map[string]group),
		offsets: make(map[string]map[TopicPartition]OffsetAndMetadata),
		txn:     newTxnOffsets(),
		done:    make(chan struct{}),
	}
	storedGroups, storedOffsets, err := st.load()
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("coordinator: load: %w", err)
	}
	storedTxnOffsets, err := st.loadTxnOffsets()
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("coordinator: load transactional offsets: %w", err)
	}
	gc.mu.Lock()
	for id, rec := range storedGroups {
		switch {
		case rec.Type == groupTypeClassic && rec.Classic != nil:
			gc.groups[id] = loadClassicGroup(gc, id, rec.Classic)
		case rec.Type == groupTypeConsumer && rec.Consumer != nil:
			gc.groups[id] = loadConsumerGroup(gc, id, rec.Consumer)
		default:
			logger.Warn("skipping stored group of unknown type", "group", id, "type", rec.Type)
		}
	}
	for id, offs := range storedOffsets {
		gc.offsets[id] = offs
		if gc.groups[id] == nil { // offsets of a group whose record predates it
			gc.groups[id] = newClassicGroup(gc, id)
		}
	}
	gc.installTxnOffsets(storedTxnOffsets)
	gc.mu.Unlock()
	gc.wg.Add(1)
	go gc.expireOffsetsLoop()
	return gc, nil
}

// Close stops every timer, answers waiting requests, and waits until every
// queued change is on disk.
func (gc *GroupCoordinator) Close() {
	gc.mu.Lock()
	if gc.closed {
		gc.mu.Unlock()
		return
	}
	gc.closed = true
	close(gc.done)
	for _, g := range gc.groups {
		g.stop()
	}
	gc.mu.Unlock()
	gc.wg.Wait()
	gc.store.Close()
}

// persist queues g's record; call with gc.mu held so records land in the
// order they were made.
func (gc *GroupCoordinator) persist(id string, g group) <-chan error {
	return gc.store.Enqueue(putGroup(id, g.record()))
}

// await waits for a queued change, outside gc.mu. A change that does not
// reach the disk is reported as Kafka reports a failed __consumer_offsets
// append.
func (gc *GroupCoordinator) await(res <-chan error) *kerr.Error {
	if err := <-res; err != nil {
		gc.logger.Error("coordinator state not stored", "err", err)
		return kerr.UnknownServerError
	}
	return nil
}

// afterFunc runs f under gc.mu after d, unless the coordinator has closed;
// f re-checks that what it was armed for still holds.
func (gc *GroupCoordinator) afterFunc(d time.Duration, f func()) *time.Timer {
	return time.AfterFunc(d, func() {
		gc.mu.Lock()
		defer gc.mu.Unlock()
		if gc.closed {
			return
		}
		f()
	})
}

// removeGroup drops a group, its offsets and the offsets transactions
// staged for it from memory; the caller queues the deletion.
func (gc *GroupCoordinator) removeGroup(id string) {
	if g := gc.groups[id]; g != nil {
		g.stop()
	}
	delete(gc.groups, id)
	delete(gc.offsets, id)
	gc.txn.removeGroup(id)
}

// Groups counts groups by state, for metrics.
func (gc *GroupCoordinator) Groups() map[string]int {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	out := make(map[string]int)
	for _, g := range gc.groups {
		out[g.State()]++
	}
	return out
}
