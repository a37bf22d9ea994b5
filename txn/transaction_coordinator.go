package txn

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
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

// OpenTransaction is a transaction open in a partition's log: the
// producer wrote transactional records there and no marker has ended them.
type OpenTransaction struct {
	TopicPartition
	ProducerID    int64
	ProducerEpoch int16
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
	var st *txnStore
	var err error
	if cfg.StateJournal != "" {
		st, err = openJournalStore(cfg.StateJournal, cfg.StateJournalOptions, db)
	} else {
		st, err = newTxnStore(db)
	}
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
	var open []OpenTransaction
	if cfg.OpenTransactions != nil {
		open = cfg.OpenTransactions()
	}
	tc.mu.Lock()
	for _, id := range prepared {
		m := tc.txns[id]
		tc.logger.Info("completing transaction prepared before restart", "transactional_id", id, "state", m.State)
		if markersBumpedEpoch(&m.txnRecord) {
			// A partition open at the markers' epoch holds the next
			// transaction's records, written after this one's markers.
			m.Partitions = slices.DeleteFunc(slices.Clone(m.Partitions), func(tp TopicPartition) bool {
				return slices.Contains(open, OpenTransaction{tp, m.ProducerID, m.ProducerEpoch})
			})
		}
		tc.completeLocked(m)
	}
	if cfg.OpenTransactions != nil {
		// Again: the markers just written ended some.
		tc.abortUnaccountedLocked(cfg.OpenTransactions())
	}
	tc.mu.Unlock()
	tc.wg.Add(3)
	go tc.every(time.Duration(tc.cfg.AbortTimedOutTransactionCleanupIntervalMs)*time.Millisecond, tc.abortTimedOutTransactions)
	go tc.every(time.Duration(tc.cfg.RemoveExpiredTransactionalIDCleanupIntervalMs)*time.Millisecond, tc.removeExpiredTransactionalIDs)
	go tc.every(unstoredFlushInterval, tc.flushUnstored)
	return tc, nil
}

// unstoredFlushInterval is how often records kept ahead of the stored ones
// (txnMetadata.unstored) are written: not needed for correctness, it keeps
// the work of a restart small.
const unstoredFlushInterval = time.Second

// abortUnaccountedLocked handles the transactions open in the partitions
// (Config.OpenTransactions) at start, once the prepared ones are complete.
// One whose transactional id is stored Ongoing at that epoch gains the
// partitions added only in memory before the restart. Any other was Ongoing
// only in memory: it is aborted at a bumped epoch, as a timed-out one is,
// so that its producer is fenced and cannot commit a transaction that lost
// part of itself. A producer id no transactional id has gets an ABORT
// marker at its own epoch.
func (tc *TransactionCoordinator) abortUnaccountedLocked(open []OpenTransaction) {
	byProducer := make(map[int64]*txnMetadata, len(tc.txns))
	for _, m := range tc.txns {
		byProducer[m.ProducerID] = m
	}
	hanging := map[*txnMetadata][]TopicPartition{}
	for _, o := range open {
		m := byProducer[o.ProducerID]
		switch {
		case m == nil:
			tc.logger.Warn("aborting a transaction of an unknown producer left open by a restart", "topic", o.Topic, "partition", o.Partition,
				"producer_id", o.ProducerID, "producer_epoch", o.ProducerEpoch)
			if err := tc.markers.WriteTxnMarkers(o.ProducerID, o.ProducerEpoch, tc.cfg.CoordinatorEpoch, false, []TopicPartition{o.TopicPartition}, nil); err != nil {
				tc.logger.Error("abort marker not written: the partition's transaction stays open", "topic", o.Topic, "partition", o.Partition, "err", err)
			}
		case m.State == stateOngoing && m.ProducerEpoch == o.ProducerEpoch:
			m.Partitions = mergeSorted(m.Partitions, []TopicPartition{o.TopicPartition}, compareTopicPartition)
		case m.State.isPrepared():
			// Its markers failed above and are retried; what it leaves
			// open at its epoch is not its own, so stays open until then.
			tc.logger.Error("transaction left open by a restart not aborted: its transactional id is still prepared", "transactional_id", m.transactionalID,
				"topic", o.Topic, "partition", o.Partition)
		default:
			hanging[m] = append(hanging[m], o.TopicPartition)
		}
	}
	ms := slices.SortedFunc(maps.Keys(hanging), func(a, b *txnMetadata) int { return cmp.Compare(a.transactionalID, b.transactionalID) })
	for _, m := range ms {
		tc.logger.Warn("aborting a transaction left open by a restart", "transactional_id", m.transactionalID,
			"producer_id", m.ProducerID, "producer_epoch", m.ProducerEpoch, "partitions", len(hanging[m]))
		next, err := m.prepareAddPartitions(hanging[m], nil, tc.nowMs(), transactionVersion(tc.cfg.TransactionVersion))
		if err != nil {
			tc.logIllegal(m, err)
			continue
		}
		m.txnRecord = next
		if err := tc.fenceAndAbortLocked(m, false); err != nil {
			tc.logger.Error("transaction left open by a restart not aborted", "transactional_id", m.transactionalID, "err", err)
		}
	}
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
	// What was kept ahead of the stored records (an Ongoing in memory
	// included) is stored, so that a clean restart loses nothing of it.
	tc.mu.Lock()
	writes := tc.storeUnstoredLocked()
	tc.mu.Unlock()
	for _, res := range writes {
		<-res
	}
	tc.store.Close()
}

