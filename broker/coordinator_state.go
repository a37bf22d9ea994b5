package broker

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kbroker/kbroker/controller"
	"github.com/kbroker/kbroker/internal/kvlog"
)

// coordinatorState is a cluster node's copy of the group and transaction
// coordinators' state (controller.StateStore): a bbolt file beside the raft
// state, written only by the metadata log's apply path, in log order, so
// every node holds what the active controller's coordinators committed and
// the next one to be elected starts from it. It is rebuilt from the latest
// raft snapshot and the log at every start, so it is not fsynced itself.
type coordinatorState struct {
	db *bolt.DB
}

func openCoordinatorState(path string) (*coordinatorState, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: true, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("broker: coordinator state %s: %w", path, err)
	}
	return &coordinatorState{db: db}, nil
}

func (s *coordinatorState) close() error { return s.db.Close() }

// ApplyState applies one committed change set.
func (s *coordinatorState) ApplyState(b []byte) error {
	changes, err := kvlog.Decode(b)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return kvlog.Apply(tx, changes) })
}

// SnapshotState returns the whole store as one change set.
func (s *coordinatorState) SnapshotState() ([]byte, error) {
	var changes []kvlog.Change
	err := s.db.View(func(tx *bolt.Tx) error {
		changes = kvlog.Dump(tx)
		return nil
	})
	return kvlog.Encode(changes), err
}

// RestoreState replaces the store with state (nil: empty).
func (s *coordinatorState) RestoreState(state []byte) error {
	var changes []kvlog.Change
	if state != nil {
		var err error
		if changes, err = kvlog.Decode(state); err != nil {
			return err
		}
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		var names [][]byte
		if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			names = append(names, append([]byte(nil), name...))
			return nil
		}); err != nil {
			return err
		}
		for _, n := range names {
			if err := tx.DeleteBucket(n); err != nil {
				return err
			}
		}
		return kvlog.Apply(tx, changes)
	})
}

// replicatedStateDB is what the active controller's coordinators write
// through (kvlog.DB): a write transaction runs against the local copy only
// to learn its changes, is rolled back, and its changes go through the
// metadata log (AppendState), which applies them here and on every node.
// The coordinators' single writer (batchwriter) serialises the writes, and
// each returns only once applied, so each sees its predecessors.
type replicatedStateDB struct {
	state *coordinatorState
	ctl   *controller.Controller
}

// stateAppendTimeout bounds one write of coordinator state.
const stateAppendTimeout = 30 * time.Second

func (r replicatedStateDB) Update(fn func(*kvlog.Tx) error) error {
	btx, err := r.state.db.Begin(true)
	if err != nil {
		return err
	}
	kt := kvlog.NewTx(btx)
	ferr := fn(kt)
	changes := kt.Changes()
	if err := btx.Rollback(); err != nil {
		return err
	}
	if ferr != nil || len(changes) == 0 {
		return ferr
	}
	ctx, cancel := context.WithTimeout(context.Background(), stateAppendTimeout)
	defer cancel()
	return r.ctl.AppendState(ctx, kvlog.Encode(changes))
}

func (r replicatedStateDB) View(fn func(*bolt.Tx) error) error { return r.state.db.View(fn) }
