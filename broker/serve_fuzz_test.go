package broker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kbroker/kbroker/protocol"
)

// FuzzServeRequest sends one request frame to a live broker, as a client on
// 127.0.0.1 would, and checks what Kafka clients rely on: the broker answers
// with a response that decodes as the one to that request (right correlation
// id, key and version), or closes the connection, or is still waiting (a
// long-poll Fetch, a JoinGroup); and it goes on serving other connections.
// A handler panic kills the broker with the fuzz worker, so it fails here.
//
// The seeds are the frames real clients send: kgo producers (idempotent and
// transactional), a group consumer, and kadm admin calls, recorded at the
// socket. Mutating those reaches the handlers' deep paths, which random
// bytes would not get past the decoder.
func FuzzServeRequest(f *testing.F) {
	s := startFuzzServer(f, nil)
	for _, frame := range recordClientFrames(f, s.Addr()) {
		f.Add(frame)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		req, parseErr := protocol.ParseRequest(frame)
		if parseErr == nil && tooCostly(req) {
			t.Skip("adds more partitions than a fuzz run should create")
		}
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Half a second is enough for any request that does not wait by
		// design; those that do are left parked. An acks=0 produce gets no
		// response at all.
		wait := 500 * time.Millisecond
		if p, ok := req.Body.(*kmsg.ProduceRequest); ok && p.Acks == 0 {
			wait = 0
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(frame))), frame...)); err != nil {
			return // closed while we wrote: an unframeable stream
		}
		c.SetReadDeadline(time.Now().Add(wait))
		resp, err := readFrame(c)
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout(): // waiting, or acks=0
		case err != nil: // closed: unparseable, or a failed acks=0 produce
		case parseErr != nil:
			t.Fatalf("the broker answered a request it cannot parse (%v)", parseErr)
		default:
			checkResponse(t, req, resp)
		}
		assertServing(t, s.Addr())
	})
}

// FuzzServeConnection sends a whole connection's bytes, as a client wrote
// them, to a live broker's PLAINTEXT or SASL_PLAINTEXT listener (the first
// input byte chooses), and checks the responses in order as
// FuzzServeRequest checks one, until the broker closes the connection or
// waits. The seeds are the connections of kgo clients that log in with
// PLAIN and with SCRAM-SHA-256, then produce and consume, and of one on the
// plaintext listener. Mutating them walks the SASL state machine (what is
// admitted before and after authentication, handshake versions, bad
// tokens), pipelined requests, and frame sizes that do not match.
func FuzzServeConnection(f *testing.F) {
	s := startFuzzServer(f, map[string]string{
		"listeners":               "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
		"sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256",
		"listener.name.sasl_plaintext.plain.sasl.jaas.config": `org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";`,
		"kbroker.scram.bootstrap.users":                       "SCRAM-SHA-256=[name=alice,password=alice-secret,iterations=4096]",
		"connection.failed.authentication.delay.ms":           "0",
	})
	for _, seed := range recordConnections(f, s) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		if len(input) == 0 {
			return
		}
		listener, stream := "PLAINTEXT", input[1:]
		if input[0]%2 == 1 {
			listener = "SASL_PLAINTEXT"
		}
		frames, _ := splitFrames(stream)
		for _, frame := range frames {
			if req, err := protocol.ParseRequest(frame); err == nil && tooCostly(req) {
				t.Skip("adds more partitions than a fuzz run should create")
			}
		}
		c, err := net.Dial("tcp", s.ListenerAddr(listener))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		// Written while the responses are read, so that neither side
		// blocks on a full socket buffer.
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			c.Write(stream)
		}()
		for _, frame := range frames {
			req, err := protocol.ParseRequest(frame)
			if err != nil {
				break // the broker closes the connection
			}
			if p, ok := req.Body.(*kmsg.ProduceRequest); ok && p.Acks == 0 {
				continue
			}
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			resp, err := readFrame(c)
			if err != nil {
				break // closed (refused before authentication, or a bad frame), or waiting
			}
			checkResponse(t, req, resp)
			if req.Key == protocol.SaslHandshakeKey && req.Version == 0 {
				break // raw SASL tokens follow, not requests
			}
		}
		c.Close()
		<-wrote
		assertServing(t, s.Addr())
	})
}

