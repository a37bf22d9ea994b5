package txn

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kbroker/kbroker/internal/kvlog"
)

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// ProducerIDs hands out new producer ids (Kafka's ProducerIdManager; its
// blocks are persisted elsewhere). It is called with the coordinator's lock
// held: it should rarely wait. A *kerr.Error it returns is answered as is;
// any other error as UNKNOWN_SERVER_ERROR, as Kafka answers an exception.
type ProducerIDs interface {
	NextProducerID() (int64, error)
}

// Partitions answers whether a partition exists, for
// UNKNOWN_TOPIC_OR_PARTITION.
type Partitions interface {
	PartitionExists(topic string, partition int32) bool
}

// MarkerWriter completes a transaction's data (Kafka's
// TransactionMarkerChannelManager and the WriteTxnMarkers it sends): it
// appends a COMMIT or ABORT control batch for (producerID, producerEpoch)
// into each partition and commits or drops the offsets the producer staged
// with TxnOffsetCommit in the given groups. It returns once that is durable
// per the broker's policy. It must tolerate being called again for the same
// transaction (after a failure, or after a restart in PrepareCommit or
// PrepareAbort), and ignore partitions that no longer exist. It is never
// called with the coordinator's lock held, and not for a transaction with
// neither partitions nor groups.
type MarkerWriter interface {
	WriteTxnMarkers(producerID int64, producerEpoch int16, coordinatorEpoch int32, commit bool, partitions []TopicPartition, groups []string) error
}

// TransactionCoordinator is Kafka's TransactionCoordinator for one broker:
// every transactional id is coordinated here. See doc.go.
type TransactionCoordinator struct {
	cfg     Config
	store   *txnStore
	pids    ProducerIDs
	parts   Partitions
	markers MarkerWriter
	logger  *slog.Logger
	now     func() time.Time

	mu      sync.Mutex
	txns    map[string]*txnMetadata
	retries map[string]*time.Timer // marker retries by transactional id
	closed  bool
	done    chan struct{} // closed by Close: the cleanup loops stop
	wg      sync.WaitGroup
}

// New loads the stored transactions from db and starts the coordinator.
// Transactions found in PrepareCommit or PrepareAbort are completed before
// it returns (their markers written again; a failure is retried in the
// background); Ongoing ones stay open until their producer ends them or
// their timeout aborts them. now is the clock (nil: time.Now); logger may
// be nil.
func New(db kvlog.DB, pids ProducerIDs, parts Partitions, markers MarkerWriter, cfg Config, logger *slog.Logger, now func() time.Time) (*TransactionCoordinator, error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if now == nil {
		now = time.Now
	}
	st, err := newTxnStore(db)
	if err != nil {
		return nil, fmt.Errorf("txn: %w", err)
	}
	stored, err := st.load()
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("txn: load: %w", err)
	}
	tc := &TransactionCoordinator{
		cfg:     cfg.withDefaults(),
		store:   st,
		pids:    pids,
		parts:   parts,
		markers: markers,
		logger:  logger,
		now:     now,
		txns:    make(map[string]*txnMetadata, len(stored)),
		retries: make(map[string]*time.Timer),
		done:    make(chan struct{}),
	}
	var prepared []string
	for id, rec := range stored {
		tc.txns[id] = &txnMetadata{txnRecord: rec, transactionalID: id}
		if rec.State.isPrepared() {
			prepared = append(prepared, id)
		}
	}
	slices.Sort(prepared)
	tc.mu.Lock()
	for _, id := range prepared {
		tc.logger.Info("completing transaction prepared before restart", "transactional_id", id, "state", tc.txns[id].State)
		tc.completeLocked(tc.txns[id])
	}
	tc.mu.Unlock()
	tc.wg.Add(2)
	go tc.every(time.Duration(tc.cfg.AbortTimedOutTransactionCleanupIntervalMs)*time.Millisecond, tc.abortTimedOutTransactions)
	go tc.every(time.Duration(tc.cfg.RemoveExpiredTransactionalIDCleanupIntervalMs)*time.Millisecond, tc.removeExpiredTransactionalIDs)
	return tc, nil
}

// Close stops the cleanup loops and marker retries and waits until every
// queued change is on disk. Transactions still prepared are completed on
// the next start.
func (tc *TransactionCoordinator) Close() {
	tc.mu.Lock()
	if tc.closed {
		tc.mu.Unlock()
		return
	}
	tc.closed = true
	close(tc.done)
	for id, t := range tc.retries {
		if t.Stop() {
			tc.wg.Done()
		}
		delete(tc.retries, id)
	}
	tc.mu.Unlock()
	tc.wg.Wait()
	tc.store.Close()
}

func (tc *TransactionCoordinator) every(d time.Duration, f func()) {
	defer tc.wg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-tc.done:
			return
		case <-t.C:
			f()
		}
	}
}

func (tc *TransactionCoordinator) nowMs() int64 { return tc.now().UnixMilli() }

