package storage

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTopicLifecycle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := openTestManager(t, dir, nil, LogConfig{})

	t1, err := m.CreateTopic("orders", 3, map[string]string{"retention.ms": "1000", "compression.type": "zstd"})
	if err != nil {
		t.Fatal(err)
	}
	if t1.ID == (TopicID{}) || len(t1.Partitions) != 3 || t1.Config.RetentionMs != 1000 || t1.Configs["compression.type"] != "zstd" {
		t.Fatalf("topic %+v", t1)
	}
	for p, l := range t1.Partitions {
		if l.Topic() != "orders" || l.Partition() != int32(p) || l.Config().RetentionMs != 1000 {
			t.Fatalf("partition %d: %s/%d %+v", p, l.Topic(), l.Partition(), l.Config())
		}
		if _, err := os.Stat(filepath.Join(dir, partitionDirName("orders", int32(p)))); err != nil {
			t.Fatal(err)
		}
	}
	t2, err := m.CreateTopic("doomed", 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateTopic("orders", 1, nil); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if got, ok := m.TopicByID(t1.ID); !ok || got != t1 {
		t.Fatal("TopicByID")
	}
	for i := range 4 {
		appendOK(t, t1.Partitions[0], newBatch(t, batchOpts{}, rec("v", int64(i))), 0)
	}
	if _, err := t1.Partitions[0].DeleteRecordsBefore(2); err != nil {
		t.Fatal(err)
	}
	appendOK(t, t2.Partitions[1], newBatch(t, batchOpts{}, rec("v", 1)), 0)

	if err := m.DeleteTopic("doomed"); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteTopic("doomed"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("second delete: %v", err)
	}
	if _, ok := m.Topic("doomed"); ok {
		t.Fatal("deleted topic still listed")
	}
	if _, ok := m.TopicByID(t2.ID); ok {
		t.Fatal("deleted topic still found by id")
	}
	if _, err := t2.Partitions[1].AppendAsLeader(newBatch(t, batchOpts{}, rec("v", 1)), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("append to deleted topic: %v", err)
	}

	if _, err := m.CreatePartitions("orders", 3); !errors.Is(err, ErrInvalidPartitions) {
		t.Fatalf("shrink/same: %v", err)
	}
	if _, err := m.CreatePartitions("nope", 5); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("unknown: %v", err)
	}
	t1b, err := m.CreatePartitions("orders", 5)
	if err != nil || len(t1b.Partitions) != 5 || t1b.Partitions[0] != t1.Partitions[0] || len(t1.Partitions) != 3 {
		t.Fatalf("CreatePartitions: %v", err)
	}
	t1c, err := m.SetTopicConfig("orders", map[string]string{"segment.bytes": "100000", "cleanup.policy": "compact"})
	if err != nil {
		t.Fatal(err)
	}
	if t1c.Config.RetentionMs != DefaultLogConfig().RetentionMs || t1c.Config.SegmentBytes != 100000 {
		t.Fatalf("config not replaced wholesale: %+v", t1c.Config)
	}
	for _, l := range t1c.Partitions {
		if l.Config().SegmentBytes != 100000 || l.Config().CleanupPolicy != "compact" {
			t.Fatalf("live log config not updated: %+v", l.Config())
		}
	}
	if _, err := m.SetTopicConfig("orders", map[string]string{"segment.bytes": "1"}); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "segment.bytes") {
		t.Fatalf("invalid config: %v", err)
	}
	if names := topicNames(m); names != "orders" {
		t.Fatalf("topics: %s", names)
	}

	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := m.CreateTopic("late", 1, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("create after close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, cleanShutdownFile)); err != nil {
		t.Fatalf("no clean shutdown marker: %v", err)
	}
	assertNoDirs(t, dir, "doomed")

	m2 := openTestManager(t, dir, nil, LogConfig{})
	if _, err := os.Stat(filepath.Join(dir, cleanShutdownFile)); !os.IsNotExist(err) {
		t.Fatalf("marker survived the reopen: %v", err)
	}
	r, ok := m2.Topic("orders")
	if !ok || r.ID != t1.ID || len(r.Partitions) != 5 || !maps.Equal(r.Configs, t1c.Configs) || r.Config != t1c.Config {
		t.Fatalf("reopened topic %+v", r)
	}
	if _, ok := m2.Topic("doomed"); ok {
		t.Fatal("deleted topic came back")
	}
	p0 := r.Partitions[0]
	if p0.LogEndOffset() != 4 || p0.LogStartOffset() != 2 || p0.HighWatermark() != 4 {
		t.Fatalf("partition 0: LEO %d LSO %d HW %d", p0.LogEndOffset(), p0.LogStartOffset(), p0.HighWatermark())
	}
	if got := readRecords(t, p0, 2); len(got) != 2 || got[0].Offset != 2 {
		t.Fatalf("records %v", got)
	}

	// A re-created topic of the same name starts empty with a new id.
	if err := m2.DeleteTopic("orders"); err != nil {
		t.Fatal(err)
	}
	again, err := m2.CreateTopic("orders", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID == t1.ID || again.Partitions[0].LogEndOffset() != 0 || again.Partitions[0].LogStartOffset() != 0 {
		t.Fatalf("recreated topic: id reused %v, LEO %d LSO %d", again.ID == t1.ID, again.Partitions[0].LogEndOffset(), again.Partitions[0].LogStartOffset())
	}
}

func topicNames(m *LogManager) string {
	var names []string
	for _, t := range m.Topics() {
		names = append(names, t.Name)
	}
	return strings.Join(names, ",")
}

func assertNoDirs(t *testing.T, dir, topic string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), topic+"-") {
			t.Errorf("directory left behind: %s", e.Name())
		}
	}
}

