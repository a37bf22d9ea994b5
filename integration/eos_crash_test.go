package integration

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A read-process-write loop (kgo GroupTransactSession) copies topic A to
// topic B while the broker is killed with SIGKILL and restarted at random
// points, and the application itself restarts after each failed commit:
// B ends up with every record of A exactly once (read_committed), and the
// group's committed offsets cover A.
func TestExactlyOnceAcrossBrokerCrashes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr, httpAddr := freeAddr(t), freeAddr(t)
	noDelay := []string{"--override", "group.initial.rebalance.delay.ms=0"}
	p := startProcessAt(t, dir, addr, httpAddr, noDelay...)
	adm := kadm.NewClient(newClient(t, addr))
	createTopic(t, adm, "eos-a", 3, nil)
	createTopic(t, adm, "eos-b", 3, nil)
	const n = 20000
	src := newClient(t, addr, kgo.DefaultProduceTopic("eos-a"))
	var rs []*kgo.Record
	for i := range n {
		rs = append(rs, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))})
	}
	produceSync(t, src, rs...)

	appCtx, stopApp := context.WithCancel(context.Background())
	var app sync.WaitGroup
	var txns atomic.Int64
	var restarts int
	app.Add(1)
	go func() {
		defer app.Done()
		restarts = copyApp(t, appCtx, &txns, kgo.SeedBrokers(addr), kgo.TransactionalID("eos-app"),
			kgo.ConsumerGroup("eos"), kgo.ConsumeTopics("eos-a"), kgo.DefaultProduceTopic("eos-b"), kgo.RetryTimeout(20*time.Second))
	}()

	// Three kills, each at a random point a few transactions after the
	// previous restart.
	for range 3 {
		target := txns.Load() + 2 + rand.Int64N(8)
		for deadline := time.Now().Add(30 * time.Second); txns.Load() < target; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("stuck at %d transactions", txns.Load())
			}
		}
		time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
		t.Logf("kill -9 after %d transactions", txns.Load())
		p.kill()
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
		p = startProcessAt(t, dir, addr, httpAddr, noDelay...)
	}

	// Wait until the group has committed all of A, then give a duplicate
	// the time to show up.
	waitGroupCommitted(t, kadm.NewClient(newClient(t, addr)), "eos", n, 90*time.Second)
	time.Sleep(500 * time.Millisecond)
	stopApp()
	app.Wait()

	got := map[string]int{}
	for _, v := range consumeAll(t, addr, "eos-b", kgo.FetchIsolationLevel(kgo.ReadCommitted())) {
		got[v]++
	}
	checkEachOnce(t, got, n)
	t.Logf("%d transactions committed, the application restarted %d times", txns.Load(), restarts)
}

// waitGroupCommitted waits until group's committed offsets sum to n.
func waitGroupCommitted(t *testing.T, adm *kadm.Client, group string, n int64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		groups, err := adm.FetchOffsets(context.Background(), group)
		done := int64(0)
		if err == nil {
			groups.Each(func(o kadm.OffsetResponse) { done += o.At })
		}
		if done == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the group committed %d of %d (%v)", done, n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkEachOnce checks that got, counts of the values read from B, holds
// each of the n values "0".."n-1" of A exactly once.
func checkEachOnce(t *testing.T, got map[string]int, n int) {
	t.Helper()
	bad := 0
	for i := 0; i < n && bad < 10; i++ {
		if c := got[strconv.Itoa(i)]; c != 1 {
			t.Errorf("record %d is in B %d times", i, c)
			bad++
		}
	}
	if len(got) != n {
		t.Errorf("B holds %d distinct records, A %d", len(got), n)
	}
}

// copyApp is a read-process-write application: a kgo GroupTransactSession
// (configured by opts: seeds, transactional id, group, topics) copies what
// it consumes, read_committed from the start, in one transaction per poll,
// and starts again after each failed commit, until ctx ends. txns counts
// the committed transactions; it returns how often it restarted.
func copyApp(t *testing.T, ctx context.Context, txns *atomic.Int64, opts ...kgo.Opt) (restarts int) {
	for ctx.Err() == nil {
		sess, err := kgo.NewGroupTransactSession(append([]kgo.Opt{kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RequireStableFetchOffsets()}, opts...)...)
		if err != nil {
			t.Error(err)
			return restarts
		}
		for ctx.Err() == nil {
			c, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			fs := sess.PollRecords(c, 300)
			cancel()
			if fs.NumRecords() == 0 {
				continue
			}
			if err := sess.Begin(); err != nil {
				break
			}
			fs.EachRecord(func(r *kgo.Record) {
				sess.Produce(ctx, &kgo.Record{Key: r.Key, Value: r.Value}, nil)
			})
			committed, err := sess.End(ctx, kgo.TryCommit)
			if err != nil {
				break
			}
			if committed {
				txns.Add(1)
			}
		}
		sess.Close()
		restarts++
	}
	return restarts
}
