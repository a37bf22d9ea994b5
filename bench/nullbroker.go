package main

// The null broker: a Kafka-protocol server that keeps produced batches in
// memory and does nothing else — no validation, no index, no disk, no
// groups, no transactions. It answers exactly what a kgo producer and
// consumer need (ApiVersions, Metadata, CreateTopics, DeleteTopics,
// InitProducerId, Produce, ListOffsets, Fetch with long poll), so what it
// reaches is the limit the client and the loopback set on this machine.
// kbroker/null is the fraction of that limit kbroker reaches.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// nullVersions are the API versions the null broker answers; the maxima
// are what kgo v1.22 uses, the minima what it needs.
var nullVersions = map[int16][2]int16{
	kmsg.Produce.Int16():        {3, 11},
	kmsg.Fetch.Int16():          {4, 16},
	kmsg.ListOffsets.Int16():    {1, 8},
	kmsg.Metadata.Int16():       {1, 12},
	kmsg.ApiVersions.Int16():    {0, 3},
	kmsg.CreateTopics.Int16():   {2, 7},
	kmsg.DeleteTopics.Int16():   {1, 6},
	kmsg.InitProducerID.Int16(): {0, 5},
}

type nullPartition struct {
	mu sync.Mutex
	// chunks hold the batches back to back, base offsets stamped, so a
	// fetch answers with a subslice of one chunk: no copy. A chunk never
	// grows past its capacity, so appends never move bytes a fetch holds.
	chunks [][]byte
	bases  []int64 // each batch's base offset
	chunk  []int   // its chunk
	pos    []int   // and its position there
	next   int64
}

const nullChunk = 4 << 20

type nullTopic struct {
	id         [16]byte
	partitions []*nullPartition
}

type nullBroker struct {
	host   string
	port   int32
	mu     sync.Mutex
	topics map[string]*nullTopic
	byID   map[[16]byte]string
	nextID byte
	// grew is closed and replaced on every append, waking long polls.
	grewMu sync.Mutex
	grew   chan struct{}
}

// serveNull is the hidden subcommand behind the "null" peer.
func serveNull(args []string) int {
	fs := flag.NewFlagSet("serve-null", flag.ExitOnError)
	port := fs.Int("port", 0, "port to listen on (127.0.0.1)")
	fs.Parse(args)
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "null:", err)
		return 1
	}
	b := &nullBroker{host: "127.0.0.1", port: int32(ln.Addr().(*net.TCPAddr).Port),
		topics: map[string]*nullTopic{}, byID: map[[16]byte]string{}, grew: make(chan struct{})}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go b.serve(c)
		}
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	<-sigs
	ln.Close()
	return 0
}

func (b *nullBroker) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 64<<10)
	var size [4]byte
	for {
		if _, err := io.ReadFull(r, size[:]); err != nil {
			return
		}
		frame := make([]byte, binary.BigEndian.Uint32(size[:]))
		if _, err := io.ReadFull(r, frame); err != nil {
			return
		}
		out, err := b.handle(frame)
		if err != nil {
			fmt.Fprintln(os.Stderr, "null:", err)
			return
		}
		if out != nil {
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	}
}

