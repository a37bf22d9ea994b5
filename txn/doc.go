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
// store, and becomes current once it is stored; meanwhile the metadata is
// pending and the lock is free. Where Kafka answers a request for a pending
// transactional id with CONCURRENT_TRANSACTIONS, the request here waits for
// the write (a millisecond or so) and then proceeds: concurrent
// AddPartitionsToTxn, or the per-partition adds of a transactions-v2
// produce, need no retry round trip. Requests that arrive while an EndTxn's
// markers are being written wait for them too, except a produce's
// per-partition verification, which holds what the markers need and gets
// CONCURRENT_TRANSACTIONS, as in Kafka. The disk write and MarkerWriter
// are never waited for with the lock held (ProducerIDs is called under
// it). Periodic work (aborting timed-out transactions, removing expired
// transactional ids, storing lazily kept records) runs on tickers; marker
// retries on timers.
//
// # Durability
//
// Each transactional id is one key, whose value (transaction_log.go) is the
// whole TransactionMetadata, as Kafka's __transaction_state holds one
// compacted record per id. On a single node the keys live in a journal
// (Config.StateJournal, internal/journal): an append-only file, rewritten
// when mostly dead, fsynced by the broker's log flush policy, as Kafka's
// __transaction_state is a log flushed like any other. Under the default
// policy (never, as in Kafka) a change is thus safe from a crash of the
// process once written, and from a crash of the machine once the page cache
// is written back, like the records and markers it is about. In a cluster
// the keys are in the bucket "transactions" of the replicated metadata
// (kvlog.DB). Writes go through a single writer that writes everything
// queued so far at once (one write; one fsync when one is due, or one
// bbolt transaction). What a client is answered on is stored before
// the answer: a new producer id or epoch (InitProducerId), the outcome of
// a transaction (PrepareCommit/PrepareAbort, before EndTxn is answered),
// an Ongoing transaction that has a group (its staged offsets live with
// the group coordinator). Two states are kept ahead of the store and
// written lazily (by a flush every second, at Close, or in the place of
// the id's next stored record, which overwrites the same key):
//   - Complete, once the markers are written: the Prepare on disk already
//     decides the outcome, and a restart writes its markers again.
//   - On a single node (Config.OpenTransactions), an Ongoing transaction
//     of partitions only: every partition is local, and each partition's
//     producer state (its open transaction) records what the transaction
//     wrote there. A restart compares the partitions' open transactions
//     with the stored state. A stored Ongoing gains the partitions it
//     added in memory. One the stored state does not account for is
//     aborted at a bumped epoch, as a timed-out transaction is: its
//     producer is fenced, so it can neither commit a transaction that lost
//     part of itself nor write to it again. A Kafka coordinator stores
//     Ongoing in __transaction_state because the partitions are on other
//     brokers; here a producer whose broker crashed mid-transaction starts
//     over (Close stores Ongoing, so a clean restart keeps it).
//
// On start the coordinator loads every id: PrepareCommit/PrepareAbort ones
// have their markers written again (MarkerWriter must tolerate that) and
// are completed; Ongoing ones stay open until ended or aborted by their
// timeout, as when a Kafka coordinator loads a __transaction_state
// partition. A producer's next transaction starts only once the previous
// one's markers are written, so a partition is never open for two of its
// transactions; the markers of a Prepare found at a restart are therefore
// not written where a partition is open at the markers' own epoch: under
// transactions v2 an end bumps the epoch and the next transaction writes
// at it, so that partition holds the next transaction's records, after
// this one's markers. A transactions-v1 end does not bump the epoch, so
// its Complete is stored before a transaction kept in memory follows it.
//
// # Markers
//
// EndTxn stores PrepareCommit or PrepareAbort, which decides the outcome,
// and answers, as Kafka does; MarkerWriter then writes the markers in the
// background and the transaction becomes CompleteCommit or CompleteAbort.
// The producer's next requests wait for that (Kafka answers them
// CONCURRENT_TRANSACTIONS, and the client retries). A read_committed
// consumer sees the outcome once the markers are written. A MarkerWriter
// failure leaves the transaction prepared, is retried with backoff, and the
// transaction completes on the next start at the latest.
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
