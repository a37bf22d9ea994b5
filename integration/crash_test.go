package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Kill -9 the broker while producers are writing; after restart every
// acknowledged record is at the offset it was acknowledged with, and the
// log reads back cleanly (no torn batch is served). With the default fsync
// policy (leave it to the OS) acknowledged data is in the page cache, which
// a process crash does not lose.
func TestCrashKeepsAcknowledgedRecords(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startProcess(t, dir, "--override", "log.segment.bytes=1048576")
	cl := newClient(t, p.addr, kgo.DefaultProduceTopic("crash"), kgo.AllowAutoTopicCreation(),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite(), kgo.ProducerLinger(0),
		kgo.RecordRetries(0), kgo.RecordDeliveryTimeout(3*time.Second), kgo.ProducerBatchCompression(kgo.NoCompression()))
	produceSync(t, cl, &kgo.Record{Value: []byte("warm-up")})

	var (
		mu    sync.Mutex
		acked = map[string]int64{} // value → offset
	)
	produceCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Padding (sent uncompressed), so the log grows past several segments.
	pad := make([]byte, 2000)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000 && produceCtx.Err() == nil; i++ {
				v := fmt.Sprintf("w%d-%07d-%s", w, i, pad)
				cl.Produce(produceCtx, &kgo.Record{Value: []byte(v)}, func(r *kgo.Record, err error) {
					if err == nil {
						mu.Lock()
						acked[string(r.Value)] = r.Offset
						mu.Unlock()
					}
				})
			}
		}()
	}
	// Kill once enough is acknowledged to cross several segments.
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 3000 || produceCtx.Err() != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.kill()
	cancel()
	wg.Wait()
	cl.Close()

	mu.Lock()
	defer mu.Unlock()
	if len(acked) < 1000 {
		t.Fatalf("only %d records acknowledged before the kill", len(acked))
	}

	if segs, _ := filepath.Glob(filepath.Join(dir, "crash-0", "*.log")); len(segs) < 3 {
		t.Fatalf("the crash hit %d segments; the test wants several", len(segs))
	}
	p = startProcess(t, dir)
	end := newClient(t, p.addr)
	offsets, err := kadm.NewClient(end).ListEndOffsets(ctx(t), "crash")
	if err != nil {
		t.Fatal(err)
	}
	o, _ := offsets.Lookup("crash", 0)
	got := consumeN(t, p.addr, "crash", int(o.Offset))
	byValue := map[string]int64{}
	for i, r := range got {
		if r.Offset != int64(i) {
			t.Fatalf("record %d has offset %d: the log has a hole", i, r.Offset)
		}
		byValue[string(r.Value)] = r.Offset
	}
	for v, off := range acked {
		if got, ok := byValue[v]; !ok || got != off {
			t.Fatalf("acknowledged record at offset %d lost or moved (found: %v at %d)", off, ok, got)
		}
	}
	t.Logf("%d acknowledged records, %d in the log after kill -9 and restart", len(acked), len(got))
}