// handle decodes one request frame and returns the framed response (nil:
// none, for acks=0).
func (b *nullBroker) handle(frame []byte) ([]byte, error) {
	if len(frame) < 10 {
		return nil, errors.New("short frame")
	}
	key := int16(binary.BigEndian.Uint16(frame))
	version := int16(binary.BigEndian.Uint16(frame[2:]))
	corr := binary.BigEndian.Uint32(frame[4:])
	body := frame[8:]
	idLen := int16(binary.BigEndian.Uint16(body))
	body = body[2:]
	if idLen > 0 {
		if int(idLen) > len(body) {
			return nil, errors.New("short client id")
		}
		body = body[idLen:]
	}
	req := kmsg.RequestForKey(key)
	if req == nil {
		return nil, fmt.Errorf("unknown key %d", key)
	}
	req.SetVersion(version)
	if req.IsFlexible() {
		var err error
		if body, err = skipTags(body); err != nil {
			return nil, err
		}
	}
	if err := req.ReadFrom(body); err != nil && key != kmsg.ApiVersions.Int16() {
		return nil, fmt.Errorf("%s v%d: %w", kmsg.NameForKey(key), version, err)
	}
	var resp kmsg.Response
	switch r := req.(type) {
	case *kmsg.ApiVersionsRequest:
		resp = b.apiVersions(r)
	case *kmsg.MetadataRequest:
		resp = b.metadata(r)
	case *kmsg.CreateTopicsRequest:
		resp = b.createTopics(r)
	case *kmsg.DeleteTopicsRequest:
		resp = b.deleteTopics(r)
	case *kmsg.InitProducerIDRequest:
		ir := r.ResponseKind().(*kmsg.InitProducerIDResponse)
		ir.ProducerID, ir.ProducerEpoch = 1, 0
		resp = ir
	case *kmsg.ProduceRequest:
		resp = b.produce(r)
		if r.Acks == 0 {
			return nil, nil
		}
	case *kmsg.ListOffsetsRequest:
		resp = b.listOffsets(r)
	case *kmsg.FetchRequest:
		resp = b.fetch(r)
	default:
		return nil, fmt.Errorf("%s is not served by the null broker", kmsg.NameForKey(key))
	}
	if key == kmsg.ApiVersions.Int16() && version > 3 {
		version = 0 // UNSUPPORTED_VERSION goes back at v0, as Kafka does
	}
	resp.SetVersion(version)
	out := make([]byte, 8, 64)
	binary.BigEndian.PutUint32(out[4:], corr)
	if resp.IsFlexible() && key != kmsg.ApiVersions.Int16() { // ApiVersions answers with header v0
		out = append(out, 0)
	}
	out = resp.AppendTo(out)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out, nil
}

func skipTags(b []byte) ([]byte, error) {
	n, l := binary.Uvarint(b)
	if l <= 0 || n > 64 {
		return nil, errors.New("bad tags")
	}
	b = b[l:]
	for range n {
		_, l := binary.Uvarint(b)
		if l <= 0 {
			return nil, errors.New("bad tag")
		}
		b = b[l:]
		size, l := binary.Uvarint(b)
		if l <= 0 || uint64(len(b)-l) < size {
			return nil, errors.New("bad tag size")
		}
		b = b[l+int(size):]
	}
	return b, nil
}

func (b *nullBroker) apiVersions(r *kmsg.ApiVersionsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.ApiVersionsResponse)
	if r.Version > 3 {
		resp.ErrorCode = kerr.UnsupportedVersion.Code
	}
	for key, v := range nullVersions {
		resp.ApiKeys = append(resp.ApiKeys, kmsg.ApiVersionsResponseApiKey{ApiKey: key, MinVersion: v[0], MaxVersion: v[1]})
	}
	return resp
}

// topic returns the topic, creating it with n partitions if it is new.
func (b *nullBroker) topic(name string, n int32) *nullTopic {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t := b.topics[name]; t != nil {
		return t
	}
	b.nextID++
	t := &nullTopic{id: [16]byte{15: b.nextID}}
	for range n {
		t.partitions = append(t.partitions, &nullPartition{})
	}
	b.topics[name], b.byID[t.id] = t, name
	return t
}

func (b *nullBroker) lookup(name string, id [16]byte) (string, *nullTopic) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if name == "" {
		name = b.byID[id]
	}
	return name, b.topics[name]
}

func (b *nullBroker) partition(name string, id [16]byte, p int32) (string, *nullTopic, *nullPartition) {
	name, t := b.lookup(name, id)
	if t == nil || p < 0 || int(p) >= len(t.partitions) {
		return name, t, nil
	}
	return name, t, t.partitions[p]
}

