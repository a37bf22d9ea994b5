package broker

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol"
)

// conn is one client connection (Kafka's KafkaChannel with its Processor).
type conn struct {
	s        *Server
	nc       net.Conn
	listener *boundListener
	// principal is who the connection authenticated as; requests are
	// authorized against it.
	principal kafkaPrincipal
}

func newConn(s *Server, nc net.Conn, l *boundListener) *conn {
	return &conn{s: s, nc: nc, listener: l, principal: anonymousPrincipal}
}

// clientReq is a request in flight with what its handler needs.
type clientReq struct {
	conn *conn
	protocol.Request
	// rb collects file regions for responses that splice in records.
	rb protocol.ResponseBuilder
	// coord is the group and transaction coordinators the request sees,
	// loaded once when it is dispatched; nil on a cluster node that is not
	// the coordinator.
	coord *coordinators
}

// errCloseConn makes serve close the connection after a request, e.g. an
// acks=0 produce that failed (Kafka closes so the client refreshes
// metadata).
var errCloseConn = errors.New("broker: close connection")

// framePool recycles request frame buffers. kmsg decodes bytes fields by
// aliasing the frame, so a frame goes back to the pool only after a request
// whose handler keeps nothing of it (see recyclable).
var framePool sync.Pool // *[]byte

// maxPooledFrame keeps rare huge frames out of the pool.
const maxPooledFrame = 8 << 20

// recyclable lists the APIs whose handlers copy what they keep (strings are
// copied by kmsg; record bytes are written to the log and dropped), so
// their frame can be reused. Produce is the one that matters: its frames
// are large and frequent.
func recyclable(key int16) bool {
	switch key {
	case protocol.ProduceKey, protocol.FetchKey, protocol.ListOffsetsKey, protocol.MetadataKey, protocol.ApiVersionsKey:
		return true
	}
	return false
}

// serve handles the connection's requests one at a time, writing each
// response before reading the next request, as Kafka mutes a channel while
// a request is in flight. Responses therefore leave in request order, and a
// client that stops reading responses stops its own requests, nobody else's.
func (c *conn) serve() {
	defer c.s.removeConn(c)
	defer c.nc.Close()
	r := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		bufp, _ := framePool.Get().(*[]byte)
		if bufp == nil {
			bufp = new([]byte)
		}
		frame, err := protocol.ReadFrame(r, c.s.cfg.SocketRequestMaxBytes, *bufp)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.s.logger.Debug("closing connection: unreadable frame", "remote", c.nc.RemoteAddr(), "err", err)
			}
			return
		}
		req, err := protocol.ParseRequest(frame)
		if err != nil {
			c.s.logger.Debug("closing connection: unparseable request", "remote", c.nc.RemoteAddr(),
				"key", req.Key, "version", req.Version, "err", err)
			return
		}
		if !c.handle(req) {
			return
		}
		if recyclable(req.Key) && cap(frame) <= maxPooledFrame {
			*bufp = frame[:0]
			framePool.Put(bufp)
		}
	}
}

// handle runs one request and writes its response; false closes the
// connection.
func (c *conn) handle(req protocol.Request) bool {
	creq := &clientReq{conn: c, Request: req}
	am := c.s.metrics.forAPI(req.Key, req.Version)
	began := time.Now()
	resp, err := c.s.handle(creq)
	handled := time.Now()
	if err != nil {
		creq.rb.Release()
		if !errors.Is(err, errCloseConn) {
			c.s.logger.Warn("closing connection: request failed", "remote", c.nc.RemoteAddr(),
				"api", kmsg.NameForKey(req.Key), "version", req.Version, "err", err)
		}
		return false
	}
	if resp == nil { // acks=0 produce: no response
		c.s.metrics.observeRequest(am, nil, handled.Sub(began), 0)
		return true
	}
	out, err := creq.rb.Build(req.CorrelationID, resp)
	if err != nil {
		creq.rb.Release()
		c.s.logger.Error("closing connection: response does not encode", "api", kmsg.NameForKey(req.Key), "err", err)
		return false
	}
	_, err = out.WriteTo(c.nc)
	c.s.metrics.observeRequest(am, resp, handled.Sub(began), time.Since(handled))
	return err == nil
}
