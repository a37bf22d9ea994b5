package integration

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/storage"
)

// compactProps make the LogCleaner look for work every 50 ms.
var compactProps = map[string]string{"log.cleaner.backoff.ms": "50"}

// compactTopicConfigs: compacted, rolled every 100 ms of appends, cleaned at any
// dirty ratio. (segment.bytes is at least 1 MiB in Kafka 4, so segment.ms rolls.)
func compactTopicConfigs(extra ...string) map[string]*string {
	c := map[string]*string{
		"cleanup.policy":            kadm.StringPtr("compact"),
		"segment.ms":                kadm.StringPtr("100"),
		"min.cleanable.dirty.ratio": kadm.StringPtr("0.01"),
	}
	for i := 0; i+1 < len(extra); i += 2 {
		c[extra[i]] = kadm.StringPtr(extra[i+1])
	}
	return c
}

// readPartition reads partition 0 of topic from offset 0 with a fresh consumer
// until it has seen offset last.
func readPartition(t testing.TB, addr, topic string, last int64) []*kgo.Record {
	t.Helper()
	cl := newClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(0)}}))
	defer cl.Close()
	c := ctx(t)
	var out []*kgo.Record
	for len(out) == 0 || out[len(out)-1].Offset < last {
		fs := cl.PollFetches(c)
		if err := c.Err(); err != nil {
			t.Fatalf("reading %s up to %d: %v (got %d records)", topic, last, err, len(out))
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("consume %s/%d: %v", topic, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

// eventually polls cond every 50 ms for up to 30 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type latest struct {
	offset int64
	value  []byte // nil: a tombstone
}

// checkLatestPerKey asserts that recs hold exactly one record per key of want,
// at its latest offset, with its latest value (tombstones may be there or gone).
func latestPerKeyProblem(recs []*kgo.Record, want map[string]latest) string {
	seen := map[string]bool{}
	for _, r := range recs {
		k := string(r.Key)
		w, ok := want[k]
		switch {
		case seen[k]:
			return fmt.Sprintf("key %q twice (offset %d)", k, r.Offset)
		case !ok || w.offset != r.Offset || string(w.value) != string(r.Value) || (w.value == nil) != (r.Value == nil):
			return fmt.Sprintf("key %q at %d = %q, want %d = %q", k, r.Offset, r.Value, w.offset, w.value)
		}
		seen[k] = true
	}
	for k, w := range want {
		if !seen[k] && w.value != nil {
			return fmt.Sprintf("key %q (latest at %d) missing", k, w.offset)
		}
	}
	return ""
}

func TestCompactTopicAdmin(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	cl := b.client(t)
	adm := kadm.NewClient(cl)
	createTopic(t, adm, "compact-created", 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")})
	createTopic(t, adm, "compact-altered", 1, nil)
	rs, err := adm.AlterTopicConfigs(ctx(t), []kadm.AlterConfig{{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: kadm.StringPtr("compact")}}, "compact-altered")
	if err != nil || rs[0].Err != nil {
		t.Fatalf("alter to compact: %v %v", err, rs)
	}
	dc, err := adm.DescribeTopicConfigs(ctx(t), "compact-created", "compact-altered")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ topic, policy string }{{"compact-created", "compact"}, {"compact-altered", "delete,compact"}} {
		c, err := dc.On(want.topic, nil)
		if err != nil || !hasConfig(c.Configs, "cleanup.policy", want.policy) {
			t.Errorf("%s: cleanup.policy is not %q (%v)", want.topic, want.policy, err)
		}
	}
	// Records without a key are refused, as Kafka does: INVALID_RECORD with a
	// record error naming each keyless record.
	err = cl.ProduceSync(ctx(t), &kgo.Record{Topic: "compact-created", Value: []byte("no key")}).FirstErr()
	if !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("keyless record on a compacted topic: %v, want INVALID_RECORD", err)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "compact-created"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = keylessBatch(t)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != kerr.InvalidRecord.Code || len(p.ErrorRecords) != 1 || p.ErrorRecords[0].RelativeOffset != 1 || p.ErrorRecords[0].ErrorMessage == nil ||
		*p.ErrorRecords[0].ErrorMessage != "Compacted topic cannot accept message without key in topic partition compact-created-0." {
		t.Fatalf("produce of a batch with a keyless second record: %+v", p)
	}
	produceSync(t, cl, &kgo.Record{Topic: "compact-created", Key: []byte("k"), Value: []byte("v")})
}

// keylessBatch is an uncompressed batch of two records, the second without a key.
func keylessBatch(t testing.TB) []byte {
	var raw []byte
	for i, key := range [][]byte{[]byte("k"), nil} {
		r := kmsg.Record{OffsetDelta: int32(i), Key: key, Value: []byte("v")}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		raw = r.AppendTo(raw)
	}
	now := time.Now().UnixMilli()
	b := kmsg.RecordBatch{Magic: 2, LastOffsetDelta: 1, FirstTimestamp: now, MaxTimestamp: now, ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: 2, Records: raw}
	b.Length = int32(61 - 12 + len(raw))
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[17:], crc32.Checksum(out[21:], crc32.MakeTable(crc32.Castagnoli)))
	return out
}

func TestCompactEveryCodec(t *testing.T) {
	t.Parallel()
	b := startBroker(t, compactProps)
	adm := b.admin(t)
	codecs := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	want := map[string]int8{"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
	for name, codec := range codecs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			topic := "compact-" + name
			createTopic(t, adm, topic, 1, compactTopicConfigs())
			// A linger puts each round in one batch. With none, kgo may send
			// a round's first record alone, and raw: it sends a batch
			// uncompressed when compression does not pay, which the codec
			// check below would take for the cleaner's doing.
			cl := b.client(t, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(codec), kgo.ProducerLinger(50*time.Millisecond))
			model := map[string]latest{}
			produce := func(rs []*kgo.Record) {
				for _, r := range cl.ProduceSync(ctx(t), rs...) {
					if r.Err != nil {
						t.Fatal(r.Err)
					}
					model[string(r.Record.Key)] = latest{r.Record.Offset, r.Record.Value}
				}
			}
			// Five rounds over 50 keys, each round in its own segment (segment.ms
			// rolls at the next append), then a sixth over ten keys.
			for round := range 6 {
				var rs []*kgo.Record
				for k := range 50 {
					if round == 5 && k >= 10 {
						break
					}
					rs = append(rs, &kgo.Record{Key: fmt.Appendf(nil, "key-%02d", k), Value: fmt.Appendf(nil, "round-%d-key-%02d-%s", round, k, strings.Repeat("x", 40))})
				}
				produce(rs)
				time.Sleep(120 * time.Millisecond)
			}
			// The last round becomes cleanable once an append rolls it away.
			produce([]*kgo.Record{{Key: []byte("sentinel"), Value: []byte("end")}})
			last := model["sentinel"].offset
			var problem string
			eventually(t, "compaction", func() bool {
				problem = latestPerKeyProblem(readPartition(t, b.Addr(), topic, last), model)
				return problem == ""
			})
			// Every batch on disk kept its codec and a valid CRC.
			files, _ := filepath.Glob(filepath.Join(b.dir, topic+"-0", "*.log"))
			n := 0
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				for len(data) > 0 {
					h, err := storage.ParseBatchHeader(data)
					if err != nil {
						t.Fatal(err)
					}
					if err := storage.VerifyBatchCRC(data[:h.Size()]); err != nil {
						t.Fatalf("%s: %v", f, err)
					}
					// (The sentinel, in the active segment, went uncompressed: kgo
					// sends a batch raw when compression does not pay.)
					if h.RecordCount > 0 && h.BaseOffset < last && h.Compression() != want[name] {
						t.Fatalf("%s: batch at %d has codec %d, want %d", f, h.BaseOffset, h.Compression(), want[name])
					}
					n++
					data = data[h.Size():]
				}
			}
			if n == 0 {
				t.Fatal("no batches on disk")
			}
		})
	}
}