func (b *nullBroker) metadata(r *kmsg.MetadataRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.MetadataResponse)
	resp.Brokers = []kmsg.MetadataResponseBroker{{NodeID: 0, Host: b.host, Port: b.port}}
	resp.ControllerID = 0
	var names []string
	if r.Topics == nil {
		b.mu.Lock()
		for n := range b.topics {
			names = append(names, n)
		}
		b.mu.Unlock()
	}
	for _, rt := range r.Topics {
		if rt.Topic != nil {
			names = append(names, *rt.Topic)
		}
	}
	for _, n := range names {
		_, t := b.lookup(n, [16]byte{})
		if t == nil && r.AllowAutoTopicCreation {
			t = b.topic(n, 1)
		}
		mt := kmsg.NewMetadataResponseTopic()
		mt.Topic = kmsg.StringPtr(n)
		if t == nil {
			mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
		} else {
			mt.TopicID = t.id
			for i := range t.partitions {
				mp := kmsg.NewMetadataResponseTopicPartition()
				mp.Partition = int32(i)
				mp.Replicas, mp.ISR = []int32{0}, []int32{0}
				mt.Partitions = append(mt.Partitions, mp)
			}
		}
		resp.Topics = append(resp.Topics, mt)
	}
	return resp
}

func (b *nullBroker) createTopics(r *kmsg.CreateTopicsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.CreateTopicsResponse)
	for _, rt := range r.Topics {
		n := max(rt.NumPartitions, 1)
		t := b.topic(rt.Topic, n)
		ct := kmsg.NewCreateTopicsResponseTopic()
		ct.Topic, ct.TopicID, ct.NumPartitions, ct.ReplicationFactor = rt.Topic, t.id, int32(len(t.partitions)), 1
		resp.Topics = append(resp.Topics, ct)
	}
	return resp
}

// deleteTopics drops topics and the records they hold; the bench's
// alternating rounds delete theirs so that memory does not grow round
// after round. Fetches already answered keep their subslices.
func (b *nullBroker) deleteTopics(r *kmsg.DeleteTopicsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.DeleteTopicsResponse)
	names := r.TopicNames
	for _, rt := range r.Topics { // v6 names topics here, by name or id
		name := ""
		if rt.Topic != nil {
			name = *rt.Topic
		}
		names = append(names, name)
		if name == "" {
			names[len(names)-1], _ = b.lookup("", rt.TopicID)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, name := range names {
		dt := kmsg.NewDeleteTopicsResponseTopic()
		dt.Topic = kmsg.StringPtr(name)
		if t := b.topics[name]; t != nil {
			dt.TopicID = t.id
			delete(b.topics, name)
			delete(b.byID, t.id)
		} else {
			dt.ErrorCode = kerr.UnknownTopicOrPartition.Code
		}
		resp.Topics = append(resp.Topics, dt)
	}
	return resp
}

func (b *nullBroker) produce(r *kmsg.ProduceRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.ProduceResponse)
	for _, rt := range r.Topics {
		pt := kmsg.NewProduceResponseTopic()
		pt.Topic, pt.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			pp := kmsg.NewProduceResponseTopicPartition()
			pp.Partition = rp.Partition
			_, _, p := b.partition(rt.Topic, rt.TopicID, rp.Partition)
			if p == nil || len(rp.Records) < 61 {
				pp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			} else {
				pp.BaseOffset = p.append(rp.Records)
				b.wake()
			}
			pt.Partitions = append(pt.Partitions, pp)
		}
		resp.Topics = append(resp.Topics, pt)
	}
	return resp
}

// append copies one batch to the end of the log.
func (p *nullPartition) append(batch []byte) int64 {
	records := int64(int32(binary.BigEndian.Uint32(batch[23:]))) + 1 // lastOffsetDelta + 1
	p.mu.Lock()
	base := p.next
	last := len(p.chunks) - 1
	if last < 0 || cap(p.chunks[last])-len(p.chunks[last]) < len(batch) {
		p.chunks = append(p.chunks, make([]byte, 0, max(nullChunk, len(batch))))
		last++
	}
	c := p.chunks[last]
	p.bases, p.chunk, p.pos = append(p.bases, base), append(p.chunk, last), append(p.pos, len(c))
	c = append(c, batch...)
	binary.BigEndian.PutUint64(c[len(c)-len(batch):], uint64(base))
	p.chunks[last] = c
	p.next += records
	p.mu.Unlock()
	return base
}