// recordConnections returns the connections of kgo clients that produce
// and consume two records: one on each SASL mechanism, one in plaintext.
// Each seed's first byte names its listener as FuzzServeConnection reads
// it.
func recordConnections(f *testing.F, s *Server) [][]byte {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := kgo.NewClient(kgo.SeedBrokers(s.Addr()))
	if err != nil {
		f.Fatal(err)
	}
	defer admin.Close()
	if _, err := kadm.NewClient(admin).CreateTopic(ctx, 1, 1, nil, "conn"); err != nil {
		f.Fatal(err)
	}
	var seeds [][]byte
	for _, c := range []struct {
		listener byte
		opts     []kgo.Opt
	}{
		{0, nil},
		{1, []kgo.Opt{kgo.SASL(plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism())}},
		{1, []kgo.Opt{kgo.SASL(scram.Auth{User: "alice", Pass: "alice-secret"}.AsSha256Mechanism())}},
	} {
		addr := s.ListenerAddr("PLAINTEXT")
		if c.listener == 1 {
			addr = s.ListenerAddr("SASL_PLAINTEXT")
		}
		rec := &clientRecorder{}
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.Dialer(rec.dial), kgo.FetchMaxWait(100 * time.Millisecond),
			kgo.DefaultProduceTopic("conn"), kgo.ConsumeTopics("conn"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, c.opts...)...)
		if err != nil {
			f.Fatal(err)
		}
		for i := range 2 {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
				f.Fatal(err)
			}
		}
		for got := 0; got < 2 && ctx.Err() == nil; {
			got += cl.PollFetches(ctx).NumRecords()
		}
		cl.Close()
		for _, conn := range rec.connections() {
			seeds = append(seeds, append([]byte{c.listener}, conn...))
		}
	}
	return seeds
}

// startFuzzServer starts a one-node broker on a temporary directory, with
// props over a plaintext listener's.
func startFuzzServer(f *testing.F, props map[string]string) *Server {
	all := map[string]string{
		"listeners": "PLAINTEXT://127.0.0.1:0", "http.listener": "127.0.0.1:0", "log.dirs": f.TempDir(),
		"group.initial.rebalance.delay.ms": "0", "num.partitions": "2",
	}
	for k, v := range props {
		all[k] = v
	}
	cfg, err := ParseConfig(all)
	if err != nil {
		f.Fatal(err)
	}
	s, err := Start(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	return s
}

// tooCostly reports CreateTopics and CreatePartitions requests adding more
// than 64 partitions: each one is a directory and an open file, and a fuzz
// run would exhaust either long before it found anything. The bound itself
// is tested in integration.
func tooCostly(req protocol.Request) bool {
	var total int64
	switch body := req.Body.(type) {
	case *kmsg.CreateTopicsRequest:
		for _, t := range body.Topics {
			total += max(int64(t.NumPartitions), int64(len(t.ReplicaAssignment)))
		}
	case *kmsg.CreatePartitionsRequest:
		for _, t := range body.Topics {
			total += int64(t.Count)
		}
	}
	return total > 64
}

// readFrame reads one size-prefixed response frame.
func readFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > 256<<20 {
		return nil, errors.New("response size over 256 MiB")
	}
	buf := make([]byte, n)
	_, err := io.ReadFull(r, buf)
	return buf, err
}

// checkResponse decodes resp as the response to req. An ApiVersions
// request of a version the broker does not know is answered at v0
// (KIP-511).
func checkResponse(t *testing.T, req protocol.Request, resp []byte) {
	kr := kmsg.ResponseForKey(req.Key)
	if kr == nil {
		t.Fatalf("the broker answered unknown key %d", req.Key)
	}
	kr.SetVersion(req.Version)
	if req.Body == nil && req.Key == protocol.ApiVersionsKey {
		kr.SetVersion(0)
	}
	if err := protocol.DecodeResponse(resp, req.CorrelationID, kr); err != nil {
		t.Fatalf("%s v%d response: %v", kmsg.NameForKey(req.Key), req.Version, err)
	}
}

