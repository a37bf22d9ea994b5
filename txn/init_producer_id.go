package txn

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// InitProducerID: v0-5. Kafka's TransactionCoordinator.handleInitProducerId:
//   - with no transactional id (an idempotent producer, which the broker
//     may answer itself), a new producer id at epoch 0;
//   - an empty transactional id is INVALID_REQUEST; a timeout <= 0 or over
//     transaction.max.timeout.ms INVALID_TRANSACTION_TIMEOUT;
//   - a new transactional id gets a new producer id at epoch 0;
//   - a known one with no transaction open gets its epoch bumped, which
//     fences older producers with the same id; at an exhausted epoch it
//     gets a new producer id at epoch 0;
//   - with a transaction Ongoing, the transaction is aborted first, at a
//     bumped epoch, and the answer is CONCURRENT_TRANSACTIONS: the client
//     retries and gets the epoch bumped once more;
//   - while the markers of an EndTxn are written, it waits for them;
//     while markers that failed wait for their retry,
//     CONCURRENT_TRANSACTIONS.
//
// Version notes:
//   - v3: ProducerID/ProducerEpoch of a producer recovering (KIP-360): it
//     keeps its producer id unless another producer took over (then
//     PRODUCER_FENCED), and a retry of a bump that succeeded gets the
//     same epoch back; only one of the two set is INVALID_REQUEST.
//   - v4: PRODUCER_FENCED; before, INVALID_PRODUCER_EPOCH (KIP-588).
//   - v6 (KIP-939, two-phase commit) is not supported.
func (tc *TransactionCoordinator) InitProducerID(req *kmsg.InitProducerIDRequest) *kmsg.InitProducerIDResponse {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	pid, epoch, err := tc.initProducerID(req)
	if err != nil {
		if err == kerr.ProducerFenced && req.Version < 4 {
			err = kerr.InvalidProducerEpoch
		}
		resp.ErrorCode = err.Code
		resp.ProducerID, resp.ProducerEpoch = noProducerID, noProducerEpoch
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = pid, epoch
	return resp
}

// producerIDAndEpoch is what a KIP-360 client says it has.
type producerIDAndEpoch struct {
	id    int64
	epoch int16
}

func (tc *TransactionCoordinator) initProducerID(req *kmsg.InitProducerIDRequest) (int64, int16, *kerr.Error) {
	if req.TransactionalID == nil {
		tc.mu.Lock()
		defer tc.mu.Unlock()
		pid, err := tc.newProducerIDLocked()
		return pid, 0, err
	}
	if *req.TransactionalID == "" {
		return 0, 0, kerr.InvalidRequest
	}
	id, timeoutMs := *req.TransactionalID, req.TransactionTimeoutMillis
	if timeoutMs <= 0 || timeoutMs > tc.cfg.TransactionMaxTimeoutMs {
		return 0, 0, kerr.InvalidTransactionTimeout
	}
	var expected *producerIDAndEpoch
	if req.Version >= 3 {
		switch {
		case req.ProducerID == noProducerID && req.ProducerEpoch == noProducerEpoch:
		case req.ProducerID == noProducerID || req.ProducerEpoch == noProducerEpoch:
			return 0, 0, kerr.InvalidRequest
		default:
			expected = &producerIDAndEpoch{req.ProducerID, req.ProducerEpoch}
		}
	}

	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.closed {
		return 0, 0, kerr.CoordinatorNotAvailable
	}
	m := tc.completedLocked(id)
	if m == nil {
		pid, err := tc.newProducerIDLocked()
		if err != nil {
			return 0, 0, err
		}
		// Only in memory until the bump to epoch 0 below is stored.
		m = &txnMetadata{transactionalID: id, txnRecord: txnRecord{
			ProducerID:             pid,
			PrevProducerID:         noProducerID,
			NextProducerID:         noProducerID,
			ProducerEpoch:          noProducerEpoch,
			LastProducerEpoch:      noProducerEpoch,
			TxnTimeoutMs:           timeoutMs,
			State:                  stateEmpty,
			TxnStartTimestamp:      -1,
			TxnLastUpdateTimestamp: tc.nowMs(),
		}}
		tc.txns[id] = m
	}
	pid, epoch, err := tc.prepareInitProducerIDLocked(m, timeoutMs, expected)
	if err != nil && m.ProducerEpoch == noProducerEpoch && !m.pending && tc.txns[id] == m {
		delete(tc.txns, id) // never stored
	}
	return pid, epoch, err
}

// prepareInitProducerIDLocked is prepareInitProducerIdTransit and what
// follows it: the new producer id and epoch once stored.
func (tc *TransactionCoordinator) prepareInitProducerIDLocked(m *txnMetadata, timeoutMs int32, expected *producerIDAndEpoch) (int64, int16, *kerr.Error) {
	if m.State.isPrepared() {
		return 0, 0, kerr.ConcurrentTransactions // markers being written
	}
	// A client's producer id is its own unless the metadata was just
	// created (it recovers from UNKNOWN_PRODUCER_ID and gets the new one),
	// or it is the previous id and the epoch it has is exhausted (a retry
	// of a rotation whose answer it missed).
	if expected != nil && m.ProducerEpoch != noProducerEpoch && expected.id != m.ProducerID &&
		!(expected.id == m.PrevProducerID && isEpochExhausted(expected.epoch)) {
		return 0, 0, kerr.ProducerFenced
	}
	var next txnRecord
	var err *kerr.Error
	switch m.State {
	case stateEmpty, stateCompleteCommit, stateCompleteAbort:
		if isEpochExhausted(m.ProducerEpoch) && (expected == nil || expected.epoch == m.ProducerEpoch) {
			pid, perr := tc.newProducerIDLocked()
			if perr != nil {
				return 0, 0, perr
			}
			next, err = m.prepareProducerIdRotation(pid, timeoutMs, tc.nowMs(), expected != nil)
		} else {
			var expectedEpoch *int16
			if expected != nil {
				expectedEpoch = &expected.epoch
			}
			next, err = m.prepareIncrementProducerEpoch(timeoutMs, expectedEpoch, tc.nowMs())
		}

	case stateOngoing:
		// Abort the open transaction at a bumped epoch that is never
		// returned; the client retries and the epoch is bumped again (and
		// if the fence exhausted the epochs, the retry rotates the id).
		if err := tc.fenceAndAbortLocked(m, false); err != nil {
			return 0, 0, err
		}
		return 0, 0, kerr.ConcurrentTransactions

	default:
		return 0, 0, tc.logIllegal(m, errIllegalTransition)
	}
	if err != nil {
		return 0, 0, tc.logIllegal(m, err)
	}
	if err := tc.transitionLocked(m, next); err != nil {
		return 0, 0, err
	}
	tc.logger.Debug("initialized transactional id", "transactional_id", m.transactionalID, "producer_id", next.ProducerID, "producer_epoch", next.ProducerEpoch)
	return next.ProducerID, next.ProducerEpoch, nil
}
