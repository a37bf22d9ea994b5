package broker

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The cost of metrics, measured apart from the rest of the broker:
//
//	go test -run '^$' -bench 'RequestMetrics|Scrape' -benchmem ./broker

// BenchmarkRequestMetrics is the metric work of one produce request.
func BenchmarkRequestMetrics(b *testing.B) {
	m, err := newMetrics(prometheus.NewRegistry(), &Server{}, "bench", newLogFlushHistogram())
	if err != nil {
		b.Fatal(err)
	}
	resp := oneProduce()
	b.ReportAllocs()
	for b.Loop() {
		observeProduce(m, resp)
	}
}

// BenchmarkScrape gathers /metrics of a broker with 1000 partitions (10
// topics of 100) and one group with an offset committed on each, with the
// per-partition series on and off. It reports the series a scrape returns.
func BenchmarkScrape(b *testing.B) {
	for _, perPartition := range []bool{true, false} {
		b.Run("per-partition="+strconv.FormatBool(perPartition), func(b *testing.B) {
			reg := prometheus.NewRegistry()
			cfg, err := ParseConfig(map[string]string{
				"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": b.TempDir(), "http.listener": "",
				"kbroker.metrics.per.partition.enable": strconv.FormatBool(perPartition),
			})
			if err != nil {
				b.Fatal(err)
			}
			cfg.Registerer = reg
			s, err := Start(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr()))
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			adm := kadm.NewClient(cl)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			offsets := kadm.Offsets{}
			for i := range 10 {
				topic := fmt.Sprintf("scrape-%d", i)
				if _, err := adm.CreateTopic(ctx, 100, 1, nil, topic); err != nil {
					b.Fatal(err)
				}
				for p := range int32(100) {
					offsets.AddOffset(topic, p, 0, -1)
				}
			}
			if err := adm.CommitAllOffsets(ctx, "scrape-group", offsets); err != nil {
				b.Fatal(err)
			}
			var series int
			b.ReportAllocs()
			for b.Loop() {
				mfs, err := reg.Gather()
				if err != nil {
					b.Fatal(err)
				}
				series = 0
				for _, mf := range mfs {
					series += len(mf.Metric)
				}
			}
			b.ReportMetric(float64(series), "series")
		})
	}
}
