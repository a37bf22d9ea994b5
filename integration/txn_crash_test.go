package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

const (
	txnCrashPartitions = 3
	txnCrashRecords    = 6 // per transaction, two on each partition
)

// A transactional producer (no consumer group) commits transactions of
// txnCrashRecords records spread over every partition of a topic while the
// broker is killed with SIGKILL and restarted 4 times, at random moments,
// also between Produce and EndTxn and during EndTxn. Afterwards a
// read_committed consumer sees every acknowledged transaction whole and
// exactly once, no transaction in part, and no transaction left hanging
// (the last stable offset reaches records written after the producer
// stopped). Once with kgo's default transactions v2 (KIP-890 part 2:
// Produce v12, EndTxn v5) and once capped to transactions v1
// (AddPartitionsToTxn).
func TestTransactionsAcrossBrokerCrashes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts []kgo.Opt
	}{
		{"v2", nil},
		{"v1", []kgo.Opt{kgo.MaxVersions(txnV1Versions())}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			txnCrashRun(t, "txn-crash-"+tc.name, tc.opts...)
		})
	}
}

// txnV1Versions caps a client at the request versions of transactions v1:
// below Produce v12, EndTxn v5 and TxnOffsetCommit v5 kgo does not use
// KIP-890 part 2, as bench/txns.go does.
func txnV1Versions() *kversion.Versions {
	v := kversion.Stable()
	v.SetMaxKeyVersion(int16(kmsg.Produce), 11)
	v.SetMaxKeyVersion(int16(kmsg.EndTxn), 4)
	v.SetMaxKeyVersion(int16(kmsg.TxnOffsetCommit), 4)
	return v
}

// txnCrashRun is one run of the test on its own broker process, with name
// as topic and transactional id; opts go to the producer.
func txnCrashRun(t *testing.T, name string, opts ...kgo.Opt) {
	dir := t.TempDir()
	addr, httpAddr := freeAddr(t), freeAddr(t)
	p := startProcessAt(t, dir, addr, httpAddr)
	createTopic(t, kadm.NewClient(newClient(t, addr)), name, txnCrashPartitions, nil)

	prod := &txnProducer{
		opts: append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.TransactionalID(name), kgo.DefaultProduceTopic(name),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RetryTimeout(5 * time.Second)}, opts...),
		acked: map[int]bool{},
	}
	// hard ends the producer at once if the test fails early; otherwise it
	// stops gracefully, after a committed transaction.
	hard, cancelHard := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		prod.run(t, hard, time.Now().Add(40*time.Second))
	}()
	stopped := false
	defer func() {
		if !stopped {
			cancelHard()
			wg.Wait()
		}
	}()

	waitCommitted := func(target int64) {
		for deadline := time.Now().Add(20 * time.Second); prod.committed.Load() < target; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("stuck at %d committed transactions, waiting for %d", prod.committed.Load(), target)
			}
		}
	}
	// Four kills, each a few transactions after the previous restart, plus
	// up to 20 ms so that it lands anywhere in a transaction. Most of a
	// transaction's time goes to Produce, so every other kill waits for
	// the producer to be done producing: it lands just before or in EndTxn.
	// kgo rides out a short broker outage by retrying, so the last two
	// kills also make the producer give up its transaction and start a new
	// client, as an application that loses patience would: its
	// InitProducerId then has to end what the crash left open.
	for k := range 4 {
		waitCommitted(prod.committed.Load() + 1 + rand.Int64N(5))
		time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
		if k%2 == 1 {
			for deadline := time.Now().Add(10 * time.Second); prod.phase.Load() != 2 && time.Now().Before(deadline); {
				runtime.Gosched() // a sleep would miss the moment
			}
			time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
		}
		phase := txnPhases[prod.phase.Load()] // just before the signal: a request may still finish
		p.kill()
		giveUp := k >= 2
		if giveUp {
			prod.interrupt()
		}
		t.Logf("kill -9 after %d committed transactions, %s (producer gives up: %v)", prod.committed.Load(), phase, giveUp)
		time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond)
		p = startProcessAt(t, dir, addr, httpAddr)
	}
	// A few more transactions on the last broker, then stop.
	waitCommitted(prod.committed.Load() + 3)
	prod.stop.Store(true)
	wg.Wait()
	stopped = true
	cancelHard()

	// One plain record at the end of each partition: a read_committed
	// consumer reaches it only if no transaction before it is left open.
	endCl := newClient(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()))
	for part := range int32(txnCrashPartitions) {
		produceSync(t, endCl, &kgo.Record{Topic: name, Partition: part, Value: []byte("end")})
	}
	counts := readCommittedUntilEnd(t, addr, name)

	bad := 0
	report := func(format string, args ...any) {
		t.Helper()
		if bad++; bad <= 10 {
			t.Errorf(format, args...)
		}
	}
	for i := range prod.acked {
		if counts[i] == nil {
			report("acked transaction %d is not visible", i)
			continue
		}
		for j := range txnCrashRecords {
			if c := counts[i][j]; c != 1 {
				report("acked transaction %d: record %d is visible %d times", i, j, c)
			}
		}
	}
	visibleUnacked := 0
	for i, rs := range counts {
		n := 0
		for j, c := range rs {
			if c > 0 {
				n++
			}
			if c > 1 {
				report("transaction %d: record %d is visible %d times", i, j, c)
			}
		}
		if n < txnCrashRecords {
			report("transaction %d is visible in part: %d of %d records (%v)", i, n, txnCrashRecords, *rs)
		}
		if n == txnCrashRecords && !prod.acked[i] {
			visibleUnacked++
		}
	}
	if bad > 10 {
		t.Errorf("... %d problems in all", bad)
	}
	t.Logf("%d attempts: %d acked, %d visible but not acked (commit answer lost), %d failed; %d producer clients",
		prod.attempts, len(prod.acked), visibleUnacked, prod.failed, prod.clients)
}

