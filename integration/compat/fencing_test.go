package compat

import (
	"errors"
	"slices"
	"testing"

	"github.com/IBM/sarama"
)

// Two sarama producers with one transactional id: the second one's
// InitProducerId bumps the epoch and aborts the first one's open
// transaction, and the first one is fenced at its next step, whichever it is.
// Kafka's answers to a stale epoch, which kbroker must match:
//   - Produce: INVALID_PRODUCER_EPOCH (ProducerAppendInfo.checkProducerEpoch;
//     also what AddPartitionsToTxnManager turns a failed verification's
//     PRODUCER_FENCED into). sarama calls it abortable; the abort's EndTxn
//     then gets PRODUCER_FENCED.
//   - AddPartitionsToTxn v3 and EndTxn v3: PRODUCER_FENCED
//     (TransactionCoordinator: txnMetadata.producerEpoch != producerEpoch);
//     only v0-1 answer INVALID_PRODUCER_EPOCH instead.
//
// Either way the first producer ends in sarama's fatal state, its record is
// aborted, and the second producer's transaction commits.
func TestTransactionalProducerFenced(t *testing.T) {
	t.Parallel()
	addr := startBroker(t)

	for _, tc := range []struct {
		name string
		id   string // topic and transactional id
		// next is the fenced producer's next step; it returns the error
		// that step gave.
		next func(t *testing.T, p sarama.SyncProducer, topic string) error
		want sarama.KError // from next
	}{
		{"produce to a partition in the transaction", "fence-produce", func(t *testing.T, p sarama.SyncProducer, topic string) error {
			return bounded(t, "SendMessage", func() error { _, _, err := p.SendMessage(messages(topic, 0, "zombie-1")[0]); return err })
		}, sarama.ErrInvalidProducerEpoch},
		{"add a partition to the transaction", "fence-add-partition", func(t *testing.T, p sarama.SyncProducer, topic string) error {
			return bounded(t, "SendMessage", func() error { _, _, err := p.SendMessage(messages(topic, 1, "zombie-1")[0]); return err })
		}, sarama.ErrProducerFenced},
		{"commit", "fence-commit", func(t *testing.T, p sarama.SyncProducer, topic string) error {
			return bounded(t, "CommitTxn", p.CommitTxn)
		}, sarama.ErrProducerFenced},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			topic, txnID := tc.id, tc.id
			createTopic(t, addr, topic, 2)
			admin := newAdmin(t, addr)

			zombie := newSyncProducer(t, addr, producerConfig(txnID))
			txnOp(t, "BeginTxn", zombie.BeginTxn)
			send(t, zombie, messages(topic, 0, "zombie-0"))
			before := describeTxn(t, admin, txnID)
			if before.TransactionState != "Ongoing" {
				t.Fatalf("after the first producer's send: %+v, want Ongoing", before)
			}

			// The second producer's InitProducerId waits out (retrying on
			// CONCURRENT_TRANSACTIONS) the abort of the first one's
			// transaction, then starts afresh. As in Kafka's
			// TransactionCoordinator, the epoch goes up three times: to fence
			// (prepareFenceProducerEpoch), again because the broker's own
			// abort follows the broker's transaction.version, 2, whose ends
			// bump the epoch (the abort markers carry that one), and once for
			// the new producer (prepareIncrementProducerEpoch).
			p := newSyncProducer(t, addr, producerConfig(txnID))
			after := describeTxn(t, admin, txnID)
			if after.TransactionState != "Empty" || after.ProducerID != before.ProducerID || after.ProducerEpoch != before.ProducerEpoch+3 {
				t.Errorf("after the second InitProducerId: %+v, want Empty, producer id %d, epoch %d", after, before.ProducerID, before.ProducerEpoch+3)
			}

			err := tc.next(t, zombie, topic)
			if !errors.Is(err, tc.want) {
				t.Errorf("fenced producer's %s: %v, want %v", tc.name, err, tc.want)
			}
			if tc.want == sarama.ErrInvalidProducerEpoch {
				// Abortable for sarama: CommitTxn refuses, AbortTxn's EndTxn
				// meets the fence.
				if err := bounded(t, "CommitTxn", zombie.CommitTxn); !errors.Is(err, sarama.ErrInvalidProducerEpoch) {
					t.Errorf("CommitTxn after INVALID_PRODUCER_EPOCH: %v, want that error again", err)
				}
				if err := bounded(t, "AbortTxn", zombie.AbortTxn); !errors.Is(err, sarama.ErrProducerFenced) {
					t.Errorf("AbortTxn of the fenced producer: %v, want PRODUCER_FENCED", err)
				}
			}
			if s := zombie.TxnStatus(); s&sarama.ProducerTxnFlagFatalError == 0 {
				t.Errorf("fenced producer's status %s, want a fatal error", s)
			}

			txnOp(t, "BeginTxn", p.BeginTxn)
			send(t, p, messages(topic, 0, "live-0"))
			txnOp(t, "CommitTxn", p.CommitTxn)
			sendPlain(t, addr, topic, 0, "end")

			if got, want := values(readUntil(t, addr, topic, 0, sarama.ReadCommitted, "end")), []string{"live-0", "end"}; !slices.Equal(got, want) {
				t.Errorf("read_committed: %v, want %v", got, want)
			}
			if got, want := values(readUntil(t, addr, topic, 0, sarama.ReadUncommitted, "end")), []string{"zombie-0", "live-0", "end"}; !slices.Equal(got, want) {
				t.Errorf("read_uncommitted: %v, want %v", got, want)
			}
			if s := describeTxn(t, admin, txnID); s.TransactionState != "CompleteCommit" || s.ProducerEpoch != after.ProducerEpoch {
				t.Errorf("at the end: %+v, want CompleteCommit at epoch %d", s, after.ProducerEpoch)
			}
		})
	}
}

func describeTxn(t *testing.T, admin sarama.TransactionClusterAdmin, txnID string) sarama.TransactionState {
	t.Helper()
	states, err := admin.DescribeTransactions([]string{txnID})
	if err != nil {
		t.Fatalf("describe transaction %s: %v", txnID, err)
	}
	s, ok := states[txnID]
	if !ok || s.ErrorCode != sarama.ErrNoError {
		t.Fatalf("describe transaction %s: %+v", txnID, states)
	}
	return s
}
