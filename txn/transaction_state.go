package txn

// txnState is a transaction's state (Kafka's TransactionState, in
// transaction-coordinator/src/main/java/org/apache/kafka/coordinator/transaction/TransactionState.java).
// The numbers are Kafka's state ids, and are what the stored metadata
// value holds.
type txnState int8

const (
	// stateEmpty: the transactional id has a producer id and epoch but no
	// transaction. action: InitProducerId bumps the epoch. transition:
	// AddPartitionsToTxn / AddOffsetsToTxn (or a produce or TxnOffsetCommit
	// of transactions v2) => Ongoing; EndTxn abort of transactions v2 =>
	// PrepareAbort; expiry => Dead.
	stateEmpty txnState = 0
	// stateOngoing: partitions or groups were added. transition: EndTxn
	// => PrepareCommit / PrepareAbort; adding more => Ongoing; InitProducerId
	// or the timeout => PrepareEpochFence => PrepareAbort.
	stateOngoing txnState = 1
	// statePrepareCommit: the commit is decided and durable; markers are
	// being written. action: requests get CONCURRENT_TRANSACTIONS.
	// transition: markers written => CompleteCommit.
	statePrepareCommit txnState = 2
	// statePrepareAbort: as statePrepareCommit, for an abort.
	statePrepareAbort txnState = 3
	// stateCompleteCommit: the last transaction committed. transition: as
	// stateEmpty.
	stateCompleteCommit txnState = 4
	// stateCompleteAbort: the last transaction aborted. transition: as
	// stateEmpty.
	stateCompleteAbort txnState = 5
	// stateDead: the transactional id expired and is being removed; never
	// stored.
	stateDead txnState = 6
	// statePrepareEpochFence: the epoch of an Ongoing transaction is being
	// bumped to fence its producer before the coordinator aborts it. Kafka
	// holds it as a pending state between prepareFenceProducerEpoch and the
	// abort; here both happen in one critical section, so it is never stored
	// and never seen outside (transaction_coordinator.go, fenceAndAbortLocked).
	statePrepareEpochFence txnState = 7
)

// String is the state's name as DescribeTransactions and ListTransactions
// report it.
func (s txnState) String() string {
	switch s {
	case stateEmpty:
		return "Empty"
	case stateOngoing:
		return "Ongoing"
	case statePrepareCommit:
		return "PrepareCommit"
	case statePrepareAbort:
		return "PrepareAbort"
	case stateCompleteCommit:
		return "CompleteCommit"
	case stateCompleteAbort:
		return "CompleteAbort"
	case stateDead:
		return "Dead"
	case statePrepareEpochFence:
		return "PrepareEpochFence"
	}
	return "Unknown"
}

// stateByName resolves ListTransactions state filters
// (TransactionState.fromName).
func stateByName(name string) (txnState, bool) {
	for s := stateEmpty; s <= statePrepareEpochFence; s++ {
		if s.String() == name {
			return s, true
		}
	}
	return 0, false
}

// validPreviousStates is Kafka's transition table: the states a
// transaction may enter each state from.
var validPreviousStates = map[txnState][]txnState{
	stateEmpty:             {stateEmpty, stateCompleteCommit, stateCompleteAbort},
	stateOngoing:           {stateOngoing, stateEmpty, stateCompleteCommit, stateCompleteAbort},
	statePrepareCommit:     {stateOngoing},
	statePrepareAbort:      {stateOngoing, statePrepareEpochFence, stateEmpty, stateCompleteCommit, stateCompleteAbort},
	stateCompleteCommit:    {statePrepareCommit},
	stateCompleteAbort:     {statePrepareAbort},
	stateDead:              {stateEmpty, stateCompleteAbort, stateCompleteCommit},
	statePrepareEpochFence: {stateOngoing},
}

// canTransition reports whether a transaction in from may move to to.
func canTransition(from, to txnState) bool {
	for _, s := range validPreviousStates[to] {
		if s == from {
			return true
		}
	}
	return false
}

// isPrepared reports whether markers are due (PrepareCommit/PrepareAbort).
func (s txnState) isPrepared() bool { return s == statePrepareCommit || s == statePrepareAbort }

// isComplete reports whether no transaction is open: the states in which
// InitProducerId bumps the epoch and a transactional id may expire
// (TransactionState.isExpirationAllowed).
func (s txnState) isComplete() bool {
	return s == stateEmpty || s == stateCompleteCommit || s == stateCompleteAbort
}

// transactionVersion is the level of Kafka's transaction.version feature a
// request was made under (org.apache.kafka.server.common.TransactionVersion):
// 0 and 1 are the classic protocol, 2 is KIP-890 part 2 (EndTxn v5, Produce
// v12, TxnOffsetCommit v5), where the coordinator bumps the producer epoch at
// the end of every transaction.
type transactionVersion int16

const (
	tv0 transactionVersion = 0
	tv2 transactionVersion = 2
)

// supportsEpochBump is TransactionVersion.supportsEpochBump.
func (v transactionVersion) supportsEpochBump() bool { return v >= 2 }
