package broker

import (
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol"
)

// Close stops every goroutine the server started, including those of
// connections still open and of a long-poll Fetch parked on a partition.
func TestCloseLeaksNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg, err := ParseConfig(map[string]string{"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": t.TempDir(), "http.listener": "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.logs.CreateTopic("t", 1, nil); err != nil {
		t.Fatal(err)
	}

	// One idle connection, one answered, one parked in a long poll.
	idle := dial(t, s)
	answered := dial(t, s)
	roundTrip(t, answered, kmsg.NewPtrApiVersionsRequest())
	parked := dial(t, s)
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 12
	fetch.MaxWaitMillis, fetch.MinBytes, fetch.MaxBytes, fetch.SessionEpoch = 60000, 1, 1<<20, -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	fetch.Topics = append(fetch.Topics, rt)
	send(t, parked, fetch)
	time.Sleep(50 * time.Millisecond) // let the fetch park; Close must end it either way

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []net.Conn{idle, answered, parked} {
		c.Close()
	}
	// A goroutine that has called wg.Done may not have exited yet; give the
	// runtime a bounded moment.
	for i := 0; i < 200 && runtime.NumGoroutine() > before; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func dial(t *testing.T, s *Server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func send(t *testing.T, c net.Conn, req kmsg.Request) {
	t.Helper()
	body := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	body = binary.BigEndian.AppendUint16(body, uint16(req.GetVersion()))
	body = binary.BigEndian.AppendUint32(body, 1)
	body = binary.BigEndian.AppendUint16(body, 0xFFFF) // null client id
	if req.IsFlexible() {
		body = append(body, 0)
	}
	body = req.AppendTo(body)
	if _, err := c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)); err != nil {
		t.Fatal(err)
	}
}

func roundTrip(t *testing.T, c net.Conn, req kmsg.Request) {
	t.Helper()
	send(t, c, req)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	size := make([]byte, 4)
	if _, err := io.ReadFull(c, size); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, binary.BigEndian.Uint32(size))); err != nil {
		t.Fatal(err)
	}
}

// Every key and version ApiVersions advertises reaches a handler whose
// response encodes at that version: the table cannot promise what dispatch
// does not serve.
func TestAdvertisedVersionsAreHandled(t *testing.T) {
	cfg, err := ParseConfig(map[string]string{"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": t.TempDir(), "http.listener": "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	nc, peer := net.Pipe()
	defer nc.Close()
	defer peer.Close()
	c := &conn{s: s, nc: nc, listener: s.listeners[0]}
	for _, k := range protocol.ApiVersionsKeys() {
		for _, v := range []int16{k.MinVersion, k.MaxVersion} {
			req := kmsg.RequestForKey(k.ApiKey)
			req.SetVersion(v)
			if pr, ok := req.(*kmsg.ProduceRequest); ok {
				pr.Acks = -1 // acks=0 is answered with no response at all
			}
			creq := &clientReq{conn: c, Request: protocol.Request{
				RequestHeader: protocol.RequestHeader{Key: k.ApiKey, Version: v},
				Body:          req,
			}}
			resp, err := s.handle(creq)
			if err != nil {
				t.Errorf("%s v%d: %v", kmsg.NameForKey(k.ApiKey), v, err)
				continue
			}
			if resp == nil || resp.Key() != k.ApiKey || resp.GetVersion() != v {
				t.Errorf("%s v%d: response %v", kmsg.NameForKey(k.ApiKey), v, resp)
				continue
			}
			if _, err := creq.rb.Build(1, resp); err != nil {
				t.Errorf("%s v%d: %v", kmsg.NameForKey(k.ApiKey), v, err)
			}
		}
	}
}
