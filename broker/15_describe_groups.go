package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// DescribeGroups: v0-6
//
// Behavior: coordinator.GroupCoordinator.DescribeGroups (Kafka's
// GroupMetadataManager.describeGroups).
//
// Version notes:
// * v3: AuthorizedOperations (every group operation: there is no authorizer)
// * v4: InstanceID of members
// * v5: flexible
// * v6: ErrorMessage; GROUP_ID_NOT_FOUND for unknown groups (KIP-1043)

func (s *Server) handleDescribeGroups(creq *clientReq) (kmsg.Response, error) {
	return creq.coord.groups.DescribeGroups(creq.Body.(*kmsg.DescribeGroupsRequest)), nil
}
