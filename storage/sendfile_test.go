package storage

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func TestFileRegionSendTo(t *testing.T) {
	t.Parallel()
	cfg := testLogConfig()
	cfg.SegmentBytes = 64 << 20
	cfg.MaxMessageBytes = 1 << 20
	l := openTestLog(t, t.TempDir(), cfg, false, nil)
	// ~6 MiB of poorly compressible data: more than the socket buffers hold, so
	// sendfile hits EAGAIN and has to wait for the reader.
	val := make([]byte, 200<<10)
	for i := range val {
		val[i] = byte(i*7 + i>>8)
	}
	for i := range 30 {
		val[0] = byte(i)
		appendOK(t, l, newBatch(t, batchOpts{}, testRec{value: val, ts: int64(i)}), 0)
	}
	appendOK(t, l, newBatch(t, batchOpts{}, rec("marker", 1)), 0)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	for _, tc := range []struct {
		name   string
		offset int64
	}{{"whole log", 0}, {"from the middle", 17}} {
		info, err := l.Read(tc.offset, 64<<20, l.HighWatermark(), true)
		if err != nil {
			t.Fatal(err)
		}
		want, err := info.Records.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan []byte, 1)
		go func() {
			time.Sleep(20 * time.Millisecond) // let the sender fill the buffers first
			b, _ := io.ReadAll(client)
			got <- b
		}()
		n, err := info.Records.SendTo(server.(*net.TCPConn))
		server.Close()
		if err != nil || n != info.Records.Len() {
			t.Fatalf("%s: SendTo = %d, %v; want %d", tc.name, n, err, info.Records.Len())
		}
		if b := <-got; !bytes.Equal(b, want) {
			t.Fatalf("%s: received %d bytes, want %d identical", tc.name, len(b), len(want))
		}
		client.Close()
		info.Records.Release()
		if _, err := info.Records.SendTo(server.(*net.TCPConn)); !errors.Is(err, ErrClosed) {
			t.Fatalf("SendTo after Release: %v", err)
		}
	}
	var zero FileRegion
	if n, err := zero.SendTo(&net.TCPConn{}); n != 0 || err != nil {
		t.Fatalf("zero region: %d %v", n, err)
	}
}

func TestFileRegionReadAt(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), testLogConfig(), false, nil)
	appendOK(t, l, newBatch(t, batchOpts{}, rec("abc", 1)), 0)
	appendOK(t, l, newBatch(t, batchOpts{}, rec("def", 1)), 0)
	info, err := l.Read(1, 1000, 2, true)
	if err != nil {
		t.Fatal(err)
	}
	defer info.Records.Release()
	all, _ := info.Records.Bytes()
	p := make([]byte, 10)
	if n, err := info.Records.ReadAt(p, 5); n != 10 || err != nil || !bytes.Equal(p, all[5:15]) {
		t.Fatalf("ReadAt middle: %d %v", n, err)
	}
	if n, err := info.Records.ReadAt(p, int64(len(all)-4)); n != 4 || err != io.EOF {
		t.Fatalf("ReadAt tail: %d %v", n, err)
	}
	if n, err := info.Records.ReadAt(p, int64(len(all))); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt end: %d %v", n, err)
	}
	if h, err := ParseBatchHeader(all); err != nil || h.BaseOffset != 1 {
		t.Fatalf("region does not start at batch 1: %v", err)
	}
}
