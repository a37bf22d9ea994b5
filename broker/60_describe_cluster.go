package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// DescribeCluster: v0-2
//
// Behavior (KafkaApis.handleDescribeCluster,
// AuthHelper.computeDescribeClusterResponse):
// * Brokers: as in Metadata, by their endpoint on the listener the client
//   connected through: this node alone, or in a cluster the unfenced
//   brokers of the metadata image. ControllerID is this node, or in a
//   cluster the active controller (every node is a combined one) when it
//   is among the brokers listed, else a listed broker (see metadataBrokers).
// * EndpointType 1 (brokers) is served. 2 (controllers) is
//   MISMATCHED_ENDPOINT_TYPE, as a Kafka broker answers; any other value
//   UNSUPPORTED_ENDPOINT_TYPE (INVALID_REQUEST at v0), with Kafka's
//   messages.
// * ClusterAuthorizedOperations stays -2147483648 unless requested; then
//   it is what the principal may do on the cluster (every cluster
//   operation without an authorizer), as AuthHelper.authorizedOperations.
// * With an authorizer, DESCRIBE on the cluster, else
//   CLUSTER_AUTHORIZATION_FAILED.
//
// Version notes:
// * v0: flexible from the start
// * v1: EndpointType
// * v2: IncludeFencedBrokers, IsFenced

// EndpointType ids (org.apache.kafka.clients.admin.EndpointType).
const (
	endpointTypeBroker     = 1
	endpointTypeController = 2
)

func (s *Server) handleDescribeCluster(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.DescribeClusterRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)

	switch req.EndpointType {
	case endpointTypeBroker:
	case endpointTypeController:
		resp.ErrorCode = kerr.MismatchedEndpointType.Code
		if req.Version == 0 {
			resp.ErrorCode = kerr.InvalidRequest.Code
		}
		resp.ErrorMessage = kmsg.StringPtr("The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER")
		return resp, nil
	default:
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		if req.Version == 0 {
			resp.ErrorCode = kerr.InvalidRequest.Code
		}
		resp.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("Unsupported endpoint type %d", req.EndpointType))
		return resp, nil
	}

	if !s.authorizeCluster(creq, acl.OpDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	resp.EndpointType = endpointTypeBroker
	resp.ClusterID = s.clusterID
	if req.IncludeClusterAuthorizedOperations {
		resp.ClusterAuthorizedOperations = s.authorizedOperations(creq, acl.ResourceCluster, acl.ClusterName)
	}
	var brokers []kmsg.MetadataResponseBroker
	brokers, resp.ControllerID = s.metadataBrokers(creq.conn.listener)
	for _, mb := range brokers {
		b := kmsg.NewDescribeClusterResponseBroker()
		b.NodeID, b.Host, b.Port, b.Rack = mb.NodeID, mb.Host, mb.Port, mb.Rack
		resp.Brokers = append(resp.Brokers, b)
	}
	return resp, nil
}
