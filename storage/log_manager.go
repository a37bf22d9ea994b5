package storage

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TopicID is a topic's 16-byte id (Kafka Uuid): random, never zero for a real topic.
type TopicID [16]byte

// String renders the id as Kafka does: URL-safe base64 without padding.
func (id TopicID) String() string { return base64.RawURLEncoding.EncodeToString(id[:]) }

// Topic is an immutable snapshot of one topic; every change to the topic publishes a
// new one, so it may be read concurrently without locks.
type Topic struct {
	Name       string
	ID         TopicID
	Configs    map[string]string // the topic-level overrides, as given (do not modify)
	Config     LogConfig         // effective: broker defaults + overrides
	Partitions []*Log            // indexed by partition number
}

// LogManagerOptions configures OpenLogManager.
type LogManagerOptions struct {
	Dir                    string        // data dir: meta.db and one <topic>-<partition>/ per partition
	Defaults               LogConfig     // broker-level defaults; the zero value means DefaultLogConfig()
	RetentionCheckInterval time.Duration // log.retention.check.interval.ms; 0 means 5m
	FlushCheckInterval     time.Duration // how often flush.ms is checked (log.flush.scheduler.interval.ms); 0 means 1s
	Logger                 *slog.Logger  // nil discards
	Now                    func() time.Time
	// OnFlush, if set, is told how long each log flush (fsyncs) took; for
	// metrics. Called from the flushing goroutine: keep it cheap.
	OnFlush func(time.Duration)
	// ProducerIDExpiration is producer.id.expiration.ms: producers idle this
	// long are forgotten, checked every ProducerIDExpirationCheckInterval
	// (producer.id.expiration.check.interval.ms). 0 means 1 day and 10 minutes.
	ProducerIDExpiration              time.Duration
	ProducerIDExpirationCheckInterval time.Duration
	// ClusterID is the cluster id a new data dir gets (see OpenMetaStore);
	// empty: a random one.
	ClusterID string
	// DeferNewMetaSync builds a new data dir's meta.db without fsyncs until
	// the caller calls MetaStore.SyncNew or SyncNewInBackground, which it
	// must before it writes anything that must survive a crash.
	DeferNewMetaSync bool
	// Cleaner configures the LogCleaner of compacted topics; nil means
	// DefaultCleanerConfig().
	Cleaner *CleanerConfig
}

// LogManager owns every partition log under one data dir and the topic catalog in
// meta.db (Kafka LogManager plus the slice of the controller's metadata a single
// broker needs). Create/Delete/CreatePartitions/SetTopicConfig are serialized and are
// durable in meta.db before they return. Lookups read an immutable catalog snapshot.
// Background goroutines apply retention and the flush.ms policy, and the
// LogCleaner compacts topics with cleanup.policy compact.
type LogManager struct {
	dir      string
	defaults LogConfig
	meta     *MetaStore
	logger   *slog.Logger
	now      func() time.Time
	onFlush  func(time.Duration)

	mu      sync.Mutex // serializes catalog changes and Close
	catalog atomic.Pointer[catalog]
	closed  atomic.Bool

	checkpoints *cleanerCheckpoints // cleaner-offset-checkpoint
	cleaner     *LogCleaner

	stop      chan struct{}
	wg        sync.WaitGroup // background loops and directory removals
	closeErr  error
	closeOnce sync.Once
}

type catalog struct {
	byName map[string]*Topic
	byID   map[TopicID]*Topic
}

// topicRecord is a topic's entry in meta.db's "topics" bucket, JSON encoded.
type topicRecord struct {
	ID         string            `json:"id"` // hex
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
}

