// Package txn is kbroker's transaction coordinator (Kafka's
// TransactionCoordinator, TransactionStateManager, TransactionMetadata and
// the marker side of TransactionMarkerChannelManager): transactional.id →
// producer id and epoch, the transaction state machine
// (transaction_state.go), transaction timeouts, transactional id expiry,
// and the decision to write COMMIT or ABORT markers, which the broker's
// MarkerWriter writes into the partitions and groups of the transaction.
//
// Requests come in as kmsg requests (InitProducerId with a transactional
// id, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, DescribeTransactions,
// ListTransactions) and go out as kmsg responses; the broker's Produce and
// TxnOffsetCommit paths verify, or under transactions v2 add, their
// partition or group with VerifyPartition and VerifyGroup.
//
// # State and threading
//
// Every transactional id's metadata lives in memory under
// TransactionCoordinator.mu, one lock for the whole coordinator. A change
// is prepared under the lock (TransactionMetadata.prepare*), queued to the
// store, and becomes current once it is on disk; meanwhile the metadata is
// pending and the lock is free. Where Kafka answers a request for a pending
// transactional id with CONCURRENT_TRANSACTIONS, the request here waits for
// the write (a millisecond or so) and then proceeds: concurrent
// AddPartitionsToTxn, or the per-partition adds of a transactions-v2
// produce, need no retry round trip. Requests that arrive while markers are
// being written (PrepareCommit, PrepareAbort) get CONCURRENT_TRANSACTIONS,
// as in Kafka. The disk write and MarkerWriter are never waited for with
// the lock held (ProducerIDs is called under it). Periodic work (aborting timed-out transactions, removing
// expired transactional ids) runs on tickers; marker retries on timers.
//
// # Durability
//
// Each transactional id is one bbolt key in the bucket "transactions"; its
// value (transaction_log.go) is the whole TransactionMetadata, as Kafka's
// __transaction_state holds one compacted record per id. Every transition
// is stored before it takes effect, through a single writer that applies
// everything queued so far in one bbolt transaction (one fsync). On start
// the coordinator loads every id: PrepareCommit/PrepareAbort ones have
// their markers written again (MarkerWriter must tolerate that) and are
// completed; Ongoing ones stay open until ended or aborted by their
// timeout, as when a Kafka coordinator loads a __transaction_state
// partition.
//
// # Markers
//
// EndTxn stores PrepareCommit or PrepareAbort, which decides the outcome,
// then calls MarkerWriter and stores CompleteCommit or CompleteAbort, and
// answers after that (Kafka answers once the Prepare state is stored and
// writes the markers in the background; the answer is the same, and a
// read_committed consumer here sees the outcome when EndTxn returns). A
// MarkerWriter failure leaves the transaction prepared, is retried with
// backoff, and the transaction completes on the next start at the latest.
// Markers carry Config.CoordinatorEpoch: one broker owns every
// transactional id, so the coordinator epoch never changes (0 unless the
// broker sets it).
//
// # Transactions v2
//
// EndTxn v5, Produce v12 and TxnOffsetCommit v5 are KIP-890 part 2: the
// coordinator bumps the epoch at every end (the markers carry the new
// epoch), returns the producer id and epoch for the next transaction, and
// lets a produce or offset commit add its partition or group itself
// (AddPartitionImplicitly, AddGroupImplicitly). Retries are recognized by
// epoch as in Kafka (end_txn.go), including the rotation to a new producer
// id when the epoch is exhausted.
//
// # Not implemented
//
// Two-phase commit (KIP-939, InitProducerId v6), and the coordinator
// partitioning of __transaction_state (every id is coordinated here).
package txn
