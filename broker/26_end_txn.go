package broker

import "github.com/twmb/franz-go/pkg/kmsg"

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

func (s *Server) handleEndTxn(creq *clientReq) (kmsg.Response, error) {
	return creq.coord.txn.EndTxn(creq.Body.(*kmsg.EndTxnRequest)), nil
}