// flushUnstored stores the records kept ahead of the stored ones.
func (tc *TransactionCoordinator) flushUnstored() {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if !tc.closed {
		tc.storeUnstoredLocked()
	}
}

// storeUnstoredLocked queues a write of every record ahead of its stored
// one and not otherwise being written, in transactional id order; it does
// not wait for them. Nobody waits on these writes: the records are current
// already.
func (tc *TransactionCoordinator) storeUnstoredLocked() []<-chan error {
	var ids []string
	for id, m := range tc.txns {
		if m.unstored && !m.pending && !m.writingMarkers && m.completing == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	writes := make([]<-chan error, 0, len(ids))
	for _, id := range ids {
		m := tc.txns[id]
		m.unstored, m.storeBeforeNext = false, false
		writes = append(writes, tc.store.put(id, m.txnRecord))
	}
	return writes
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

// completedLocked is settledLocked that also waits for an EndTxn's
// markers (txnMetadata.completing). Only for requests that hold nothing
// the markers need: not a produce's verification, which holds
// Server.txnAppends shared.
func (tc *TransactionCoordinator) completedLocked(id string) *txnMetadata {
	for {
		m := tc.settledLocked(id)
		if m == nil || m.completing == nil {
			return m
		}
		done := m.completing
		tc.mu.Unlock()
		<-done
		tc.mu.Lock()
	}
}

// completeInBackgroundLocked completes m's prepared transaction on another
// goroutine, so that EndTxn is answered once its Prepare is stored, as
// Kafka answers it. Requests for the id that may wait (completedLocked)
// wait for the markers meanwhile; the others get CONCURRENT_TRANSACTIONS.
func (tc *TransactionCoordinator) completeInBackgroundLocked(m *txnMetadata) {
	done := make(chan struct{})
	m.completing = done
	tc.wg.Add(1)
	go func() {
		defer tc.wg.Done()
		tc.mu.Lock()
		defer tc.mu.Unlock()
		tc.completeLocked(m)
		m.completing = nil
		close(done)
	}()
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
	done := make(chan struct{})
	m.pending, m.pendingState, m.pendingDone = true, next.State, done
	// Written after whatever was kept unstored, and in its place.
	m.unstored, m.storeBeforeNext = false, false
	var res <-chan error
	if next.State == stateDead {
		res = tc.store.remove(id)
	} else {
		res = tc.store.put(id, next)
	}
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
// it to CompleteCommit or CompleteAbort, stored lazily
// (TransactionMarkerChannelManager: addTxnMarkersToSend, then
// tryAppendToLog with prepareComplete). Called with tc.mu held; released
// while the markers are written, during which m stays prepared (see
// completedLocked). A failure leaves m prepared and schedules another
// attempt.
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
	// The markers are the outcome: Complete takes effect now and is
	// stored lazily. A restart that finds the Prepare writes the markers
	// again (New), which MarkerWriter tolerates.
	m.storeBeforeNext = !markersBumpedEpoch(&m.txnRecord)
	m.txnRecord, m.unstored = next, true
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
		if m.pending || m.writingMarkers || m.completing != nil || !m.State.isComplete() || m.TxnLastUpdateTimestamp > cutoff {
			continue
		}
		if _, err := m.prepareDead(); err != nil {
			tc.logIllegal(m, err)
			continue
		}
		done := make(chan struct{})
		m.pending, m.pendingState, m.pendingDone = true, stateDead, done
		m.unstored, m.storeBeforeNext = false, false
		exp = append(exp, expiring{m, tc.store.remove(id), done})
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
