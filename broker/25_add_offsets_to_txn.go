package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// AddOffsetsToTxn: v0-4
//
// Behavior: txn.TransactionCoordinator.AddOffsetsToTxn: the group joins the
// producer's transaction (Kafka adds the group's __consumer_offsets
// partition), so that its TxnOffsetCommit offsets are committed or dropped
// with the transaction's markers.
//
// Version notes:
// * v2: PRODUCER_FENCED (KIP-588)
// * v3: flexible
//
// With an authorizer: WRITE on the transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), READ on the group
// (GROUP_AUTHORIZATION_FAILED).

func (s *Server) handleAddOffsetsToTxn(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.AddOffsetsToTxnRequest)
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	switch {
	case !s.authorize(creq, acl.OpWrite, acl.ResourceTransactionalID, req.TransactionalID):
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
	case !s.authorize(creq, acl.OpRead, acl.ResourceGroup, req.Group):
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
	default:
		return creq.coord.txn.AddOffsetsToTxn(req), nil
	}
	return resp, nil
}
