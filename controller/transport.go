package controller

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// The controller listener carries two protocols. A raft connection opens
// with raftMarker; anything else is the Kafka protocol. A Kafka request
// frame opens with the high byte of its positive int32 size, so it is
// always below 0x80 and can never be taken for the marker.
const raftMarker byte = 0xFF

// firstByteTimeout bounds how long an accepted connection may stay silent
// before it is dropped, so idle connections cannot pin goroutines.
const firstByteTimeout = 10 * time.Second

// mux splits the controller listener between raft and the Kafka protocol.
type mux struct {
	ln      net.Listener
	addr    voterAddr
	raftCh  chan net.Conn
	kafka   func(net.Conn, *bufio.Reader)
	closed  chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	connsMu sync.Mutex
	conns   map[net.Conn]struct{} // open Kafka connections, closed on close
}

// voterAddr is this node's voter address as the voters list spells it, so
// that raft's idea of the local address matches the configuration.
type voterAddr string

func (a voterAddr) Network() string { return "tcp" }
func (a voterAddr) String() string  { return string(a) }

func newMux(ln net.Listener, addr string, kafka func(net.Conn, *bufio.Reader)) *mux {
	return &mux{ln: ln, addr: voterAddr(addr), raftCh: make(chan net.Conn), kafka: kafka,
		closed: make(chan struct{}), conns: map[net.Conn]struct{}{}}
}

func (m *mux) serve() {
	defer m.wg.Done()
	for {
		nc, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.route(nc)
		}()
	}
}

func (m *mux) route(nc net.Conn) {
	_ = nc.SetReadDeadline(time.Now().Add(firstByteTimeout))
	r := bufio.NewReaderSize(nc, 16<<10)
	first, err := r.Peek(1)
	if err != nil {
		nc.Close()
		return
	}
	_ = nc.SetReadDeadline(time.Time{})
	if first[0] == raftMarker {
		_, _ = r.Discard(1)
		select {
		case m.raftCh <- &bufferedConn{Conn: nc, r: r}:
		case <-m.closed:
			nc.Close()
		}
		return
	}
	m.connsMu.Lock()
	select {
	case <-m.closed:
		m.connsMu.Unlock()
		nc.Close()
		return
	default:
	}
	m.conns[nc] = struct{}{}
	m.connsMu.Unlock()
	defer func() {
		m.connsMu.Lock()
		delete(m.conns, nc)
		m.connsMu.Unlock()
		nc.Close()
	}()
	m.kafka(nc, r)
}

// close stops accepting, closes the listener and every Kafka connection,
// and waits for their goroutines. Raft closes its own connections.
func (m *mux) close() {
	m.once.Do(func() {
		close(m.closed)
		m.ln.Close()
		m.connsMu.Lock()
		for nc := range m.conns {
			nc.Close()
		}
		m.connsMu.Unlock()
	})
	m.wg.Wait()
}

// bufferedConn is a conn whose first bytes were read into r.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// raftLayer is the raft.StreamLayer over the mux.
type raftLayer struct{ m *mux }

var _ raft.StreamLayer = raftLayer{}

func (l raftLayer) Accept() (net.Conn, error) {
	select {
	case nc := <-l.m.raftCh:
		return nc, nil
	case <-l.m.closed:
		return nil, net.ErrClosed
	}
}

func (l raftLayer) Close() error { return nil } // the mux owns the listener

func (l raftLayer) Addr() net.Addr { return l.m.addr }

func (l raftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, err
	}
	_ = nc.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := nc.Write([]byte{raftMarker}); err != nil {
		nc.Close()
		return nil, err
	}
	_ = nc.SetWriteDeadline(time.Time{})
	return nc, nil
}

// newHCLogger routes raft's hclog output to slog at warn and above: raft
// logs every election and heartbeat failure at info, which is noise for a
// broker's log, while its warnings and errors are worth keeping.
func newHCLogger(l *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:            "raft",
		Level:           hclog.Warn,
		Output:          slogWriter{l},
		DisableTime:     true,
		IncludeLocation: false,
	})
}

// slogWriter turns hclog's formatted lines ("[WARN]  raft: msg: k=v") into
// slog records at the matching level.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelWarn
	if strings.HasPrefix(line, "[ERROR]") {
		level = slog.LevelError
	}
	if i := strings.Index(line, "]"); i >= 0 && strings.HasPrefix(line, "[") {
		line = strings.TrimSpace(line[i+1:])
	}
	w.l.Log(context.Background(), level, line)
	return len(p), nil
}

var _ io.Writer = slogWriter{}