// OpenLogManager opens meta.db, loads every topic and recovers its logs, and starts
// the retention and flush goroutines. If the previous run did not shut down cleanly
// (no ".kafka_cleanshutdown" marker), every log's active segment is scanned and cut
// back to its last valid batch (see openLog); directories left by deleted topics are
// removed.
func OpenLogManager(opts LogManagerOptions) (*LogManager, error) {
	if opts.Dir == "" {
		return nil, errors.New("storage: LogManagerOptions.Dir is required")
	}
	defaults := opts.Defaults
	if defaults == (LogConfig{}) {
		defaults = DefaultLogConfig()
	}
	if err := defaults.validate(); err != nil {
		return nil, fmt.Errorf("storage: broker defaults: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	retentionEvery := opts.RetentionCheckInterval
	if retentionEvery <= 0 {
		retentionEvery = 5 * time.Minute
	}
	flushEvery := opts.FlushCheckInterval
	if flushEvery <= 0 {
		flushEvery = time.Second
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	meta, err := openMetaStore(filepath.Join(opts.Dir, "meta.db"), opts.ClusterID, opts.DeferNewMetaSync)
	if err != nil {
		return nil, err
	}
	m := &LogManager{
		dir:      opts.Dir,
		defaults: defaults,
		meta:     meta,
		logger:   logger,
		now:      now,
		onFlush:  opts.OnFlush,
		stop:     make(chan struct{}),
	}
	m.checkpoints = loadCleanerCheckpoints(filepath.Join(opts.Dir, cleanerCheckpointFile), logger)
	if err := m.load(); err != nil {
		meta.Close()
		return nil, err
	}
	expiration := opts.ProducerIDExpiration
	if expiration <= 0 {
		expiration = 24 * time.Hour
	}
	expireEvery := opts.ProducerIDExpirationCheckInterval
	if expireEvery <= 0 {
		expireEvery = 10 * time.Minute
	}
	cleanerCfg := DefaultCleanerConfig()
	if opts.Cleaner != nil {
		cleanerCfg = *opts.Cleaner
	}
	m.cleaner = newLogCleaner(cleanerCfg, m.allLogs, m.checkpoints, logger, now)
	m.cleaner.start()
	m.wg.Add(3)
	go m.loop(retentionEvery, func() { m.RunRetention() })
	go m.loop(flushEvery, m.flushDirtyLogs)
	go m.loop(expireEvery, func() { m.removeExpiredProducers(expiration) })
	return m, nil
}

// load reads the catalog and opens every log.
func (m *LogManager) load() error {
	marker := filepath.Join(m.dir, cleanShutdownFile)
	clean := false
	if _, err := os.Stat(marker); err == nil {
		clean = true
		// Gone before anything is written, so a crash from here on is seen as unclean.
		if err := os.Remove(marker); err != nil {
			return fmt.Errorf("storage: %w", err)
		}
		if err := syncDir(m.dir); err != nil {
			return fmt.Errorf("storage: %w", err)
		}
	}
	m.logger.Info("loading logs", "dir", m.dir, "clean_shutdown", clean)

	type loaded struct {
		name string
		rec  topicRecord
	}
	var recs []loaded
	err := m.meta.View(func(tx *bolt.Tx) error {
		return tx.Bucket(topicsBucket).ForEach(func(k, v []byte) error {
			var r topicRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("storage: topic %q in meta.db: %w", k, err)
			}
			recs = append(recs, loaded{string(k), r})
			return nil
		})
	})
	if err != nil {
		return err
	}

	cat := &catalog{byName: map[string]*Topic{}, byID: map[TopicID]*Topic{}}
	type job struct {
		t *Topic
		p int32
	}
	var jobs []job
	for _, r := range recs {
		var id TopicID
		if b, err := hex.DecodeString(r.rec.ID); err != nil || len(b) != len(id) || r.rec.Partitions < 1 {
			return fmt.Errorf("storage: topic %q in meta.db: malformed record", r.name)
		} else {
			copy(id[:], b)
		}
		cfg, err := m.defaults.Apply(r.rec.Configs)
		if err != nil {
			return fmt.Errorf("storage: topic %q: %w", r.name, err)
		}
		t := &Topic{Name: r.name, ID: id, Configs: r.rec.Configs, Config: cfg, Partitions: make([]*Log, r.rec.Partitions)}
		if t.Configs == nil {
			t.Configs = map[string]string{}
		}
		cat.byName[t.Name], cat.byID[id] = t, t
		for p := range r.rec.Partitions {
			jobs = append(jobs, job{t, p})
		}
	}
	dirs := m.cleanDataDir(cat)

	// Recover partitions in parallel (num.recovery.threads.per.data.dir):
	// it is I/O, mostly waits on the file system.
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		errs = make([]error, len(jobs))
	)
	for range min(len(jobs), max(logIOParallelism, runtime.GOMAXPROCS(0))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(jobs)); i = next.Add(1) - 1 {
				j := jobs[i]
				dir := dirUnknown
				if dirs[partitionDirName(j.t.Name, j.p)] {
					dir = dirListed
				}
				j.t.Partitions[j.p], errs[i] = m.openLog(j.t, j.p, clean, dir)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, t := range cat.byName {
			for _, l := range t.Partitions {
				if l != nil {
					l.close(false)
				}
			}
		}
		return err
	}
	m.catalog.Store(cat)
	m.logger.Info("loaded logs", "topics", len(cat.byName), "partitions", len(jobs))
	return nil
}

// MetadataTopic names the directory (MetadataTopic-0) of a cluster node's
// metadata quorum state, as Kafka's __cluster_metadata: not a topic of the
// catalog, and never one a client may create.
const MetadataTopic = "__cluster_metadata"

// cleanDataDir removes the directories of deleted topics ("-delete") and warns about
// partition directories the catalog does not know. Those are kept: they appear when a
// crash interrupts a topic deletion, but also when meta.db was lost, and data is not
// thrown away on a guess. Creating the topic again replaces them. It returns
// the directories left, so that loading need not look for each again.
func (m *LogManager) cleanDataDir(cat *catalog) map[string]bool {
	entries, err := os.ReadDir(m.dir)
	if err != nil {
		m.logger.Warn("listing data dir", "dir", m.dir, "err", err)
		return nil
	}
	dirs := make(map[string]bool, len(entries))
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		if strings.HasSuffix(name, deleteDirSuffix) {
			m.logger.Info("removing deleted partition directory", "dir", name)
			if err := os.RemoveAll(filepath.Join(m.dir, name)); err != nil {
				m.logger.Warn("removing deleted partition directory", "dir", name, "err", err)
			}
			continue
		}
		if topic, p, ok := parsePartitionDirName(name); ok && topic != MetadataTopic {
			if t := cat.byName[topic]; t == nil || p >= int32(len(t.Partitions)) {
				m.logger.Warn("partition directory not in the topic catalog, leaving it", "dir", name)
			}
		}
		dirs[name] = true
	}
	return dirs
}

