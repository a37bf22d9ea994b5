package controller

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol"
)

// TestControllerListener checks the Kafka side of the controller listener:
// ApiVersions lists the controller table, a follower answers
// NOT_CONTROLLER, and a malformed frame closes the connection.
func TestControllerListener(t *testing.T) {
	tc := startCluster(t, 3)
	ctx := testCtx(t)
	fi := tc.follower()
	addr := tc.voters[fi].Addr()
	cl, err := protocol.Dial(ctx, addr, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	av := kmsg.NewPtrApiVersionsRequest()
	av.Version = 3
	resp, err := cl.Request(ctx, av)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.(*kmsg.ApiVersionsResponse).ApiKeys); n != len(controllerAPIs) {
		t.Fatalf("%d api keys", n)
	}
	hb := kmsg.NewPtrBrokerHeartbeatRequest()
	hb.BrokerID, hb.BrokerEpoch = 1, 1
	resp, err = cl.Request(ctx, hb)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.(*kmsg.BrokerHeartbeatResponse).ErrorCode; code != kerr.NotController.Code {
		t.Fatalf("follower answered %d", code)
	}
	// An API the controller does not serve closes the connection.
	if _, err := cl.Request(ctx, kmsg.NewPtrMetadataRequest()); err == nil {
		t.Fatal("Metadata served on the controller listener")
	}

	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_, _ = nc.Write([]byte{0, 0, 0, 12, 0, 63, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 1, 2})
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := nc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("malformed frame: read %d, %v; want EOF", n, err)
	}
}

// FuzzParseControllerRequest feeds arbitrary frames to the controller
// listener's request parser and answers what parses with the handler of a
// non-active controller. Invariants: never panics; a parsed request is
// answered with a response of its own key.
//
// Inputs with a run of three or more bytes >= 0x80 are skipped: such a run
// can be a uvarint above 2^20, and kmsg v1.15's tag loops iterate a
// declared tag count even past the end of the input, so a claimed 2^32
// tags costs ~20s of CPU inside kmsg (a known limitation, not a panic).
func FuzzParseControllerRequest(f *testing.F) {
	c := &Controller{fsm: newFSM(nil, nil, nil)}
	frame := func(req kmsg.Request) []byte {
		b := kmsg.NewRequestFormatter(kmsg.FormatterClientID("f")).AppendRequest(nil, req, 7)
		return b[4:]
	}
	hb := kmsg.NewPtrBrokerHeartbeatRequest()
	f.Add(frame(hb))
	ct := kmsg.NewPtrCreateTopicsRequest()
	ct.Version = 7
	ct.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: "t", NumPartitions: 1, ReplicationFactor: 1}}
	f.Add(frame(ct))
	ap := kmsg.NewPtrAlterPartitionRequest()
	ap.Version = 3
	f.Add(frame(ap))
	av := kmsg.NewPtrApiVersionsRequest()
	av.Version = 9
	f.Add(frame(av))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		run := 0
		for _, x := range b {
			if x >= 0x80 {
				if run++; run >= 3 {
					return
				}
			} else {
				run = 0
			}
		}
		_, req, err := parseControllerRequest(b)
		if err != nil {
			return
		}
		resp := c.handle(req)
		if resp.Key() != req.Key() {
			t.Fatalf("answered key %d with %d", req.Key(), resp.Key())
		}
		_ = resp.AppendTo(nil)
	})
}
