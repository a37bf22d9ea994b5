package broker

import (
	"fmt"
	"math"
	"path/filepath"
	"time"

	"github.com/kbroker/kbroker/coordinator"
	"github.com/kbroker/kbroker/internal/journal"
	"github.com/kbroker/kbroker/internal/kvlog"
	"github.com/kbroker/kbroker/storage"
	"github.com/kbroker/kbroker/txn"
)

// coordinators are the group and the transaction coordinator, which live
// and die together: on one node for the broker's lifetime; in a cluster on
// the active controller, from its election until it loses leadership (a
// new pair, loaded from the replicated state, takes over on the next
// active controller).
type coordinators struct {
	groups *coordinator.GroupCoordinator
	txn    *txn.TransactionCoordinator
}

// close stops the transaction coordinator first: its markers and staged
// offsets go through the group coordinator.
func (c *coordinators) close() {
	if c.txn != nil {
		c.txn.Close()
	}
	if c.groups != nil {
		c.groups.Close() // answers parked joins and syncs, flushes group state
	}
}

// newCoordinators starts a group and a transaction coordinator over db,
// loading the state it holds (Kafka's loadGroupsAndOffsets and
// TransactionStateManager.loadTransactionsForTxnTopicPartition).
func (s *Server) newCoordinators(db kvlog.DB) (*coordinators, error) {
	groupCfg := s.cfg.Group
	if prev := groupCfg.OnRebalance; prev != nil {
		groupCfg.OnRebalance = func(typ string, d time.Duration) { s.metrics.onRebalance(typ, d); prev(typ, d) }
	} else {
		groupCfg.OnRebalance = s.metrics.onRebalance
	}
	groups, err := coordinator.NewGroupCoordinator(groupCfg, db, topicMetadata{s.logs}, s.logger)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	c := &coordinators{groups: groups}
	txnCfg := s.cfg.Txn
	prevOnEnd := txnCfg.OnEnd
	txnCfg.OnEnd = func(commit, timedOut bool) {
		s.metrics.onTxnEnd(commit, timedOut)
		if prevOnEnd != nil {
			prevOnEnd(commit, timedOut)
		}
	}
	if !s.cfg.Clustered() {
		// Every partition is here: a transaction of partitions only
		// needs no stored Ongoing (see txn's doc.go, Durability).
		txnCfg.OpenTransactions = partitionsView{s.logs}.openTransactions
		// Kept in a log, as Kafka keeps it in __transaction_state, and
		// fsynced as the partitions' logs are.
		txnCfg.StateJournal = filepath.Join(s.cfg.LogDir, transactionStateJournal)
		txnCfg.StateJournalOptions = journalOptions(s.cfg.LogDefaults)
		logFlush := s.metrics.logFlush
		txnCfg.StateJournalOptions.OnSync = func(d time.Duration) { logFlush.Observe(d.Seconds()) }
	}
	if c.txn, err = txn.New(db, s.producerIDs, partitionsView{s.logs}, transactionMarkers{s, c}, txnCfg, s.logger, time.Now); err != nil {
		groups.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	return c, nil
}

// transactionStateJournal is the file in the data directory a single node
// keeps its transaction state in.
const transactionStateJournal = "transaction-state.journal"

// journalOptions is the fsync policy of the broker's logs
// (log.flush.interval.messages, log.flush.interval.ms; never by default)
// for a journal.
func journalOptions(lc storage.LogConfig) journal.Options {
	var o journal.Options
	if lc.FlushMessages < math.MaxInt64 {
		o.SyncEvery = lc.FlushMessages
	}
	switch {
	case lc.FlushMs == 0:
		o.SyncEvery = 1
	case lc.FlushMs < math.MaxInt64:
		o.SyncInterval = time.Duration(lc.FlushMs) * time.Millisecond
	}
	return o
}