// assertServing fails unless a new connection gets an ApiVersions answer.
func assertServing(t *testing.T, addr string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := protocol.Dial(ctx, addr, "fuzz-check")
	if err != nil {
		t.Fatalf("the broker stopped accepting: %v", err)
	}
	defer c.Close()
	if _, err := c.Request(ctx, kmsg.NewPtrApiVersionsRequest()); err != nil {
		t.Fatalf("the broker stopped answering: %v", err)
	}
}

// recordClientFrames runs real clients against addr and returns every
// request frame they wrote (size prefix removed).
func recordClientFrames(f *testing.F, addr string) [][]byte {
	rec := &clientRecorder{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := func(extra ...kgo.Opt) []kgo.Opt {
		return append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.Dialer(rec.dial), kgo.FetchMaxWait(100 * time.Millisecond)}, extra...)
	}
	must := func(err error) {
		f.Helper()
		if err != nil {
			f.Fatal(err)
		}
	}
	newClient := func(extra ...kgo.Opt) *kgo.Client {
		cl, err := kgo.NewClient(opts(extra...)...)
		must(err)
		return cl
	}

	admin := newClient()
	defer admin.Close()
	adm := kadm.NewClient(admin)
	const topic = "fuzz"
	_, err := adm.CreateTopic(ctx, 2, 1, map[string]*string{"cleanup.policy": kmsg.StringPtr("compact,delete")}, topic)
	must(err)

	// Idempotent produce with headers, keys and a compression codec.
	prod := newClient(kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	for i := range 4 {
		r := &kgo.Record{Topic: topic, Key: []byte{byte(i)}, Value: []byte("value"), Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}}
		must(prod.ProduceSync(ctx, r).FirstErr())
	}
	prod.Close()

	// A classic group member in a transaction that also commits the group's
	// offsets (exactly-once): join, sync, fetch, produce, TxnOffsetCommit,
	// EndTxn, leave.
	sess, err := kgo.NewGroupTransactSession(opts(kgo.TransactionalID("fuzz-txn"), kgo.ConsumerGroup("fuzz-group"),
		kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	must(err)
	for got := 0; got < 4 && ctx.Err() == nil; {
		got += sess.PollFetches(ctx).NumRecords()
	}
	must(sess.Begin())
	must(sess.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte("in txn")}).FirstErr())
	_, err = sess.End(ctx, kgo.TryCommit)
	must(err)
	sess.Close()

	// A KIP-848 member.
	next := newClient(kgo.ConsumerGroup("fuzz-group-848"), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for got := 0; got < 1 && ctx.Err() == nil; {
		got += next.PollFetches(ctx).NumRecords()
	}
	next.Close()

	// Admin calls over topics, configs, groups, ACLs, records and
	// transactions. Their results do not matter, only their frames.
	adm.Metadata(ctx, topic)
	adm.DescribeTopicConfigs(ctx, topic)
	adm.DescribeBrokerConfigs(ctx)
	adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kmsg.StringPtr("3600000")}}, topic)
	adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "segment.bytes", Value: kmsg.StringPtr("1048576")}}, topic)
	adm.CreatePartitions(ctx, 1, topic)
	adm.ListStartOffsets(ctx, topic)
	adm.ListEndOffsets(ctx, topic)
	adm.ListOffsetsAfterMilli(ctx, 0, topic)
	adm.OffsetForLeaderEpoch(ctx, kadm.OffsetForLeaderEpochRequest{})
	adm.DescribeGroups(ctx, "fuzz-group")
	adm.DescribeConsumerGroups(ctx, "fuzz-group-848")
	adm.ListGroups(ctx)
	adm.FetchOffsets(ctx, "fuzz-group")
	one := kadm.Offsets{}
	one.Add(kadm.Offset{Topic: topic, Partition: 1, At: 1})
	adm.CommitOffsets(ctx, "fuzz-admin-group", one)
	adm.DeleteOffsets(ctx, "fuzz-admin-group", kadm.TopicsSet{topic: {1: {}}})
	adm.DeleteGroups(ctx, "fuzz-admin-group")
	adm.DeleteRecords(ctx, one)
	acls := kadm.NewACLs().Allow("User:fuzz").AllowHosts("*").Topics(topic).Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral)
	adm.CreateACLs(ctx, acls)
	adm.DescribeACLs(ctx, acls)
	adm.DeleteACLs(ctx, acls)
	kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, admin)
	dtp := kmsg.NewPtrDescribeTopicPartitionsRequest()
	dtp.Topics = []kmsg.DescribeTopicPartitionsRequestTopic{{Topic: topic}}
	dtp.RequestWith(ctx, admin)
	adm.DescribeAllLogDirs(ctx, nil)
	adm.ListTransactions(ctx, nil, nil)
	adm.DescribeTransactions(ctx, "fuzz-txn")
	adm.DescribeProducers(ctx, kadm.TopicsSet{topic: {0: {}}})
	adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{topic: {0: {}}})
	adm.ListPartitionReassignments(ctx, kadm.TopicsSet{topic: {0: {}}})
	reassign := kadm.AlterPartitionAssignmentsReq{}
	reassign.Assign(topic, 0, []int32{0})
	adm.AlterPartitionAssignments(ctx, reassign)
	adm.DescribeUserSCRAMs(ctx)
	adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "fuzz", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "pw"}})
	adm.DeleteTopics(ctx, "fuzz-missing")

	// Every other API the broker serves gets a default request of its own
	// (ConsumerGroupHeartbeat, AddPartitionsToTxn, SaslHandshake...), so
	// each key has a seed.
	seen := make(map[int16]bool)
	for _, fr := range rec.frames() {
		if req, err := protocol.ParseRequest(fr); err == nil {
			seen[req.Key] = true
		}
	}
	for _, k := range protocol.ApiVersionsKeys() {
		if !seen[k.ApiKey] {
			req := kmsg.RequestForKey(k.ApiKey)
			req.SetVersion(k.MaxVersion)
			admin.Request(ctx, req)
		}
	}

	frames := rec.frames()
	if len(frames) < 40 {
		f.Fatalf("recorded %d request frames, want the whole workload's", len(frames))
	}
	f.Logf("recorded %d request frames", len(frames))
	return frames
}