// settledLocked returns id's metadata once no write of it is in flight, or
// nil. Called with tc.mu held, which it releases while it waits.
func (tc *TransactionCoordinator) settledLocked(id string) *txnMetadata {
	for {
		m := tc.txns[id]
		if m == nil || !m.pending {
			return m
		}
		done := m.pendingDone
		tc.mu.Unlock()
		<-done
		tc.mu.Lock()
	}
}

// transitionLocked stores next as m's record and makes it current once it
// is durable (TransactionStateManager.appendTransactionToLog, then
// TransactionMetadata.completeTransitionTo); a Dead record removes the
// transactional id. Called with tc.mu held and m settled; tc.mu is released
// while the write is in flight, and m is pending meanwhile. A write that
// fails leaves the record as it was and is answered as Kafka answers a
// failed __transaction_state append: COORDINATOR_NOT_AVAILABLE.
func (tc *TransactionCoordinator) transitionLocked(m *txnMetadata, next txnRecord) *kerr.Error {
	if tc.closed {
		return kerr.CoordinatorNotAvailable
	}
	id := m.transactionalID
	var apply func(*kvlog.Tx) error
	if next.State == stateDead {
		apply = deleteTxn(id)
	} else {
		apply = putTxn(id, next)
	}
	done := make(chan struct{})
	m.pending, m.pendingState, m.pendingDone = true, next.State, done
	res := tc.store.Enqueue(apply)
	tc.mu.Unlock()
	err := <-res
	tc.mu.Lock()
	m.pending, m.pendingDone = false, nil
	close(done)
	if err != nil {
		tc.logger.Error("transaction state not stored", "transactional_id", id, "state", next.State, "err", err)
		return kerr.CoordinatorNotAvailable
	}
	if next.State == stateDead {
		if tc.txns[id] == m {
			delete(tc.txns, id)
		}
		return nil
	}
	m.txnRecord = next
	return nil
}

// logIllegal logs a transition Kafka would throw an IllegalStateException
// for, and passes the error on.
func (tc *TransactionCoordinator) logIllegal(m *txnMetadata, err *kerr.Error) *kerr.Error {
	if err == errIllegalTransition {
		tc.logger.Error("illegal transaction state transition: this is a bug", "transactional_id", m.transactionalID,
			"state", m.State, "producer_id", m.ProducerID, "producer_epoch", m.ProducerEpoch)
	}
	return err
}

// newProducerIDLocked allocates a producer id.
func (tc *TransactionCoordinator) newProducerIDLocked() (int64, *kerr.Error) {
	pid, err := tc.pids.NextProducerID()
	if err != nil {
		tc.logger.Error("no producer id", "err", err)
		if ke, ok := errors.AsType[*kerr.Error](err); ok {
			return 0, ke
		}
		return 0, kerr.UnknownServerError
	}
	return pid, nil
}

// fenceAndAbortLocked aborts m's Ongoing transaction on the coordinator's
// own initiative, for InitProducerId or the transaction timeout: the epoch
// is bumped so that the producer of the transaction is fenced, and the
// abort is prepared at the bumped epoch (prepareFenceProducerEpoch, then
// endTransaction with isFromClient false and the coordinator's transaction
// version). The markers are written before it returns. Called with tc.mu
// held and m settled.
func (tc *TransactionCoordinator) fenceAndAbortLocked(m *txnMetadata, timedOut bool) *kerr.Error {
	bumped := m.ProducerEpoch
	if m.ProducerEpoch == math.MaxInt16 {
		tc.logger.Error("fencing a producer whose epoch is math.MaxInt16: this is a bug", "transactional_id", m.transactionalID, "producer_id", m.ProducerID)
	} else if !m.hasFailedEpochFence {
		// After a fence whose write failed the epoch is bumped already:
		// the bumped epoch never reached a client.
		bumped++
	}
	// Kafka clears the pending PrepareEpochFence and sets the bumped epoch
	// in place before preparing the abort; so here, within one lock hold.
	m.ProducerEpoch, m.LastProducerEpoch = bumped, noProducerEpoch
	next, err := m.prepareAbortOrCommit(statePrepareAbort, transactionVersion(tc.cfg.TransactionVersion), noProducerID, tc.nowMs(), false)
	if err != nil {
		return tc.logIllegal(m, err)
	}
	if err := tc.transitionLocked(m, next); err != nil {
		m.hasFailedEpochFence = true
		return err
	}
	m.timedOut = timedOut
	tc.completeLocked(m)
	return nil
}

