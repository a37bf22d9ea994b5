// Package batchwriter is the single writer of a bbolt store that several
// goroutines change: changes are queued in the order they are made and
// applied in batches, one bbolt transaction (one fsync) per batch, so
// concurrent changes share an fsync (the group commit Kafka gets from
// appending to __consumer_offsets and __transaction_state). Changes write
// through a kvlog.Tx, so a batch is also one entry of a replicated log.
package batchwriter

import (
	"errors"
	"slices"
	"sync"

	"github.com/kbroker/kbroker/internal/kvlog"
)

// Writer applies queued changes in batches on its own goroutine.
type Writer struct {
	db kvlog.DB

	mu      sync.Mutex
	closed  bool // set by Close, under mu
	pending []write
	wake    chan struct{} // capacity 1
	done    chan struct{}
	stopped chan struct{}
}

type write struct {
	apply func(tx *kvlog.Tx) error // nil: a barrier
	res   chan error               // capacity 1
}

// New starts a writer over db.
func New(db kvlog.DB) *Writer {
	w := &Writer{db: db, wake: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{})}
	go w.run()
	return w
}

// Enqueue queues a change; the returned channel yields its outcome once it
// is durable. A change of a batch that fails fails the whole batch. A nil
// change is a barrier: it writes nothing and is answered once everything
// queued before it is durable. After Close it fails at once with
// ErrClosed: a cluster's coordinators are closed when their node stops
// being the coordinator, while requests may still reach them.
func (w *Writer) Enqueue(apply func(tx *kvlog.Tx) error) <-chan error {
	wr := write{apply: apply, res: make(chan error, 1)}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		wr.res <- ErrClosed
		return wr.res
	}
	w.pending = append(w.pending, wr)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return wr.res
}

// ErrClosed answers changes enqueued after Close.
var ErrClosed = errors.New("batchwriter: closed")

// Close applies what is queued and stops the writer. It is idempotent.
func (w *Writer) Close() {
	w.mu.Lock()
	already := w.closed
	w.closed = true
	w.mu.Unlock()
	if !already {
		close(w.done)
	}
	<-w.stopped
}

func (w *Writer) run() {
	defer close(w.stopped)
	for {
		select {
		case <-w.wake:
		case <-w.done:
			w.flush() // whatever was queued before Close
			return
		}
		w.flush()
	}
}

func (w *Writer) flush() {
	w.mu.Lock()
	batch := w.pending
	w.pending = nil
	w.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	var err error
	if slices.ContainsFunc(batch, func(wr write) bool { return wr.apply != nil }) {
		err = w.db.Update(func(tx *kvlog.Tx) error {
			for _, wr := range batch {
				if wr.apply == nil {
					continue
				}
				if err := wr.apply(tx); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for _, wr := range batch {
		wr.res <- err
	}
}
