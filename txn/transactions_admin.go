package txn

import (
	"regexp"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeTransactions: v0. TransactionCoordinator.handleDescribeTransactions:
// per transactional id, its producer, state, timeout, start and partitions;
// an empty id is INVALID_REQUEST, an unknown one TRANSACTIONAL_ID_NOT_FOUND.
// Groups added with AddOffsetsToTxn are not listed (Kafka lists their
// __consumer_offsets partitions, which kbroker does not have).
func (tc *TransactionCoordinator) DescribeTransactions(req *kmsg.DescribeTransactionsRequest) *kmsg.DescribeTransactionsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for _, id := range req.TransactionalIDs {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID = id
		m := tc.txns[id]
		switch {
		case tc.closed:
			st.ErrorCode = kerr.CoordinatorNotAvailable.Code
		case id == "":
			st.ErrorCode = kerr.InvalidRequest.Code
		case m == nil || (m.pending && m.pendingState == stateDead):
			st.ErrorCode = kerr.TransactionalIDNotFound.Code
		default:
			st.State = m.State.String()
			st.TimeoutMillis = m.TxnTimeoutMs
			st.StartTimestamp = m.TxnStartTimestamp
			st.ProducerID = m.ProducerID
			st.ProducerEpoch = m.ProducerEpoch
			for _, tp := range m.Partitions { // sorted by topic
				if n := len(st.Topics); n == 0 || st.Topics[n-1].Topic != tp.Topic {
					t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
					t.Topic = tp.Topic
					st.Topics = append(st.Topics, t)
				}
				t := &st.Topics[len(st.Topics)-1]
				t.Partitions = append(t.Partitions, tp.Partition)
			}
		}
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp
}

// ListTransactions: v0-2. TransactionStateManager.listTransactionStates:
// every transactional id (not one being removed), filtered by state (names
// that are no state come back in UnknownStateFilters), by producer id, by
// running longer than DurationFilterMillis (v1), and by a regular
// expression that must match the whole transactional id (v2; RE2 syntax
// where Kafka uses java.util.regex; an invalid one is
// INVALID_REGULAR_EXPRESSION). Sorted by transactional id.
func (tc *TransactionCoordinator) ListTransactions(req *kmsg.ListTransactionsRequest) *kmsg.ListTransactionsResponse {
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	var states []txnState
	for _, name := range req.StateFilters {
		if s, ok := stateByName(name); ok {
			states = append(states, s)
		} else {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, name)
		}
	}
	duration := int64(-1)
	if req.Version >= 1 {
		duration = req.DurationFilterMillis
	}
	var pattern *regexp.Regexp
	if req.Version >= 2 && req.TransactionalIDPattern != nil && *req.TransactionalIDPattern != "" {
		var err error
		if pattern, err = regexp.Compile(`^(?:` + *req.TransactionalIDPattern + `)$`); err != nil {
			resp.ErrorCode = kerr.InvalidRegularExpression.Code
			return resp
		}
	}

	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.closed {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	now := tc.nowMs()
	for id, m := range tc.txns {
		switch {
		case m.State == stateDead || (m.pending && m.pendingState == stateDead):
		case len(req.ProducerIDFilters) > 0 && !slices.Contains(req.ProducerIDFilters, m.ProducerID):
		case len(states) > 0 && !slices.Contains(states, m.State):
		case duration >= 0 && now-m.TxnStartTimestamp <= duration:
		case pattern != nil && !pattern.MatchString(id):
		default:
			st := kmsg.NewListTransactionsResponseTransactionState()
			st.TransactionalID = id
			st.ProducerID = m.ProducerID
			st.TransactionState = m.State.String()
			resp.TransactionStates = append(resp.TransactionStates, st)
		}
	}
	slices.SortFunc(resp.TransactionStates, func(a, b kmsg.ListTransactionsResponseTransactionState) int {
		return strings.Compare(a.TransactionalID, b.TransactionalID)
	})
	return resp
}

// Stats counts transactional ids by state name, for metrics.
func (tc *TransactionCoordinator) Stats() map[string]int {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	out := make(map[string]int)
	for _, m := range tc.txns {
		out[m.State.String()]++
	}
	return out
}