// openLog opens a partition's log; dir is what the caller knows of its
// directory.
func (m *LogManager) openLog(t *Topic, partition int32, clean bool, dir partitionDir) (*Log, error) {
	id := t.ID
	lso, err := m.meta.logStartOffset(id, partition)
	if err != nil {
		return nil, err
	}
	l, err := openLog(logParams{
		dir:               filepath.Join(m.dir, partitionDirName(t.Name, partition)),
		topic:             t.Name,
		partition:         partition,
		config:            t.Config,
		cleanShutdown:     clean,
		dirState:          dir,
		cleanerCheckpoint: m.checkpoints.lookup(t.Name, partition),
		logStartOffset:    lso,
		persistLSO:        func(off int64) error { return m.meta.putLogStartOffset(id, partition, off) },
		now:               m.now,
		logger:            m.logger,
		onFlush:           m.onFlush,
	})
	if err != nil {
		return nil, fmt.Errorf("storage: open log %s: %w", partitionDirName(t.Name, partition), err)
	}
	l.onTruncate = func(end int64) {
		if err := m.checkpoints.lower(l, end); err != nil {
			m.logger.Warn("writing cleaner checkpoint", "log", l.name(), "err", err)
		}
	}
	return l, nil
}

// createLogs makes fresh logs for partitions [from, to) of t. A directory already in
// the way (left by an interrupted deletion) is moved aside and removed first.
func (m *LogManager) createLogs(t *Topic, from, to int32) ([]*Log, error) {
	logs := make([]*Log, to-from)
	errs := make([]error, to-from)
	// Creating a partition is a handful of file system operations that
	// mostly wait on the journal: a few in parallel overlap those waits.
	sem := make(chan struct{}, logIOParallelism)
	var wg sync.WaitGroup
	for p := from; p < to; p++ {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			dir := filepath.Join(m.dir, partitionDirName(t.Name, p))
			err := os.Mkdir(dir, 0o755)
			if errors.Is(err, os.ErrExist) {
				m.logger.Warn("replacing stale partition directory", "dir", dir)
				m.removeDirAsync(t.Name, p)
				err = os.Mkdir(dir, 0o755)
			}
			if err != nil {
				errs[p-from] = fmt.Errorf("storage: create partition directory: %w", err)
				return
			}
			logs[p-from], errs[p-from] = m.openLog(t, p, true, dirCreated)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, l := range logs {
			if l != nil {
				l.close(false)
				m.removeDirAsync(l.topic, l.partition)
			}
		}
		return nil, err
	}
	return logs, nil
}

// logIOParallelism bounds the partitions created or loaded at once.
const logIOParallelism = 8

