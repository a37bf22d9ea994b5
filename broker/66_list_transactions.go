package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// ListTransactions: v0-2
//
// Behavior: txn.TransactionCoordinator.ListTransactions, filtered by state
// and producer id; v1 adds DurationFilterMillis (running longer than), v2
// a transactional id regular expression (KIP-1152).

func (s *Server) handleListTransactions(creq *clientReq) (kmsg.Response, error) {
	return creq.coord.txn.ListTransactions(creq.Body.(*kmsg.ListTransactionsRequest)), nil
}
