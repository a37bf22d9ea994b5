package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// JoinGroup: v2-9
//
// Behavior: coordinator.GroupCoordinator.JoinGroup (Kafka's
// GroupMetadataManager.classicGroupJoin). The request parks this
// connection until the join phase ends, as Kafka holds the response in
// purgatory.
//
// Version notes:
// * v4: MEMBER_ID_REQUIRED for a new member without an id (KIP-394)
// * v5: InstanceID, static membership (KIP-345)
// * v6: flexible
// * v7: ProtocolType and Protocol in the response
// * v8: Reason (KIP-800), logged by nobody
// * v9: SkipAssignment for a static leader that rejoined

func (s *Server) handleJoinGroup(creq *clientReq) (kmsg.Response, error) {
	return creq.coord.groups.JoinGroup(creq.requestContext(), creq.Body.(*kmsg.JoinGroupRequest)), nil
}