// removeDirAsync renames a partition directory to "<topic>-<p>.<uid>-delete" and
// removes it in the background; a crash in between leaves it for the next start.
func (m *LogManager) removeDirAsync(topic string, partition int32) {
	var uid [16]byte
	rand.Read(uid[:])
	dir := filepath.Join(m.dir, partitionDirName(topic, partition))
	doomed := filepath.Join(m.dir, deleteDirName(topic, partition, hex.EncodeToString(uid[:])))
	if err := os.Rename(dir, doomed); err != nil {
		if !os.IsNotExist(err) {
			m.logger.Warn("renaming partition directory for deletion", "dir", dir, "err", err)
		}
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := os.RemoveAll(doomed); err != nil {
			m.logger.Warn("removing partition directory", "dir", doomed, "err", err)
		}
	}()
}

// Meta is the metadata store, for packages that keep their own buckets in meta.db.
func (m *LogManager) Meta() *MetaStore { return m.meta }

// Topic returns the current snapshot of a topic.
func (m *LogManager) Topic(name string) (*Topic, bool) {
	t, ok := m.catalog.Load().byName[name]
	return t, ok
}

// TopicByID returns the current snapshot of the topic with that id.
func (m *LogManager) TopicByID(id TopicID) (*Topic, bool) {
	t, ok := m.catalog.Load().byID[id]
	return t, ok
}

// Topics returns every topic, sorted by name.
func (m *LogManager) Topics() []*Topic {
	cat := m.catalog.Load()
	ts := slices.Collect(maps.Values(cat.byName))
	slices.SortFunc(ts, func(a, b *Topic) int { return strings.Compare(a.Name, b.Name) })
	return ts
}

// maxTopicNameLength is Kafka's Topic.MAX_NAME_LENGTH: 255 minus room for the
// partition suffix of directory names.
const maxTopicNameLength = 249

// TopicNameProblem applies Kafka's Topic.validate rules: it returns "" for a legal
// topic name, else Kafka's message saying why it is not.
func TopicNameProblem(name string) string {
	switch {
	case name == "":
		return "Topic name is illegal, it can't be empty"
	case name == "." || name == "..":
		return `Topic name cannot be "." or ".."`
	case len(name) > maxTopicNameLength:
		return fmt.Sprintf("Topic name is illegal, it can't be longer than %d characters, Topic name: %s", maxTopicNameLength, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Sprintf("Topic name %q is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'", name)
		}
	}
	return ""
}

func validateTopicName(name string) error {
	if problem := TopicNameProblem(name); problem != "" {
		return fmt.Errorf("%w: %s", ErrInvalidTopic, problem)
	}
	return nil
}

// unifyTopicName maps '.' to '_': Kafka refuses topics that differ only there, since
// their metric names would collide (Topic.hasCollision).
func unifyTopicName(name string) string { return strings.ReplaceAll(name, ".", "_") }

func newTopicID(taken map[TopicID]*Topic) TopicID {
	for {
		var id TopicID
		rand.Read(id[:])
		// Like Uuid.randomUuid: never zero, never the reserved metadata id (1), and
		// never rendering with a leading '-' (it would read as a CLI flag).
		if id != (TopicID{}) && id != (TopicID{15: 1}) && taken[id] == nil && !strings.HasPrefix(id.String(), "-") {
			return id
		}
	}
}

func (m *LogManager) putTopic(t *Topic) error {
	rec, err := json.Marshal(topicRecord{ID: hex.EncodeToString(t.ID[:]), Partitions: int32(len(t.Partitions)), Configs: t.Configs})
	if err != nil {
		return err
	}
	return m.meta.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(topicsBucket).Put([]byte(t.Name), rec)
	})
}

// publish installs a new catalog with t replacing (or adding) the topic of its name,
// or removing it when remove is set. Called with mu held.
func (m *LogManager) publish(t *Topic, remove bool) {
	old := m.catalog.Load()
	cat := &catalog{byName: maps.Clone(old.byName), byID: maps.Clone(old.byID)}
	if prev := cat.byName[t.Name]; prev != nil {
		delete(cat.byID, prev.ID)
	}
	delete(cat.byName, t.Name)
	if !remove {
		cat.byName[t.Name], cat.byID[t.ID] = t, t
	}
	m.catalog.Store(cat)
}

