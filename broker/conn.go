package broker

import (
	"bufio"
	"errors"
	"io"
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol"
)

// conn is one client connection (Kafka's KafkaChannel with its Processor).
type conn struct {
	s        *Server
	nc       net.Conn
	listener *boundListener
	out      chan *protocol.Frame // responses in request order; closed by readLoop
}

func newConn(s *Server, nc net.Conn, l *boundListener) *conn {
	return &conn{s: s, nc: nc, listener: l, out: make(chan *protocol.Frame, 8)}
}

// clientReq is a request in flight with what its handler needs.
type clientReq struct {
	conn *conn
	protocol.Request
	// rb collects file regions for responses that splice in records.
	rb protocol.ResponseBuilder
}

// errCloseConn makes readLoop close the connection after a request, e.g.
// an acks=0 produce that failed (Kafka closes so the client refreshes
// metadata).
var errCloseConn = errors.New("broker: close connection")

func (c *conn) serve() {
	defer c.s.removeConn(c)
	writerDone := make(chan struct{})
	if !c.s.goroutine(func() { defer close(writerDone); c.writeLoop() }) {
		c.nc.Close()
		return
	}
	c.readLoop()
	close(c.out)
	<-writerDone
	c.nc.Close()
}

func (c *conn) readLoop() {
	r := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		// A fresh buffer per frame: kmsg decodes bytes fields by aliasing
		// the frame, and handlers may keep what they decode.
		frame, err := protocol.ReadFrame(r, c.s.cfg.SocketRequestMaxBytes, nil)
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
		creq := &clientReq{conn: c, Request: req}
		resp, err := c.s.handle(creq)
		if err != nil {
			creq.rb.Release()
			if !errors.Is(err, errCloseConn) {
				c.s.logger.Warn("closing connection: request failed", "remote", c.nc.RemoteAddr(),
					"api", kmsg.NameForKey(req.Key), "version", req.Version, "err", err)
			}
			return
		}
		if resp == nil { // acks=0 produce: no response
			continue
		}
		frameOut, err := creq.rb.Build(req.CorrelationID, resp)
		if err != nil {
			creq.rb.Release()
			c.s.logger.Error("closing connection: response does not encode", "api", kmsg.NameForKey(req.Key), "err", err)
			return
		}
		select {
		case c.out <- frameOut:
		case <-c.s.closing:
			frameOut.Release()
			return
		}
	}
}

func (c *conn) writeLoop() {
	for f := range c.out {
		if _, err := f.WriteTo(c.nc); err != nil {
			c.nc.Close() // unblocks readLoop
			for f := range c.out {
				f.Release()
			}
			return
		}
	}
}