func TestCreateTopicValidation(t *testing.T) {
	t.Parallel()
	m := openTestManager(t, t.TempDir(), nil, LogConfig{})
	if _, err := m.CreateTopic("a.b", 1, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		partitions int32
		configs    map[string]string
		want       error
	}{
		{"", 1, nil, ErrInvalidTopic},
		{".", 1, nil, ErrInvalidTopic},
		{"..", 1, nil, ErrInvalidTopic},
		{"has space", 1, nil, ErrInvalidTopic},
		{"slash/", 1, nil, ErrInvalidTopic},
		{"ünïcode", 1, nil, ErrInvalidTopic},
		{strings.Repeat("x", 250), 1, nil, ErrInvalidTopic},
		{"a_b", 1, nil, ErrInvalidTopic}, // collides with a.b
		{"zero", 0, nil, ErrInvalidPartitions},
		{"negative", -1, nil, ErrInvalidPartitions},
		{"badcfg", 1, map[string]string{"retention.ms": "soon"}, ErrInvalidConfig},
		{"badcfg2", 1, map[string]string{"message.timestamp.type": "Now"}, ErrInvalidConfig},
	}
	for _, tt := range tests {
		if _, err := m.CreateTopic(tt.name, tt.partitions, tt.configs); !errors.Is(err, tt.want) {
			t.Errorf("CreateTopic(%q, %d, %v): err = %v, want %v", tt.name, tt.partitions, tt.configs, err, tt.want)
		}
	}
	if names := topicNames(m); names != "a.b" {
		t.Fatalf("failed creates left topics: %s", names)
	}
	long := strings.Repeat("y", 249)
	tp, err := m.CreateTopic(long, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteTopic(long); err != nil { // the "-delete" name must fit 255 bytes
		t.Fatal(err)
	}
	_ = tp
}

// crash stops m the way a killed process would: no flush, no clean-shutdown marker.
func crash(m *LogManager) {
	m.closeOnce.Do(func() {
		m.closed.Store(true)
		close(m.stop)
		m.wg.Wait()
		for _, t := range m.Topics() {
			for _, l := range t.Partitions {
				l.close(false)
			}
		}
		m.meta.Close()
	})
}

func TestUncleanRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := openTestManager(t, dir, nil, LogConfig{})
	tp, err := m.CreateTopic("c", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := tp.Partitions[0]
	for i := range 5 {
		appendOK(t, l, newBatch(t, batchOpts{codec: compressionGzip}, rec("v", int64(i))), 0)
	}
	crash(m)
	logFile := segmentFile(filepath.Join(dir, "c-0"), 0, logFileSuffix)
	b := readFile(t, logFile)
	os.WriteFile(logFile, b[:len(b)-7], 0o644) // the last write was torn

	m2 := openTestManager(t, dir, nil, LogConfig{})
	tp2, _ := m2.Topic("c")
	if l2 := tp2.Partitions[0]; l2.LogEndOffset() != 4 || len(readRecords(t, l2, 0)) != 4 {
		t.Fatalf("after unclean restart: LEO %d", l2.LogEndOffset())
	}
}

func TestDeleteRecordsSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	one := len(newBatch(t, batchOpts{}, rec("x", 1)))
	m := openTestManager(t, dir, nil, LogConfig{})
	tp, err := m.CreateTopic("d", 1, map[string]string{"segment.bytes": itoa(2 * one)})
	if err != nil {
		t.Fatal(err)
	}
	l := tp.Partitions[0]
	for range 6 {
		appendOK(t, l, newBatch(t, batchOpts{}, rec("x", 1)), 0)
	}
	if lso, err := l.DeleteRecordsBefore(3); err != nil || lso != 3 {
		t.Fatalf("DeleteRecordsBefore: %d %v", lso, err)
	}
	crash(m) // durable before DeleteRecordsBefore returned, not only at Close

	m2 := openTestManager(t, dir, nil, LogConfig{})
	tp2, _ := m2.Topic("d")
	l2 := tp2.Partitions[0]
	if l2.LogStartOffset() != 3 || l2.LogEndOffset() != 6 {
		t.Fatalf("LSO %d LEO %d", l2.LogStartOffset(), l2.LogEndOffset())
	}
	if _, err := l2.Read(2, 1000, 6, true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below LSO after restart: %v", err)
	}
}

