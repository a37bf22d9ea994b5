// Package controller is kbroker's metadata quorum for a replicated cluster
// (Kafka's KRaft QuorumController with its MetadataImage), on
// github.com/hashicorp/raft. Every node is a combined broker+controller;
// the voters are static (controller.quorum.voters). The raft leader is the
// active controller. A single-node broker does not use this package.
//
// # Model
//
//   - The metadata log is raft's log (raft.db, raft-boltdb/v2, in Config.Dir).
//     Each entry is a batch of records (records.go documents the format),
//     applied all or nothing to an immutable Image on every node; OnImage
//     publishes each new image in order. Snapshots hold a whole Image
//     (snapshot.go).
//   - The active controller plans records on its applied image under one
//     lock (Kafka's single controller thread) and commits them through raft:
//     replication.go holds the pure rules (ReplicationControlManager,
//     PartitionChangeBuilder), heartbeat.go the broker sessions
//     (BrokerHeartbeatManager), which live in its memory only and are
//     renewed for every broker when a new controller takes over;
//     reassignment.go the leader elections on request and the partition
//     reassignments (started, completed in the record whose ISR holds the
//     whole target, or cancelled).
//   - Operations (CreateTopic, AlterPartition, ...) may be called on any
//     node: they run locally on the active controller or go over the Kafka
//     protocol to its controller listener (ops.go, Kafka's
//     NodeToControllerChannelManager), and return once this node's image
//     has applied the change.
//   - RegisterBroker, WaitUnfenced and ControlledShutdown drive this node's
//     broker (lifecycle.go, Kafka's BrokerLifecycleManager): a fresh
//     incarnation per process start, heartbeats every interval.
//
// # The controller listener
//
// One listener per node carries raft (connections opening with the byte
// 0xFF, which no Kafka frame starts with) and the controller APIs over the
// Kafka protocol (apis.go). Their responses carry the metadata offset of
// the change in a kbroker-private tagged field.
//
// # Locks
//
// Controller.writeMu (writes and sessions) → fsm.mu (image pointer) and
// lifecycle.mu; raft's own locks are below all of them. OnImage runs on
// raft's FSM goroutine without any of our locks held.
package controller
