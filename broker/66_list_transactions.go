package broker

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// ListTransactions: v0-2
//
// Behavior: txn.TransactionCoordinator.ListTransactions, filtered by state
// and producer id; v1 adds DurationFilterMillis (running longer than), v2
// a transactional id regular expression (KIP-1152).
//
// With an authorizer: only the transactional ids the
// principal may DESCRIBE.

func (s *Server) handleListTransactions(creq *clientReq) (kmsg.Response, error) {
	resp := creq.coord.txn.ListTransactions(creq.Body.(*kmsg.ListTransactionsRequest))
	if s.authz != nil {
		resp.TransactionStates = slices.DeleteFunc(resp.TransactionStates, func(ts kmsg.ListTransactionsResponseTransactionState) bool {
			return !s.authorize(creq, acl.OpDescribe, acl.ResourceTransactionalID, ts.TransactionalID)
		})
	}
	return resp, nil
}
