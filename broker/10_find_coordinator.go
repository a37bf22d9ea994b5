package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// FindCoordinator: v0-6
//
// Behavior (KafkaApis.handleFindCoordinatorRequest):
// * On one node this broker coordinates every group and every
//   transactional id, answered with the advertised listener the client
//   connected through.
// * In a cluster one broker coordinates every group and transactional id:
//   the active controller, whose coordinators keep their state in the
//   metadata log (Kafka spreads keys over the __consumer_offsets
//   partitions' leaders); COORDINATOR_NOT_AVAILABLE while there is none.
//   Group and transaction requests that reach another broker are answered
//   NOT_COORDINATOR.
// * The first group lookup creates the internal __consumer_offsets topic
//   (offsets.topic.num.partitions partitions), as Kafka does; it stays
//   empty, since group state lives in meta.db.
// * Transaction state lives in meta.db: no __transaction_state topic is
//   created.
// * Share groups (key type 2) are not served: INVALID_REQUEST with a
//   message saying so, not a retriable error a client would loop on.
// * With an authorizer, DESCRIBE on the group (GROUP_AUTHORIZATION_FAILED)
//   or the transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED).
//
// Version notes:
// * v1: KeyType, ErrorMessage
// * v3: flexible
// * v4: batched CoordinatorKeys, answered in Coordinators (KIP-699)
// * v5-6: no change for groups (transactions v2, share groups)

func (s *Server) handleFindCoordinator(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)

	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	me := s.advertisedFor(creq.conn.listener)
	for _, key := range keys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key, c.NodeID, c.Host, c.Port = key, -1, "", -1
		switch req.CoordinatorType {
		case 0:
			if !s.authorize(creq, acl.OpDescribe, acl.ResourceGroup, key) {
				c.ErrorCode = kerr.GroupAuthorizationFailed.Code
				break
			}
			fallthrough
		case 1:
			if req.CoordinatorType == 1 && !s.authorize(creq, acl.OpDescribe, acl.ResourceTransactionalID, key) {
				c.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
				break
			}
			if err := s.ensureOffsetsTopic(); err != nil {
				s.logger.Warn("cannot create "+offsetsTopic, "err", err)
				c.ErrorCode = kerr.CoordinatorNotAvailable.Code
				break
			}
			if s.cluster == nil {
				c.NodeID, c.Host, c.Port = s.cfg.NodeID, me.Host, int32(me.Port)
				break
			}
			id, ep, ok := s.cluster.coordinator(creq.conn.listener.Name)
			if !ok {
				c.ErrorCode = kerr.CoordinatorNotAvailable.Code
				break
			}
			c.NodeID, c.Host, c.Port = id, ep.Host, ep.Port
		case 2:
			c.ErrorCode, c.ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr("kbroker does not serve share groups.")
		default:
			c.ErrorCode, c.ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr("Unknown coordinator type.")
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	if req.Version < 4 {
		c := resp.Coordinators[0]
		resp.ErrorCode, resp.ErrorMessage, resp.NodeID, resp.Host, resp.Port = c.ErrorCode, c.ErrorMessage, c.NodeID, c.Host, c.Port
		resp.Coordinators = nil
	}
	return resp, nil
}
