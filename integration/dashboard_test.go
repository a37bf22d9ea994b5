package integration

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// metricRef finds the series names a PromQL expression reads: kbroker's
// own prefixes and the collectors' (go_, process_), with the histogram
// suffixes that name a family's parts.
var metricRef = regexp.MustCompile(`\b(?:kafka|kbroker|go|process)_[a-zA-Z0-9_]+`)

// Every query of every panel of deploy/grafana/kbroker.json reads series
// that a live broker exposes after ordinary traffic: the dashboard cannot
// drift from the metrics.
func TestDashboardSeriesExist(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../deploy/grafana/kbroker.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if len(dash.Panels) == 0 {
		t.Fatal("dashboard has no panels")
	}

	b := startBroker(t, map[string]string{"group.initial.rebalance.delay.ms": "0"})
	createTopic(t, b.admin(t), "dash", 2, nil)
	produceSync(t, b.client(t), &kgo.Record{Topic: "dash", Value: []byte("a")}, &kgo.Record{Topic: "dash", Value: []byte("b")})
	gcl := b.client(t, kgo.ConsumerGroup("dash-group"), kgo.ConsumeTopics("dash"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	for got, c := 0, ctx(t); got < 2; {
		fs := gcl.PollFetches(c)
		if c.Err() != nil {
			t.Fatal(c.Err())
		}
		got += len(fs.Records())
	}
	if err := gcl.CommitUncommittedOffsets(ctx(t)); err != nil {
		t.Fatal(err)
	}
	ms := scrape(t, b.HTTPAddr())

	seen := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			refs := metricRef.FindAllString(target.Expr, -1)
			if len(refs) == 0 {
				t.Errorf("panel %q: query %q reads no kbroker series", p.Title, target.Expr)
			}
			for _, name := range refs {
				seen++
				family := name
				if ms[family] == nil {
					for _, suffix := range []string{"_bucket", "_sum", "_count"} {
						if base, ok := strings.CutSuffix(name, suffix); ok && ms[base] != nil && ms[base].GetType() == dto.MetricType_HISTOGRAM {
							family = base
						}
					}
				}
				if fam := ms[family]; fam == nil || len(fam.GetMetric()) == 0 {
					t.Errorf("panel %q: %s is not in /metrics", p.Title, name)
				}
			}
		}
	}
	t.Logf("%d panels, %d series references checked", len(dash.Panels), seen)
}