// A Kafka Streams-style changelog: reading the compacted topic from offset 0
// rebuilds a table equal to the producer's last-write-wins model, deletes
// (tombstones) included.
func TestCompactChangelogRebuildsTable(t *testing.T) {
	t.Parallel()
	b := startBroker(t, compactProps)
	const topic = "compact-changelog"
	createTopic(t, b.admin(t), topic, 1, compactTopicConfigs("delete.retention.ms", "0"))
	cl := b.client(t, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
	rng := rand.New(rand.NewPCG(1, 2))
	table := map[string]string{}
	produced := 0
	var last int64
	for round := range 8 {
		var rs []*kgo.Record
		for range 300 {
			k := fmt.Sprintf("user-%03d", rng.IntN(200))
			r := &kgo.Record{Key: []byte(k)}
			if rng.IntN(5) == 0 {
				delete(table, k) // a tombstone
			} else {
				r.Value = fmt.Appendf(nil, "state-%d-%d", round, rng.IntN(1000))
				table[k] = string(r.Value)
			}
			rs = append(rs, r)
		}
		for _, r := range cl.ProduceSync(ctx(t), rs...) {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			last = r.Record.Offset
		}
		produced += len(rs)
		time.Sleep(120 * time.Millisecond)
	}
	end := &kgo.Record{Key: []byte("sentinel"), Value: []byte("end")}
	produceSync(t, cl, end)
	table["sentinel"] = "end"
	last = end.Offset
	var recs []*kgo.Record
	eventually(t, "the changelog to be compacted", func() bool {
		recs = readPartition(t, b.Addr(), topic, last)
		return len(recs) <= len(table)+50
	})
	rebuilt := map[string]string{}
	prev := int64(-1)
	for _, r := range recs {
		if r.Offset <= prev {
			t.Fatalf("offset %d after %d", r.Offset, prev)
		}
		prev = r.Offset
		if r.Value == nil {
			delete(rebuilt, string(r.Key))
		} else {
			rebuilt[string(r.Key)] = string(r.Value)
		}
	}
	if len(rebuilt) != len(table) {
		t.Fatalf("rebuilt table has %d keys, the model %d", len(rebuilt), len(table))
	}
	for k, v := range table {
		if rebuilt[k] != v {
			t.Fatalf("key %s: rebuilt %q, model %q", k, rebuilt[k], v)
		}
	}
	t.Logf("%d records produced, %d read back after compaction", produced+1, len(recs))
}

// kill -9 during compaction rounds: after each restart the latest value of every
// acknowledged key is still there, at its offset, and the log reads cleanly.
func TestCompactKillDuringCleaning(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const topic = "compact-crash"
	props := []string{"--override", "log.cleaner.backoff.ms=10", "--override", "log.cleaner.io.buffer.size=4096"}
	p := startProcess(t, dir, props...)
	adm := kadm.NewClient(newClient(t, p.addr))
	createTopic(t, adm, topic, 1, compactTopicConfigs("segment.ms", "30", "delete.retention.ms", "0"))

	acked := map[string]latest{}  // key -> latest acknowledged
	values := map[string]string{} // "offset" -> value of every acknowledged record
	rng := rand.New(rand.NewPCG(7, 7))
	seq, nAcked, killedMidClean := 0, 0, 0
	const rounds = 10
	for round := range rounds {
		cl := newClient(t, p.addr, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0), kgo.RecordRetries(0),
			kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.AllISRAcks()), // records fail at the kill instead of waiting
			kgo.RecordDeliveryTimeout(2*time.Second), kgo.ProducerBatchCompression(kgo.Lz4Compression()))
		var mu sync.Mutex
		runFor := time.Duration(300+rng.IntN(700)) * time.Millisecond
		keys := rand.New(rand.NewPCG(uint64(round), 9))
		c, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c.Err() == nil {
				var rs []*kgo.Record
				for range 100 {
					seq++
					k := fmt.Sprintf("key-%04d", keys.IntN(3000))
					rs = append(rs, &kgo.Record{Key: []byte(k), Value: fmt.Appendf(nil, "%s-seq-%d-%s", k, seq, strings.Repeat("p", 200))})
				}
				for _, r := range cl.ProduceSync(c, rs...) {
					if r.Err != nil {
						continue
					}
					mu.Lock()
					nAcked++
					k := string(r.Record.Key)
					if cur, ok := acked[k]; !ok || r.Record.Offset > cur.offset {
						acked[k] = latest{r.Record.Offset, r.Record.Value}
					}
					values[fmt.Sprint(r.Record.Offset)] = string(r.Record.Value)
					mu.Unlock()
				}
			}
		}()
		time.Sleep(runFor) // then kill -9, at a moment the cleaner is likely busy
		p.kill()
		cleaned, _ := filepath.Glob(filepath.Join(dir, topic+"-0", "*.cleaned"))
		swaps, _ := filepath.Glob(filepath.Join(dir, topic+"-0", "*.swap"))
		if len(cleaned)+len(swaps) > 0 {
			killedMidClean++ // .cleaned or .swap files: the kill hit a clean
		}
		cancel()
		wg.Wait()
		cl.Close()

		p = startProcessAt(t, dir, p.addr, p.httpAddr, props...)
		check := newClient(t, p.addr)
		offs, err := kadm.NewClient(check).ListEndOffsets(ctx(t), topic)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := offs.Lookup(topic, 0)
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		mu.Lock()
		// The last offset may have been cleaned away: read up to the newest
		// acknowledged key's record, which is its key's latest.
		var maxAcked int64 = -1
		for _, l := range acked {
			maxAcked = max(maxAcked, l.offset)
		}
		mu.Unlock()
		if o.Offset <= maxAcked {
			t.Fatalf("round %d: end offset %d below acknowledged offset %d", round, o.Offset, maxAcked)
		}
		recs := readPartition(t, p.addr, topic, maxAcked)
		logLatest := map[string]*kgo.Record{}
		prev := int64(-1)
		for _, r := range recs {
			if r.Offset <= prev {
				t.Fatalf("round %d: offset %d after %d", round, r.Offset, prev)
			}
			prev = r.Offset
			if v, ok := values[fmt.Sprint(r.Offset)]; ok && v != string(r.Value) {
				t.Fatalf("round %d: offset %d holds %q, %q was acknowledged there", round, r.Offset, r.Value, v)
			}
			if !strings.HasPrefix(string(r.Value), string(r.Key)+"-seq-") {
				t.Fatalf("round %d: torn record at %d: %q=%q", round, r.Offset, r.Key, r.Value)
			}
			logLatest[string(r.Key)] = r
		}
		for k, l := range acked {
			got := logLatest[k]
			if got == nil || got.Offset < l.offset {
				t.Fatalf("round %d: key %s acknowledged at %d, log has %v", round, k, l.offset, got)
			}
		}
		check.Close()
	}
	segs, _ := filepath.Glob(filepath.Join(dir, topic+"-0", "*.log"))
	t.Logf("%d records acknowledged over %d kill -9 rounds, %d kills during a clean; %d keys; %d segments at the end", nAcked, rounds, killedMidClean, len(acked), len(segs))
	if _, err := os.Stat(filepath.Join(dir, "cleaner-offset-checkpoint")); err != nil {
		t.Fatalf("the cleaner never checkpointed: %v", err)
	}
}

