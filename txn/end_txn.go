package txn

import (
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// EndTxn: v0-5. TransactionCoordinator.handleEndTransaction:
//   - an empty transactional id is INVALID_REQUEST; an unknown one, or a
//     producer id that is not the transactional id's,
//     INVALID_PRODUCER_ID_MAPPING; another epoch PRODUCER_FENCED;
//   - an Ongoing transaction becomes PrepareCommit or PrepareAbort; once
//     that is stored the outcome is decided and EndTxn is answered, as in
//     Kafka. The markers are written (MarkerWriter) in the background and
//     the transaction becomes CompleteCommit or CompleteAbort; the
//     producer's next EndTxn, AddPartitionsToTxn, AddOffsetsToTxn,
//     InitProducerId or transactions-v2 produce waits for that. Markers
//     that fail are retried with backoff: the outcome is durable.
//   - while markers that failed wait for their retry,
//     CONCURRENT_TRANSACTIONS (Kafka holds the transaction pending
//     through the marker phase, and answers that before looking at the
//     outcome asked for);
//   - a retry of an EndTxn that completed, with the same outcome, is
//     answered success; the other outcome, or an EndTxn with no
//     transaction open, INVALID_TXN_STATE.
//
// Version notes:
//   - v2: PRODUCER_FENCED; before, INVALID_PRODUCER_EPOCH (KIP-588).
//   - v5: transactions v2 (KIP-890 part 2). Every end bumps the epoch (the
//     markers carry the new epoch, fencing the old one), and the response
//     carries the producer id and epoch for the next transaction (a new
//     producer id at epoch 0 when the epochs are exhausted). A retry is
//     recognized by its epoch being one behind. Abort is allowed with no
//     transaction open (the client may not know whether one is).
func (tc *TransactionCoordinator) EndTxn(req *kmsg.EndTxnRequest) *kmsg.EndTxnResponse {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	tv := tv0
	if req.Version >= 5 {
		tv = tv2
	}
	pid, epoch, err := tc.endTransaction(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit, tv)
	if err != nil {
		if err == kerr.ProducerFenced && req.Version < 2 {
			err = kerr.InvalidProducerEpoch
		}
		resp.ErrorCode = err.Code
		return resp
	}
	if req.Version >= 5 {
		resp.ProducerID, resp.ProducerEpoch = pid, epoch
	}
	return resp
}

// endTransaction returns the producer id and epoch for the producer's next
// transaction.
func (tc *TransactionCoordinator) endTransaction(id string, pid int64, epoch int16, commit bool, tv transactionVersion) (int64, int16, *kerr.Error) {
	if id == "" {
		return 0, 0, kerr.InvalidRequest
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.closed {
		return 0, 0, kerr.CoordinatorNotAvailable
	}
	m := tc.completedLocked(id)
	if m == nil {
		return 0, 0, kerr.InvalidProducerIDMapping
	}
	var next txnRecord
	var done bool
	var err *kerr.Error
	if tv.supportsEpochBump() {
		next, done, err = tc.prepareEndTxnV2Locked(m, pid, epoch, commit)
	} else {
		next, done, err = tc.prepareEndTxnV1Locked(m, pid, epoch, commit)
	}
	switch {
	case err != nil:
		return 0, 0, tc.logIllegal(m, err)
	case done:
		return m.ProducerID, m.ProducerEpoch, nil
	}
	if err := tc.transitionLocked(m, next); err != nil {
		return 0, 0, err
	}
	nextPID, nextEpoch := completedProducer(&next)
	tc.completeInBackgroundLocked(m)
	return nextPID, nextEpoch, nil
}

// errInvalidTxnState is logInvalidStateTransitionAndReturnError.
func (tc *TransactionCoordinator) errInvalidTxnState(m *txnMetadata, commit bool) *kerr.Error {
	tc.logger.Warn("EndTxn in the wrong transaction state", "transactional_id", m.transactionalID, "state", m.State, "commit", commit)
	return kerr.InvalidTxnState
}

// prepareEndTxnV1Locked is endTransactionWithTV1 for a client: the next
// record, or done for a retry already answered, or the error.
func (tc *TransactionCoordinator) prepareEndTxnV1Locked(m *txnMetadata, pid int64, epoch int16, commit bool) (txnRecord, bool, *kerr.Error) {
	switch {
	case m.ProducerID != pid:
		return txnRecord{}, false, kerr.InvalidProducerIDMapping
	case m.ProducerEpoch != epoch:
		return txnRecord{}, false, kerr.ProducerFenced
	case m.State.isPrepared():
		return txnRecord{}, false, kerr.ConcurrentTransactions
	}
	switch m.State {
	case stateOngoing:
		state := statePrepareAbort
		if commit {
			state = statePrepareCommit
		}
		next, err := m.prepareAbortOrCommit(state, tv0, noProducerID, tc.nowMs(), false)
		return next, false, err
	case stateCompleteCommit, stateCompleteAbort:
		if commit == (m.State == stateCompleteCommit) {
			return txnRecord{}, true, nil
		}
	case stateEmpty:
	default:
		return txnRecord{}, false, errIllegalTransition
	}
	return txnRecord{}, false, tc.errInvalidTxnState(m, commit)
}

// prepareEndTxnV2Locked is endTransaction for a transactions-v2 client.
// With the epoch bumped at every end, the epoch tells a retry (one behind)
// from the next transaction's end (current):
//
//	               | Abort           | Commit
//	               | Retry | Current | Retry | Current
//	Empty          | FENCED| bump    | FENCED| INVALID_TXN_STATE
//	CompleteAbort  | ok    | bump    | ITS   | ITS
//	CompleteCommit | ITS   | bump    | ok    | ITS
func (tc *TransactionCoordinator) prepareEndTxnV2Locked(m *txnMetadata, pid int64, epoch int16, commit bool) (txnRecord, bool, *kerr.Error) {
	// The client retries an end that rotated the producer id at the
	// exhausted epoch; the new id is current.
	retryOnOverflow := m.PrevProducerID == pid && epoch == math.MaxInt16-1 && m.ProducerEpoch == 0
	// The client retries an end whose bumped epoch is current.
	retryOnEpochBump := int32(m.ProducerEpoch) == int32(epoch)+1
	var validEpoch bool
	switch m.State {
	case statePrepareCommit, statePrepareAbort:
		validEpoch = retryOnEpochBump
	case stateCompleteCommit, stateCompleteAbort:
		validEpoch = retryOnEpochBump || retryOnOverflow || epoch == m.ProducerEpoch
	default:
		validEpoch = epoch == m.ProducerEpoch
	}
	isRetry := retryOnEpochBump || retryOnOverflow
	switch {
	case m.ProducerID != pid && !retryOnOverflow:
		return txnRecord{}, false, kerr.InvalidProducerIDMapping
	case !validEpoch:
		return txnRecord{}, false, kerr.ProducerFenced
	case m.State.isPrepared():
		return txnRecord{}, false, kerr.ConcurrentTransactions
	}

	end := func(state txnState, noPartitionAdded bool) (txnRecord, bool, *kerr.Error) {
		nextPID := noProducerID
		if isEpochExhausted(m.ProducerEpoch) {
			pid, err := tc.newProducerIDLocked()
			if err != nil {
				return txnRecord{}, false, err
			}
			nextPID = pid
		}
		next, err := m.prepareAbortOrCommit(state, tv2, nextPID, tc.nowMs(), noPartitionAdded)
		return next, false, err
	}
	switch m.State {
	case stateOngoing:
		if commit {
			return end(statePrepareCommit, false)
		}
		return end(statePrepareAbort, false)
	case stateCompleteCommit:
		switch {
		case commit && isRetry:
			return txnRecord{}, true, nil
		case !commit && !isRetry:
			return end(statePrepareAbort, true)
		}
	case stateCompleteAbort:
		switch {
		case !commit && isRetry:
			return txnRecord{}, true, nil
		case !commit:
			return end(statePrepareAbort, true)
		}
	case stateEmpty:
		if !commit {
			return end(statePrepareAbort, true)
		}
	default:
		return txnRecord{}, false, errIllegalTransition
	}
	return txnRecord{}, false, tc.errInvalidTxnState(m, commit)
}
