// Package coordinator is kbroker's group coordinator (Kafka's
// group-coordinator module: GroupCoordinatorService, GroupMetadataManager,
// OffsetMetadataManager): consumer groups of the classic protocol
// (JoinGroup/SyncGroup/Heartbeat/LeaveGroup) with static membership
// (KIP-345), consumer groups of the KIP-848 protocol
// (ConsumerGroupHeartbeat) with server-side assignment, and committed
// offsets.
//
// # State and threading
//
// All group and offset state lives in memory under GroupCoordinator.mu, one
// lock for the whole coordinator, as Kafka runs each __consumer_offsets
// partition on one thread. Requests that must wait (a JoinGroup until the
// rebalance completes, a SyncGroup until the leader assigns) register a
// channel under the lock and wait outside it. Timers (session timeouts,
// rebalance timeouts, the initial rebalance delay) are time.AfterFunc
// callbacks that take the lock and check that what they were armed for
// still holds.
//
// # Durability
//
// Every change that Kafka would write to __consumer_offsets (a committed
// offset, a group's metadata, a deletion) is queued, in lock order, to a
// single writer that applies everything queued so far in one bbolt
// transaction; a request is answered once its change is on disk. Concurrent
// commits therefore share one fsync. On start the coordinator loads groups
// and offsets back, and members get a fresh session timeout, as Kafka does
// when a coordinator loads its partitions.
package coordinator