// completeLocked writes the markers of m's prepared transaction and moves
// it to CompleteCommit or CompleteAbort (TransactionMarkerChannelManager:
// addTxnMarkersToSend, then tryAppendToLog with prepareComplete). Called
// with tc.mu held; released while the markers are written, during which m
// stays prepared and requests for it get CONCURRENT_TRANSACTIONS, as in
// Kafka. A failure leaves m prepared and schedules another attempt.
func (tc *TransactionCoordinator) completeLocked(m *txnMetadata) {
	if tc.closed || m.pending || m.writingMarkers || !m.State.isPrepared() {
		return
	}
	commit := m.State == statePrepareCommit
	pid, epoch := m.ProducerID, m.ProducerEpoch
	partitions, groups := slices.Clone(m.Partitions), slices.Clone(m.Groups)
	var err error
	if len(partitions) > 0 || len(groups) > 0 {
		m.writingMarkers = true
		tc.mu.Unlock()
		err = tc.markers.WriteTxnMarkers(pid, epoch, tc.cfg.CoordinatorEpoch, commit, partitions, groups)
		tc.mu.Lock()
		m.writingMarkers = false
	}
	if err != nil {
		m.markerAttempts++
		tc.logger.Warn("transaction markers not written; will retry", "transactional_id", m.transactionalID,
			"producer_id", pid, "producer_epoch", epoch, "commit", commit, "attempt", m.markerAttempts, "err", err)
		tc.scheduleMarkerRetryLocked(m)
		return
	}
	next, perr := m.prepareComplete(tc.nowMs())
	if perr != nil {
		tc.logIllegal(m, perr)
		return
	}
	if perr := tc.transitionLocked(m, next); perr != nil {
		m.markerAttempts++
		tc.scheduleMarkerRetryLocked(m)
		return
	}
	m.markerAttempts = 0
	timedOut := m.timedOut
	m.timedOut = false
	if tc.cfg.OnEnd != nil {
		tc.cfg.OnEnd(commit, timedOut)
	}
}

// scheduleMarkerRetryLocked completes m's transaction again after a
// backoff that doubles with each failure.
func (tc *TransactionCoordinator) scheduleMarkerRetryLocked(m *txnMetadata) {
	id := m.transactionalID
	if tc.closed || tc.retries[id] != nil {
		return
	}
	d := tc.cfg.MarkerRetryBackoff
	for i := 1; i < m.markerAttempts && d < tc.cfg.MarkerRetryBackoffMax; i++ {
		d *= 2
	}
	d = min(d, tc.cfg.MarkerRetryBackoffMax)
	tc.wg.Add(1)
	tc.retries[id] = time.AfterFunc(d, func() {
		defer tc.wg.Done()
		tc.mu.Lock()
		defer tc.mu.Unlock()
		delete(tc.retries, id)
		if tc.closed {
			return
		}
		if m := tc.settledLocked(id); m != nil {
			tc.completeLocked(m)
		}
	})
}

// abortTimedOutTransactions aborts the transactions open longer than their
// timeout, bumping the epoch so that their producers are fenced
// (TransactionCoordinator.abortTimedOutTransactions).
func (tc *TransactionCoordinator) abortTimedOutTransactions() {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	now := tc.nowMs()
	timedOut := func(m *txnMetadata) bool {
		return !m.pending && m.State == stateOngoing && m.TxnStartTimestamp+int64(m.TxnTimeoutMs) < now
	}
	var ids []string
	for id, m := range tc.txns {
		if timedOut(m) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		if tc.closed {
			return
		}
		m := tc.settledLocked(id)
		if m == nil || !timedOut(m) {
			continue
		}
		tc.logger.Info("aborting timed out transaction", "transactional_id", id, "producer_id", m.ProducerID,
			"producer_epoch", m.ProducerEpoch, "timeout_ms", m.TxnTimeoutMs, "started_ms", m.TxnStartTimestamp)
		if err := tc.fenceAndAbortLocked(m, true); err != nil {
			tc.logger.Warn("timed out transaction not aborted", "transactional_id", id, "err", err)
		}
	}
}

// removeExpiredTransactionalIDs forgets the transactional ids with no
// transaction open that saw no request for transactional.id.expiration.ms
// (TransactionStateManager's transactionalId-expiration task). The
// deletions share one write.
func (tc *TransactionCoordinator) removeExpiredTransactionalIDs() {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.closed {
		return
	}
	cutoff := tc.nowMs() - tc.cfg.TransactionalIDExpirationMs
	type expiring struct {
		m    *txnMetadata
		res  <-chan error
		done chan struct{}
	}
	var exp []expiring
	for id, m := range tc.txns {
		if m.pending || m.writingMarkers || !m.State.isComplete() || m.TxnLastUpdateTimestamp > cutoff {
			continue
		}
		if _, err := m.prepareDead(); err != nil {
			tc.logIllegal(m, err)
			continue
		}
		done := make(chan struct{})
		m.pending, m.pendingState, m.pendingDone = true, stateDead, done
		exp = append(exp, expiring{m, tc.store.Enqueue(deleteTxn(id)), done})
	}
	if len(exp) == 0 {
		return
	}
	tc.mu.Unlock()
	errs := make([]error, len(exp))
	for i, e := range exp {
		errs[i] = <-e.res
	}
	tc.mu.Lock()
	for i, e := range exp {
		e.m.pending, e.m.pendingDone = false, nil
		close(e.done)
		id := e.m.transactionalID
		if errs[i] != nil {
			tc.logger.Error("expired transactional id not removed", "transactional_id", id, "err", errs[i])
			continue
		}
		if tc.txns[id] == e.m {
			delete(tc.txns, id)
		}
		tc.logger.Info("removed expired transactional id", "transactional_id", id, "producer_id", e.m.ProducerID)
	}
}
