package controller

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"

	"github.com/hashicorp/raft"
)

// StateStore keeps the group and transaction coordinators' state on every
// node: the active controller's coordinators append change sets to the
// metadata log (AppendState), and every node applies them here in log
// order, so whichever node becomes the coordinator next finds the state
// (Kafka keeps it in the replicated __consumer_offsets and
// __transaction_state; kbroker in the metadata log). The store is rebuilt
// from the latest snapshot and the log at every start.
type StateStore interface {
	// ApplyState applies one change set, in log order.
	ApplyState(changes []byte) error
	// SnapshotState returns the whole state, for a raft snapshot.
	SnapshotState() ([]byte, error)
	// RestoreState replaces the whole state; nil empties it.
	RestoreState(state []byte) error
}

// fsm is the raft state machine: it applies metadata entries to the image
// (Kafka's MetadataLoader feeding MetadataPublishers). raft calls Apply,
// Restore and Snapshot from its one FSM goroutine.
type fsm struct {
	logger  *slog.Logger
	onImage func(*Image)
	state   StateStore // nil: coordinator state records are applied to nothing

	mu      sync.Mutex
	img     *Image
	changed chan struct{} // closed and replaced on every new image
}

func newFSM(logger *slog.Logger, onImage func(*Image), state StateStore) *fsm {
	return &fsm{logger: logger, onImage: onImage, state: state, img: emptyImage(), changed: make(chan struct{})}
}

func (f *fsm) image() *Image {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.img
}

// imageAndChanged returns the image and a channel closed when it is
// replaced, for waiting without missing an update.
func (f *fsm) imageAndChanged() (*Image, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.img, f.changed
}

// publish installs img; onImage hears of it unless only the offset moved
// (an entry of coordinator state alone: the metadata is the same).
func (f *fsm) publish(img *Image, metadataChanged bool) {
	f.mu.Lock()
	f.img = img
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	if f.onImage != nil && metadataChanged {
		f.onImage(img)
	}
}

// Apply applies one entry. An entry that does not decode or does not fit
// the image is refused whole, identically on every node; the offset still
// advances so that waiters on it wake. The returned error reaches the
// leader's ApplyFuture.Response.
func (f *fsm) Apply(l *raft.Log) any {
	cur := f.image()
	recs, err := decodeEntry(l.Data)
	var next *Image
	stateOnly := err == nil && !slices.ContainsFunc(recs, func(r record) bool { return r.Type != recCoordinatorState })
	switch {
	case stateOnly:
		// The coordinators' writes, the bulk of the log: the image stays
		// (it is immutable: a shallow copy shares its maps), only its
		// offset moves.
		n := *cur
		n.Offset = l.Index
		next = &n
	case err == nil:
		next, err = cur.apply(l.Index, recs)
	}
	if err == nil && f.state != nil {
		for _, r := range recs {
			if r.Type != recCoordinatorState {
				continue
			}
			if serr := f.state.ApplyState(r.State); serr != nil {
				// A local store failure (disk): this node's copy is now
				// behind; it is rebuilt from the log at its next start.
				f.logger.Error("applying coordinator state", "offset", l.Index, "err", serr)
			}
		}
	}
	if err != nil {
		f.logger.Error("refusing metadata entry", "offset", l.Index, "err", err)
		n := *cur
		n.Offset = l.Index
		next = &n
	}
	f.publish(next, !stateOnly)
	return err
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	snap := fsmSnapshot{img: f.image()}
	if f.state != nil {
		// Taken here, in the FSM goroutine, so it matches the image.
		state, err := f.state.SnapshotState()
		if err != nil {
			return nil, err
		}
		snap.state = state
	}
	return snap, nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	img, state, err := decodeSnapshot(b)
	if err != nil {
		return err
	}
	if f.state != nil {
		if err := f.state.RestoreState(state); err != nil {
			return err
		}
	}
	f.publish(img, true)
	return nil
}

// waitOffset waits until the image has applied offset.
func (f *fsm) waitOffset(ctx context.Context, offset uint64) (*Image, error) {
	for {
		img, ch := f.imageAndChanged()
		if img.Offset >= offset {
			return img, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// fsmSnapshot is an image being written out; images are immutable, so
// Persist may run concurrently with Apply.
type fsmSnapshot struct {
	img   *Image
	state []byte
}

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(encodeSnapshot(s.img, s.state)); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (fsmSnapshot) Release() {}
