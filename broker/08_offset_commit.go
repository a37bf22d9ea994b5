package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// OffsetCommit: v2-10
//
// Behavior: coordinator.GroupCoordinator.OffsetCommit (Kafka's
// OffsetMetadataManager.commitOffset). The response waits until the offsets
// are in meta.db; concurrent commits share one transaction.
//
// Version notes:
// * v2-4: RetentionTimeMillis; when not -1 it replaces offsets.retention.minutes for the offsets it commits
// * v6: committed leader epoch (KIP-320)
// * v7: InstanceID (KIP-345)
// * v8: flexible
// * v9: the member epoch of KIP-848 consumers; GROUP_ID_NOT_FOUND for an unknown group
// * v10: topic ids

func (s *Server) handleOffsetCommit(creq *clientReq) (kmsg.Response, error) {
	return creq.coord.groups.OffsetCommit(creq.Body.(*kmsg.OffsetCommitRequest)), nil
}