// clientRecorder keeps the bytes real clients write, per connection.
type clientRecorder struct {
	mu      sync.Mutex
	streams []*bytes.Buffer
}

// dial is a kgo.Dialer whose connections are recorded.
func (r *clientRecorder) dial(ctx context.Context, network, host string) (net.Conn, error) {
	nc, err := (&net.Dialer{}).DialContext(ctx, network, host)
	if err != nil {
		return nil, err
	}
	buf := new(bytes.Buffer)
	r.mu.Lock()
	r.streams = append(r.streams, buf)
	r.mu.Unlock()
	return &recordingConn{Conn: nc, rec: r, buf: buf}, nil
}

// connections returns a copy of each connection's bytes.
func (r *clientRecorder) connections() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]byte
	for _, b := range r.streams {
		out = append(out, bytes.Clone(b.Bytes()))
	}
	return out
}

// frames returns every request frame written (size prefix removed).
func (r *clientRecorder) frames() [][]byte {
	var out [][]byte
	for _, stream := range r.connections() {
		frames, _ := splitFrames(stream)
		out = append(out, frames...)
	}
	return out
}

// splitFrames cuts a stream into its size-prefixed frames, returning what
// is left over.
func splitFrames(stream []byte) (frames [][]byte, rest []byte) {
	for len(stream) >= 4 {
		n := int64(binary.BigEndian.Uint32(stream))
		if int64(len(stream)) < 4+n {
			break
		}
		frames = append(frames, stream[4:4+n])
		stream = stream[4+n:]
	}
	return frames, stream
}

type recordingConn struct {
	net.Conn
	rec *clientRecorder
	buf *bytes.Buffer
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.rec.mu.Lock()
	c.buf.Write(p)
	c.rec.mu.Unlock()
	return c.Conn.Write(p)
}