// In a cluster each replica compacts its own copy, as in Kafka: a follower that
// was down while its leader compacted catches up from the compacted log
// (batches with gaps between them, thinned batches), rejoins the ISR, and holds
// every key's latest record at its offset.
func TestCompactClusterFollowerCatchesUp(t *testing.T) {
	c := startCluster(t, 3, map[string]string{"log.cleaner.backoff.ms": "50"})
	adm := kadm.NewClient(c.client(t))
	const topic = "compact-replicated"
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	a.Partition, a.Replicas = 0, []int32{1, 2, 3} // led by node 1
	rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
	for k, v := range compactTopicConfigs() {
		cfg := kmsg.NewCreateTopicsRequestTopicConfig()
		cfg.Name, cfg.Value = k, v
		rt.Configs = append(rt.Configs, cfg)
	}
	req.Topics = append(req.Topics, rt)
	if resp, err := req.RequestWith(ctx(t), c.client(t)); err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create topic: %v / %v", err, resp)
	}
	waitISR(t, adm, topic, 3)
	c.stop(t, 3)

	prod := c.client(t, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
	model := map[string]latest{}
	for round := range 5 {
		var rs []*kgo.Record
		for k := range 40 {
			if round == 4 && k >= 10 {
				break
			}
			rs = append(rs, &kgo.Record{Key: fmt.Appendf(nil, "key-%02d", k), Value: fmt.Appendf(nil, "round-%d-%02d", round, k)})
		}
		rs = append(rs, &kgo.Record{Key: []byte("sentinel"), Value: fmt.Appendf(nil, "end-%d", round)})
		for _, r := range prod.ProduceSync(ctx(t), rs...) {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			model[string(r.Record.Key)] = latest{r.Record.Offset, r.Record.Value}
		}
		time.Sleep(120 * time.Millisecond)
	}
	end := &kgo.Record{Key: []byte("roll"), Value: []byte("end")} // rolls the last round away
	produceSync(t, prod, end)
	model["roll"] = latest{end.Offset, end.Value}
	last := end.Offset
	leaderAddr := c.nodes[0].srv.Addr()
	var problem string
	defer func() {
		if t.Failed() {
			t.Logf("last check of the leader: %s", problem)
		}
	}()
	eventually(t, "the leader to compact", func() bool {
		problem = latestPerKeyProblem(readPartition(t, leaderAddr, topic, last), model)
		return problem == ""
	})

	c.restart(t, 3)
	waitISR(t, adm, topic, 3)
	// Node 3's own files hold every key's latest record at its offset.
	eventually(t, "node 3 to hold the latest record of every key", func() bool {
		found := map[string]bool{}
		files, _ := filepath.Glob(filepath.Join(c.nodes[2].dir, topic+"-0", "*.log"))
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return false
			}
			for len(data) >= storage.BatchHeaderSize {
				h, err := storage.ParseBatchHeader(data)
				if err != nil || h.Size() > len(data) {
					break
				}
				storage.Records(data[:h.Size()], func(r storage.Record) bool {
					if w, ok := model[string(r.Key)]; ok && w.offset == r.Offset && string(w.value) == string(r.Value) {
						found[string(r.Key)] = true
					}
					return true
				})
				data = data[h.Size():]
			}
		}
		return len(found) == len(model)
	})
}
