package txn

import (
	"time"

	"github.com/kbroker/kbroker/internal/journal"
)

// Config holds the transaction coordinator's broker settings, under
// Kafka's names (TransactionStateManagerConfig).
type Config struct {
	// TransactionMaxTimeoutMs is transaction.max.timeout.ms: the longest
	// transaction.timeout.ms a producer may ask for (default 900000).
	TransactionMaxTimeoutMs int32
	// TransactionalIDExpirationMs is transactional.id.expiration.ms: a
	// transactional id with no transaction open and no request for this long
	// is forgotten (default 604800000, 7 days).
	TransactionalIDExpirationMs int64
	// AbortTimedOutTransactionCleanupIntervalMs is
	// transaction.abort.timed.out.transaction.cleanup.interval.ms: how often
	// transactions older than their timeout are looked for and aborted
	// (default 10000).
	AbortTimedOutTransactionCleanupIntervalMs int64
	// RemoveExpiredTransactionalIDCleanupIntervalMs is
	// transaction.remove.expired.transaction.cleanup.interval.ms: how often
	// expired transactional ids are looked for (default 3600000).
	RemoveExpiredTransactionalIDCleanupIntervalMs int64

	// TransactionVersion is the finalized level of the transaction.version
	// feature the broker advertises in ApiVersions (0, 1 or 2). Requests
	// carry their own version (EndTxn v5 and Produce v12 are 2, older ones
	// 0); this one is used for what the coordinator starts itself, the
	// aborts of timed-out and fenced transactions, as Kafka uses its
	// metadata's transaction version there. At 2 such an abort bumps the
	// epoch twice (fence, then the transactions-v2 end). DefaultConfig
	// sets 2; use 0 if the broker does not advertise transaction.version 2
	// (the zero Config does).
	TransactionVersion int16

	// CoordinatorEpoch is stamped into every marker (Kafka: the leader
	// epoch of the __transaction_state partition). One broker owns every
	// transactional id for good, so it is a constant; default 0.
	CoordinatorEpoch int32

	// MarkerRetryBackoff is the first wait before the markers of a
	// prepared transaction are written again after MarkerWriter failed; it
	// doubles per failure up to MarkerRetryBackoffMax (Kafka's marker sender
	// retries with retry.backoff.ms=100 and retry.backoff.max.ms=1000).
	MarkerRetryBackoff    time.Duration
	MarkerRetryBackoffMax time.Duration

	// OpenTransactions, if set, lists the transactions open in the
	// partitions' logs (every partition's producer state). Only a
	// coordinator that sees every partition may set it: a single node.
	// With it, an Ongoing transaction that has only partitions is kept in
	// memory rather than stored before the producer writes, and a restart
	// aborts, at a bumped epoch, a transaction open in a partition that the
	// stored state does not account for (see doc.go, Durability).
	OpenTransactions func() []OpenTransaction

	// StateJournal, if set, is the file transaction state is kept in
	// (internal/journal), written with StateJournalOptions' fsync policy,
	// instead of New's db: for a single node, whose logs follow the same
	// policy. State db holds moves into it at New. A cluster replicates
	// its state through db instead.
	StateJournal        string
	StateJournalOptions journal.Options

	// OnEnd, if set, is called (under the coordinator lock: keep it cheap)
	// when a transaction completes, with its outcome and whether the
	// coordinator aborted it for exceeding its timeout; for metrics.
	OnEnd func(commit, timedOut bool)
}

// DefaultConfig is Kafka 4's defaults.
func DefaultConfig() Config {
	return Config{
		TransactionMaxTimeoutMs:                       900000,
		TransactionalIDExpirationMs:                   604800000,
		AbortTimedOutTransactionCleanupIntervalMs:     10000,
		RemoveExpiredTransactionalIDCleanupIntervalMs: 3600000,
		TransactionVersion:                            2,
		MarkerRetryBackoff:                            100 * time.Millisecond,
		MarkerRetryBackoffMax:                         time.Second,
	}
}

// withDefaults fills the settings left zero (none of them may be zero)
// with DefaultConfig's.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.TransactionMaxTimeoutMs <= 0 {
		c.TransactionMaxTimeoutMs = d.TransactionMaxTimeoutMs
	}
	if c.TransactionalIDExpirationMs <= 0 {
		c.TransactionalIDExpirationMs = d.TransactionalIDExpirationMs
	}
	if c.AbortTimedOutTransactionCleanupIntervalMs <= 0 {
		c.AbortTimedOutTransactionCleanupIntervalMs = d.AbortTimedOutTransactionCleanupIntervalMs
	}
	if c.RemoveExpiredTransactionalIDCleanupIntervalMs <= 0 {
		c.RemoveExpiredTransactionalIDCleanupIntervalMs = d.RemoveExpiredTransactionalIDCleanupIntervalMs
	}
	if c.MarkerRetryBackoff <= 0 {
		c.MarkerRetryBackoff = d.MarkerRetryBackoff
	}
	if c.MarkerRetryBackoffMax < c.MarkerRetryBackoff {
		c.MarkerRetryBackoffMax = max(d.MarkerRetryBackoffMax, c.MarkerRetryBackoff)
	}
	return c
}
