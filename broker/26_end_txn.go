package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// EndTxn: v0-4
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
// * v5 (transactions v2, epoch bump on every EndTxn) is not advertised.

func (s *Server) handleEndTxn(creq *clientReq) (kmsg.Response, error) {
	return s.txn.EndTxn(creq.Body.(*kmsg.EndTxnRequest)), nil
}
