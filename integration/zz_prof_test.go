package integration

import (
	"context"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestProfProduce(t *testing.T) {
	b := startBroker(t, nil)
	createTopic(t, b.admin(t), "p", 6, nil)
	cl := b.client(t, kgo.DefaultProduceTopic("p"), kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.AllISRAcks()))
	vals := make([][]byte, 1024)
	for i := range vals {
		vals[i] = make([]byte, 1024)
		rand.Read(vals[i][:512])
	}
	var wg sync.WaitGroup
	start := time.Now()
	const n = 400000
	for i := 0; i < n; i++ {
		wg.Add(1)
		cl.Produce(context.Background(), &kgo.Record{Value: vals[i%1024]}, func(*kgo.Record, error) { wg.Done() })
	}
	wg.Wait()
	t.Logf("%.0f rec/s", n/time.Since(start).Seconds())
}
