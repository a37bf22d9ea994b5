package compat

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kbroker/kbroker/broker"
)

// startCleaningBroker is startBroker with a LogCleaner that looks for work
// every 50 ms.
func startCleaningBroker(t *testing.T) string {
	t.Helper()
	cfg, err := broker.ParseConfig(map[string]string{
		"listeners":              "PLAINTEXT://127.0.0.1:0",
		"log.dirs":               t.TempDir(),
		"http.listener":          "",
		"log.cleaner.backoff.ms": "50",
	})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if os.Getenv("KBROKER_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := broker.Start(cfg)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv.Addr()
}

// sarama, another client family than the franz-go of the integration tests,
// writes keyed records with each codec to a compacted topic and reads the
// cleaned log back: one record per key, the latest, at its offset. The
// batches it reads were rewritten by the LogCleaner with sarama's codec
// (snappy in Kafka's xerial framing), with gaps between offsets.
func TestSaramaReadsCompactedTopic(t *testing.T) {
	addr := startCleaningBroker(t)
	codecs := map[string]sarama.CompressionCodec{
		"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP, "snappy": sarama.CompressionSnappy,
		"lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD,
	}
	for name, codec := range codecs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			topic := "sarama-compact-" + name
			admin, err := sarama.NewClusterAdmin([]string{addr}, newConfig(""))
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close()
			str := func(s string) *string { return &s }
			configs := map[string]*string{"cleanup.policy": str("compact"), "segment.ms": str("100"), "min.cleanable.dirty.ratio": str("0.01")}
			if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1, ConfigEntries: configs}, false); err != nil {
				t.Fatal(err)
			}

			cfg := newConfig("")
			cfg.Producer.Compression = codec
			cfg.Producer.Flush.Messages = 30 // a round is one batch
			cfg.Producer.Flush.Frequency = 10 * time.Millisecond
			producer, err := sarama.NewSyncProducer([]string{addr}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer producer.Close()
			type latest struct {
				offset int64
				value  string
			}
			model := map[string]latest{}
			for round := range 5 {
				var msgs []*sarama.ProducerMessage
				for k := range 30 {
					msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprintf("key-%02d", k)),
						Value: sarama.StringEncoder(fmt.Sprintf("round-%d-%02d-%s", round, k, strings.Repeat("v", 50)))})
				}
				if err := producer.SendMessages(msgs); err != nil {
					t.Fatal(err)
				}
				for _, m := range msgs {
					k, _ := m.Key.Encode()
					v, _ := m.Value.Encode()
					model[string(k)] = latest{m.Offset, string(v)}
				}
				time.Sleep(120 * time.Millisecond) // segment.ms: the next append rolls
			}
			// The sentinel rolls the last round's segment away, so it is cleanable.
			_, last, err := producer.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder("sentinel"), Value: sarama.StringEncoder("end")})
			if err != nil {
				t.Fatal(err)
			}
			model["sentinel"] = latest{last, "end"}

			read := func() []*sarama.ConsumerMessage {
				consumer, err := sarama.NewConsumer([]string{addr}, newConfig(""))
				if err != nil {
					t.Fatal(err)
				}
				defer consumer.Close()
				pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
				if err != nil {
					t.Fatal(err)
				}
				defer pc.Close()
				var out []*sarama.ConsumerMessage
				timeout := time.After(10 * time.Second)
				for len(out) == 0 || out[len(out)-1].Offset < last {
					select {
					case m := <-pc.Messages():
						out = append(out, m)
					case err := <-pc.Errors():
						t.Fatal(err)
					case <-timeout:
						t.Fatalf("read %d records, never offset %d", len(out), last)
					}
				}
				return out
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				msgs := read()
				problem := ""
				seen := map[string]bool{}
				for _, m := range msgs {
					w, ok := model[string(m.Key)]
					switch {
					case seen[string(m.Key)]:
						problem = fmt.Sprintf("key %s twice (offset %d)", m.Key, m.Offset)
					case !ok || w.offset != m.Offset || w.value != string(m.Value):
						problem = fmt.Sprintf("key %s at %d = %q, want %d = %q", m.Key, m.Offset, m.Value, w.offset, w.value)
					}
					seen[string(m.Key)] = true
				}
				if problem == "" && len(seen) != len(model) {
					problem = fmt.Sprintf("%d keys read, want %d", len(seen), len(model))
				}
				if problem == "" {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("not compacted after 30s: %s (%d records read)", problem, len(msgs))
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}