// CreateTopic creates a topic with partitions empty logs (Kafka CreateTopics).
// Errors: ErrInvalidTopic for an illegal name or one colliding with an existing
// topic modulo '.'/'_'; ErrTopicExists; ErrInvalidPartitions for partitions < 1;
// ErrInvalidConfig for a bad override (configs are kept as given, including keys
// storage does not act on).
func (m *LogManager) CreateTopic(name string, partitions int32, configs map[string]string) (*Topic, error) {
	return m.createTopic(name, nil, partitions, configs)
}

// CreateTopicWithID is CreateTopic with the id the cluster controller chose.
// It is idempotent, as a broker replaying the metadata log after a restart
// needs: a topic of that name and id is returned as it is, with no error; one
// of that name with another id is returned with an error wrapping
// ErrTopicExists. An id that is zero or reserved (Kafka's Uuid.ZERO_UUID,
// METADATA_TOPIC_ID) is ErrInvalidTopic, and so is one that another topic has.
func (m *LogManager) CreateTopicWithID(name string, id TopicID, partitions int32, configs map[string]string) (*Topic, error) {
	return m.createTopic(name, &id, partitions, configs)
}

// createTopic creates a topic with the given id, or a new random one if id is nil.
func (m *LogManager) createTopic(name string, id *TopicID, partitions int32, configs map[string]string) (*Topic, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed.Load() {
		return nil, ErrClosed
	}
	if err := validateTopicName(name); err != nil {
		return nil, err
	}
	cat := m.catalog.Load()
	if t, ok := cat.byName[name]; ok {
		if id != nil && t.ID == *id {
			return t, nil
		}
		if id != nil {
			return t, fmt.Errorf("%w: %q has id %s, not %s", ErrTopicExists, name, t.ID, *id)
		}
		return nil, fmt.Errorf("%w: %q", ErrTopicExists, name)
	}
	if id != nil {
		if *id == (TopicID{}) || *id == (TopicID{15: 1}) {
			return nil, fmt.Errorf("%w: reserved topic id %s", ErrInvalidTopic, *id)
		}
		if other, ok := cat.byID[*id]; ok {
			return nil, fmt.Errorf("%w: id %s belongs to topic %q", ErrInvalidTopic, *id, other.Name)
		}
	}
	for other := range cat.byName {
		if unifyTopicName(other) == unifyTopicName(name) {
			return nil, fmt.Errorf("%w: topic %q collides with existing topic %q", ErrInvalidTopic, name, other)
		}
	}
	if partitions < 1 {
		return nil, fmt.Errorf("%w: %d partitions", ErrInvalidPartitions, partitions)
	}
	cfg, err := m.defaults.Apply(configs)
	if err != nil {
		return nil, err
	}
	t := &Topic{Name: name, Configs: maps.Clone(configs), Config: cfg}
	if id != nil {
		t.ID = *id
	} else {
		t.ID = newTopicID(cat.byID)
	}
	if t.Configs == nil {
		t.Configs = map[string]string{}
	}
	if t.Partitions, err = m.createLogs(t, 0, partitions); err != nil {
		return nil, err
	}
	if err := m.putTopic(t); err != nil {
		for _, l := range t.Partitions {
			l.close(false)
			m.removeDirAsync(name, l.partition)
		}
		return nil, fmt.Errorf("storage: create topic %q: %w", name, err)
	}
	m.publish(t, false)
	m.logger.Info("created topic", "topic", name, "id", t.ID, "partitions", partitions)
	return t, nil
}

// DeleteTopic removes a topic (Kafka DeleteTopics): it is dropped from meta.db, its
// logs are closed (reads already handed out stay valid), and its directories are
// renamed to "-delete" and removed in the background.
func (m *LogManager) DeleteTopic(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed.Load() {
		return ErrClosed
	}
	t, ok := m.catalog.Load().byName[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	err := m.meta.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(topicsBucket).Delete([]byte(name)); err != nil {
			return err
		}
		return deleteLogStartOffsets(tx, t.ID)
	})
	if err != nil {
		return fmt.Errorf("storage: delete topic %q: %w", name, err)
	}
	m.publish(t, true)
	if err := m.checkpoints.remove(name); err != nil {
		m.logger.Warn("writing cleaner checkpoint", "err", err)
	}
	for _, l := range t.Partitions {
		if err := l.close(false); err != nil {
			m.logger.Warn("closing log of deleted topic", "log", l.name(), "err", err)
		}
		m.removeDirAsync(name, l.partition)
	}
	m.logger.Info("deleted topic", "topic", name, "id", t.ID)
	return nil
}

