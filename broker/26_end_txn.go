package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// EndTxn: v0-5
//
// Behavior: txn.TransactionCoordinator.EndTxn: Ongoing → PrepareCommit or
// PrepareAbort (durable in meta.db), COMMIT or ABORT markers into every
// partition of the transaction and its groups' staged offsets committed or
// dropped, then CompleteCommit or CompleteAbort. A retry of an EndTxn that
// completed with the same result is answered OK.
//
// Version notes:
// * v2: PRODUCER_FENCED (KIP-588)
// * v3: flexible
// * v5: transactions v2 (KIP-890): the epoch is bumped by every EndTxn
//   and the response carries the producer id and epoch to use next.
//
// With an authorizer: WRITE on the transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED).

func (s *Server) handleEndTxn(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.EndTxnRequest)
	if !s.authorize(creq, acl.OpWrite, acl.ResourceTransactionalID, req.TransactionalID) {
		resp := req.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		resp.ProducerID, resp.ProducerEpoch = -1, -1
		return resp, nil
	}
	return creq.coord.txn.EndTxn(req), nil
}