func TestLogManagerDirHousekeeping(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := openTestManager(t, dir, nil, LogConfig{})
	if _, err := m.CreateTopic("keep", 1, nil); err != nil {
		t.Fatal(err)
	}
	m.Close()
	// Leftovers: a half-removed deleted partition, and a stray dir of an unknown topic
	// (kept, only warned about).
	os.MkdirAll(filepath.Join(dir, "gone-0.0123abcd-delete"), 0o755)
	os.WriteFile(filepath.Join(dir, "gone-0.0123abcd-delete", "00000000000000000000.log"), []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(dir, "orphan-0"), 0o755)
	os.WriteFile(filepath.Join(dir, "orphan-0", "00000000000000000000.log"), []byte("x"), 0o644)

	m2 := openTestManager(t, dir, nil, LogConfig{})
	if _, err := os.Stat(filepath.Join(dir, "gone-0.0123abcd-delete")); !os.IsNotExist(err) {
		t.Fatalf("-delete dir not removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "orphan-0")); err != nil {
		t.Fatalf("orphan dir removed: %v", err)
	}
	// Creating the topic replaces the stale directory.
	tp, err := m2.CreateTopic("orphan", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tp.Partitions[0].LogEndOffset() != 0 || tp.Partitions[0].Size() != 0 {
		t.Fatal("stale data in new topic")
	}
}

// A partition directory lost with a crash (its entry never synced) comes back
// empty at the next start, and takes appends; the others keep their records.
func TestLogManagerRecreatesLostPartitionDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := openTestManager(t, dir, nil, LogConfig{})
	tp, err := m.CreateTopic("lost", 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	appendOK(t, tp.Partitions[0], newBatch(t, batchOpts{}, rec("kept", 1)), 0)
	m.Close()
	if err := os.RemoveAll(filepath.Join(dir, "lost-1")); err != nil {
		t.Fatal(err)
	}

	m2 := openTestManager(t, dir, nil, LogConfig{})
	tp2, ok := m2.Topic("lost")
	if !ok {
		t.Fatal("topic gone after restart")
	}
	if got := readRecords(t, tp2.Partitions[0], 0); len(got) != 1 || string(got[0].Value) != "kept" {
		t.Fatalf("partition 0 after restart: %v", got)
	}
	if leo := tp2.Partitions[1].LogEndOffset(); leo != 0 {
		t.Fatalf("recreated partition 1 has LEO %d, want 0", leo)
	}
	appendOK(t, tp2.Partitions[1], newBatch(t, batchOpts{}, rec("new", 2)), 0)
	if got := readRecords(t, tp2.Partitions[1], 0); len(got) != 1 || string(got[0].Value) != "new" {
		t.Fatalf("partition 1 after append: %v", got)
	}
	if files := segmentFiles(t, filepath.Join(dir, "lost-1"), ".log"); len(files) != 1 {
		t.Fatalf("recreated partition 1 has segments %v", files)
	}
}

func TestOpenLogManagerErrors(t *testing.T) {
	t.Parallel()
	if _, err := OpenLogManager(LogManagerOptions{}); err == nil {
		t.Fatal("no dir accepted")
	}
	bad := DefaultLogConfig()
	bad.SegmentBytes = 1
	if _, err := OpenLogManager(LogManagerOptions{Dir: t.TempDir(), Defaults: bad}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("bad defaults: %v", err)
	}
	// A second manager on the same dir fails on meta.db's lock instead of corrupting it.
	dir := t.TempDir()
	openTestManager(t, dir, nil, LogConfig{})
	if _, err := OpenLogManager(LogManagerOptions{Dir: dir}); err == nil {
		t.Fatal("second open succeeded")
	}
}

func TestCreateTopicWithID(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := openTestManager(t, dir, nil, LogConfig{})
	id := TopicID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	tp, err := m.CreateTopicWithID("r", id, 2, map[string]string{"retention.ms": "1000"})
	if err != nil || tp.ID != id || len(tp.Partitions) != 2 || tp.Config.RetentionMs != 1000 {
		t.Fatalf("CreateTopicWithID: %+v, %v", tp, err)
	}
	if again, err := m.CreateTopicWithID("r", id, 2, nil); err != nil || again != tp {
		t.Fatalf("replayed create: %p %v, want %p and no error", again, err, tp)
	}
	other := TopicID{15: 9}
	tests := []struct {
		name       string
		id         TopicID
		partitions int32
		want       error
	}{
		{"r", other, 2, ErrTopicExists},
		{"s", id, 1, ErrInvalidTopic}, // the id is r's
		{"s", TopicID{}, 1, ErrInvalidTopic},
		{"s", TopicID{15: 1}, 1, ErrInvalidTopic},
		{"bad name", other, 1, ErrInvalidTopic},
		{"s", other, 0, ErrInvalidPartitions},
	}
	for _, tt := range tests {
		got, err := m.CreateTopicWithID(tt.name, tt.id, tt.partitions, nil)
		if !errors.Is(err, tt.want) {
			t.Errorf("CreateTopicWithID(%q, %s, %d): %v, want %v", tt.name, tt.id, tt.partitions, err, tt.want)
		}
		if errors.Is(err, ErrTopicExists) != (got == tp) {
			t.Errorf("CreateTopicWithID(%q, %s): returned %p", tt.name, tt.id, got)
		}
	}
	if names := topicNames(m); names != "r" {
		t.Fatalf("failed creates left topics: %s", names)
	}
	crash(m) // durable when it returns
	m = openTestManager(t, dir, nil, LogConfig{})
	if tp, ok := m.TopicByID(id); !ok || tp.Name != "r" || len(tp.Partitions) != 2 || tp.Configs["retention.ms"] != "1000" {
		t.Fatalf("after a restart: %+v, %v", tp, ok)
	}
	if _, err := m.CreateTopicWithID("r", id, 2, nil); err != nil {
		t.Fatalf("replayed create after a restart: %v", err)
	}
}