var txnPhases = [...]string{"between transactions", "during Produce", "during EndTxn"}

// txnProducer runs transactions with one transactional id; after any error
// it aborts as well as it can, closes its client and carries on with a new
// one, as an application would after a crash.
type txnProducer struct {
	opts      []kgo.Opt
	committed atomic.Int64 // transactions acked so far, to pace the kills
	phase     atomic.Int32 // index into txnPhases, for the log
	stop      atomic.Bool  // stop after the next committed transaction

	mu            sync.Mutex
	cancelAttempt context.CancelFunc // of the running transaction, for interrupt

	// Read after run returned.
	acked                     map[int]bool // transaction numbers whose commit returned nil
	attempts, failed, clients int
}

// run produces until stop is set (and the last transaction committed, so
// that no transaction is left open), ctx ends or deadline passes.
func (p *txnProducer) run(t *testing.T, ctx context.Context, deadline time.Time) {
	var cl *kgo.Client
	defer func() {
		if cl != nil {
			cl.Close()
		}
	}()
	// Each attempt has a new transaction number i, also after a failure, so
	// that an attempt's records are told apart from an earlier one's.
	for i := 0; ctx.Err() == nil; i++ {
		if time.Now().After(deadline) {
			t.Errorf("producer: still running at its deadline, %d committed", p.committed.Load())
			return
		}
		if cl == nil {
			var err error
			if cl, err = kgo.NewClient(p.opts...); err != nil {
				t.Errorf("producer client: %v", err)
				return
			}
			p.clients++
		}
		p.attempts++
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		p.mu.Lock()
		p.cancelAttempt = cancel
		p.mu.Unlock()
		err := p.transaction(c, cl, i)
		p.mu.Lock()
		p.cancelAttempt = nil
		p.mu.Unlock()
		cancel()
		p.phase.Store(0)
		if err == nil {
			p.acked[i] = true
			p.committed.Add(1)
			if p.stop.Load() {
				return
			}
			continue
		}
		p.failed++
		t.Logf("transaction %d failed, new client: %v", i, err)
		// Best effort: the next client's InitProducerId aborts what this
		// one leaves open anyway.
		c, cancel = context.WithTimeout(ctx, time.Second)
		cl.AbortBufferedRecords(c)
		cl.EndTransaction(c, kgo.TryAbort)
		cancel()
		cl.Close()
		cl = nil
	}
}

// interrupt makes the running transaction, if any, fail.
func (p *txnProducer) interrupt() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancelAttempt != nil {
		p.cancelAttempt()
	}
}

// transaction writes transaction i, record j with value "t<i>-r<j>" to
// partition j%3, and commits it.
func (p *txnProducer) transaction(ctx context.Context, cl *kgo.Client, i int) error {
	if err := cl.BeginTransaction(); err != nil {
		return err
	}
	p.phase.Store(1)
	rs := make([]*kgo.Record, txnCrashRecords)
	for j := range rs {
		rs[j] = &kgo.Record{Partition: int32(j % txnCrashPartitions), Value: fmt.Appendf(nil, "t%d-r%d", i, j)}
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	p.phase.Store(2)
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// readCommittedUntilEnd reads topic read_committed from the start until
// the "end" record of every partition, and counts the transaction records:
// counts[i][j] is how often "t<i>-r<j>" was read.
func readCommittedUntilEnd(t *testing.T, addr, topic string) map[int]*[txnCrashRecords]int {
	t.Helper()
	cl := newClient(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(200*time.Millisecond))
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	counts := map[int]*[txnCrashRecords]int{}
	ended := map[int32]bool{}
	for len(ended) < txnCrashPartitions {
		fs := cl.PollFetches(c)
		if c.Err() != nil {
			t.Fatalf("read_committed did not reach the end record of every partition within 30s (reached %v): "+
				"the last stable offset is stuck behind a hanging transaction", ended)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("consume %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Value) == "end" {
				ended[r.Partition] = true
				return
			}
			var i, j int
			if _, err := fmt.Sscanf(string(r.Value), "t%d-r%d", &i, &j); err != nil || j < 0 || j >= txnCrashRecords {
				t.Fatalf("unexpected record %q at %d/%d", r.Value, r.Partition, r.Offset)
			}
			if r.Partition != int32(j%txnCrashPartitions) {
				t.Errorf("record %q in partition %d", r.Value, r.Partition)
			}
			if counts[i] == nil {
				counts[i] = new([txnCrashRecords]int)
			}
			counts[i][j]++
		})
	}
	return counts
}