// CreatePartitions grows a topic to total partitions (Kafka CreatePartitions);
// ErrInvalidPartitions unless total is larger than the current count.
func (m *LogManager) CreatePartitions(name string, total int32) (*Topic, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed.Load() {
		return nil, ErrClosed
	}
	old, ok := m.catalog.Load().byName[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	cur := int32(len(old.Partitions))
	if total <= cur {
		return nil, fmt.Errorf("%w: topic %q has %d partitions, cannot change to %d", ErrInvalidPartitions, name, cur, total)
	}
	t := *old
	added, err := m.createLogs(&t, cur, total)
	if err != nil {
		return nil, err
	}
	t.Partitions = append(slices.Clip(old.Partitions), added...)
	if err := m.putTopic(&t); err != nil {
		for _, l := range added {
			l.close(false)
			m.removeDirAsync(name, l.partition)
		}
		return nil, fmt.Errorf("storage: create partitions of %q: %w", name, err)
	}
	m.publish(&t, false)
	m.logger.Info("created partitions", "topic", name, "partitions", total)
	return &t, nil
}

// SetTopicConfig replaces the topic's overrides wholesale (IncrementalAlterConfigs and
// AlterConfigs both end here with the full resulting set) and applies the new
// effective config to the live logs.
func (m *LogManager) SetTopicConfig(name string, configs map[string]string) (*Topic, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed.Load() {
		return nil, ErrClosed
	}
	old, ok := m.catalog.Load().byName[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	cfg, err := m.defaults.Apply(configs)
	if err != nil {
		return nil, err
	}
	t := *old
	t.Configs, t.Config = maps.Clone(configs), cfg
	if t.Configs == nil {
		t.Configs = map[string]string{}
	}
	if err := m.putTopic(&t); err != nil {
		return nil, fmt.Errorf("storage: set config of %q: %w", name, err)
	}
	for _, l := range t.Partitions {
		l.setConfig(cfg)
	}
	m.publish(&t, false)
	return &t, nil
}

// RunRetention applies retention to every log now (the retention goroutine calls it
// every RetentionCheckInterval; tests call it directly). Errors are logged.
func (m *LogManager) RunRetention() {
	for _, t := range m.Topics() {
		for _, l := range t.Partitions {
			if _, err := l.deleteRetentionBreachedSegments(); err != nil {
				m.logger.Error("retention", "log", l.name(), "err", err)
			}
		}
	}
}

// Cleaner is the LogCleaner compacting this manager's compacted topics.
func (m *LogManager) Cleaner() *LogCleaner { return m.cleaner }

// allLogs lists every open partition log.
func (m *LogManager) allLogs() []*Log {
	var out []*Log
	for _, t := range m.Topics() {
		out = append(out, t.Partitions...)
	}
	return out
}

func (m *LogManager) removeExpiredProducers(expiration time.Duration) {
	for _, t := range m.Topics() {
		for _, l := range t.Partitions {
			if n := l.removeExpiredProducers(expiration.Milliseconds()); n > 0 {
				m.logger.Debug("expired idle producers", "log", l.name(), "count", n)
			}
		}
	}
}

func (m *LogManager) flushDirtyLogs() {
	for _, t := range m.Topics() {
		for _, l := range t.Partitions {
			if err := l.flushIfDue(); err != nil {
				m.logger.Error("flush", "log", l.name(), "err", err)
			}
		}
	}
}

func (m *LogManager) loop(every time.Duration, fn func()) {
	defer m.wg.Done()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-tick.C:
			fn()
		}
	}
}

// Close stops the background goroutines, flushes and closes every log, writes the
// clean-shutdown marker (so the next start skips recovery scans) and closes meta.db.
// The marker is written only if every log closed cleanly. Idempotent.
func (m *LogManager) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed.Store(true)
		close(m.stop)
		m.mu.Unlock()
		m.cleaner.shutdown() // aborts a clean in progress: its output is deleted
		m.wg.Wait()

		var errs []error
		for _, t := range m.Topics() {
			for _, l := range t.Partitions {
				errs = append(errs, l.close(true))
			}
		}
		if err := errors.Join(errs...); err != nil {
			m.logger.Error("closing logs; next start will recover", "err", err)
		} else {
			errs = append(errs, writeFileAtomic(filepath.Join(m.dir, cleanShutdownFile), nil))
		}
		errs = append(errs, m.meta.Close())
		m.closeErr = errors.Join(errs...)
	})
	return m.closeErr
}