func (b *nullBroker) wake() {
	b.grewMu.Lock()
	close(b.grew)
	b.grew = make(chan struct{})
	b.grewMu.Unlock()
}

func (b *nullBroker) grown() <-chan struct{} {
	b.grewMu.Lock()
	defer b.grewMu.Unlock()
	return b.grew
}

func (b *nullBroker) listOffsets(r *kmsg.ListOffsetsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range r.Topics {
		lt := kmsg.NewListOffsetsResponseTopic()
		lt.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			lp := kmsg.NewListOffsetsResponseTopicPartition()
			lp.Partition, lp.Timestamp, lp.LeaderEpoch = rp.Partition, -1, 0
			_, _, p := b.partition(rt.Topic, [16]byte{}, rp.Partition)
			switch {
			case p == nil:
				lp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case rp.Timestamp == -2:
				lp.Offset = 0
			default:
				p.mu.Lock()
				lp.Offset = p.next
				p.mu.Unlock()
			}
			lt.Partitions = append(lt.Partitions, lp)
		}
		resp.Topics = append(resp.Topics, lt)
	}
	return resp
}

// fetch answers at once when any partition has data, else waits up to
// MaxWaitMillis for an append anywhere.
func (b *nullBroker) fetch(r *kmsg.FetchRequest) kmsg.Response {
	deadline := time.Now().Add(time.Duration(r.MaxWaitMillis) * time.Millisecond)
	for {
		grown := b.grown()
		resp, bytes := b.fetchOnce(r)
		left := time.Until(deadline)
		if bytes > 0 || r.MinBytes <= 0 || left <= 0 {
			return resp
		}
		select {
		case <-grown:
		case <-time.After(left):
			return resp
		}
	}
}

func (b *nullBroker) fetchOnce(r *kmsg.FetchRequest) (*kmsg.FetchResponse, int) {
	resp := r.ResponseKind().(*kmsg.FetchResponse)
	resp.SetVersion(r.Version)
	total := 0
	for _, rt := range r.Topics {
		ft := kmsg.NewFetchResponseTopic()
		ft.Topic, ft.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			fp := kmsg.NewFetchResponseTopicPartition()
			fp.Partition = rp.Partition
			_, _, p := b.partition(rt.Topic, rt.TopicID, rp.Partition)
			if p == nil {
				fp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				ft.Partitions = append(ft.Partitions, fp)
				continue
			}
			p.mu.Lock()
			fp.HighWatermark, fp.LastStableOffset, fp.LogStartOffset = p.next, p.next, 0
			// The first batch holding FetchOffset, then whole batches up
			// to PartitionMaxBytes (at least one).
			var recs []byte
			if i := searchBases(p.bases, rp.FetchOffset); rp.FetchOffset < p.next && i < len(p.bases) {
				// Whole batches of one chunk, at least one, up to
				// PartitionMaxBytes.
				ci := p.chunk[i]
				c := p.chunks[ci]
				start, end := p.pos[i], p.pos[i]
				for ; i < len(p.bases) && p.chunk[i] == ci; i++ {
					stop := len(c)
					if i+1 < len(p.pos) && p.chunk[i+1] == p.chunk[i] {
						stop = p.pos[i+1]
					}
					if end > start && stop-start > int(rp.PartitionMaxBytes) {
						break
					}
					end = stop
				}
				recs = c[start:end:end]
			}
			p.mu.Unlock()
			fp.RecordBatches = recs
			total += len(recs)
			ft.Partitions = append(ft.Partitions, fp)
		}
		resp.Topics = append(resp.Topics, ft)
	}
	return resp, total
}

// searchBases returns the index of the batch holding offset: the last base
// at or below it.
func searchBases(bases []int64, offset int64) int {
	lo, hi := 0, len(bases)
	for lo < hi {
		m := (lo + hi) / 2
		if bases[m] <= offset {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return max(lo-1, 0)
}
