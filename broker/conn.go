package broker

import (
	"bufio"
	"crypto/tls"
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
	s *Server
	// nc is the connection's stream: the TCP connection, or TLS over it.
	nc net.Conn
	// raw is the TCP connection, closed by Server.Close (closing a TLS
	// conn may block on its close_notify).
	raw      net.Conn
	listener *boundListener
	// principal is who the connection authenticated as; requests are
	// authorized against it.
	principal kafkaPrincipal
	// sasl is the authentication state on SASL listeners, nil elsewhere.
	sasl *saslConn
	// closeAfterResponse closes the connection once the current response
	// is written (a failed authentication).
	closeAfterResponse bool
}

func newConn(s *Server, nc net.Conn, l *boundListener) *conn {
	c := &conn{s: s, nc: nc, raw: nc, listener: l, principal: anonymousPrincipal}
	if l.SecurityProtocol == "SASL_PLAINTEXT" || l.SecurityProtocol == "SASL_SSL" {
		c.sasl = &saslConn{}
	}
	return c
}

// tlsHandshakeTimeout bounds a TLS handshake, so a client that never
// finishes one (or speaks plaintext to a TLS listener) does not hold a
// goroutine.
const tlsHandshakeTimeout = 10 * time.Second

// startTLS runs the server side of the TLS handshake and takes the
// principal from the client certificate (SSL listeners; on SASL_SSL the
// SASL principal replaces it).
func (c *conn) startTLS(cfg *tls.Config) error {
	tc := tls.Server(c.raw, cfg)
	c.raw.SetDeadline(time.Now().Add(tlsHandshakeTimeout))
	if err := tc.Handshake(); err != nil {
		return err
	}
	c.raw.SetDeadline(time.Time{})
	c.nc = tc
	p, err := tlsPrincipal(tc.ConnectionState(), c.security().principalRules)
	if err != nil {
		return err
	}
	c.principal = p
	return nil
}

// admit decides, on a SASL listener, whether a request may be served:
// before authentication only the authentication APIs; a SaslHandshake on
// an authenticated connection begins a re-authentication (KIP-368); an
// expired session closes on its next other request, as Kafka's Processor
// does.
func (c *conn) admit(key int16) bool {
	sc := c.sasl
	if sc == nil {
		return true
	}
	if sc.state == saslComplete {
		if key == protocol.SaslHandshakeKey && sc.supportsReauth {
			sc.reauth, sc.reauthMechanism, sc.reauthPrincipal = true, sc.mechanism, c.principal
			sc.state = saslHandshake
			return true
		}
		if !sc.expires.IsZero() && time.Now().After(sc.expires) {
			c.s.logger.Debug("closing connection: SASL session expired", "remote", c.nc.RemoteAddr(), "principal", c.principal.String())
			return false
		}
		return true
	}
	if !sc.allowed(key) {
		c.s.logger.Debug("closing connection: request before SASL authentication", "remote", c.nc.RemoteAddr(),
			"api", kmsg.NameForKey(key), "listener", c.listener.Name)
		return false
	}
	return true
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
	defer c.raw.Close()
	if cfg := c.security().tls; cfg != nil {
		if err := c.startTLS(cfg); err != nil {
			c.s.logger.Debug("closing connection: TLS handshake failed", "remote", c.raw.RemoteAddr(), "listener", c.listener.Name, "err", err)
			return
		}
	}
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
		if c.sasl != nil && c.sasl.rawTokens && c.sasl.state == saslAuthenticate {
			if !c.handleRawSaslToken(frame) {
				return
			}
			continue
		}
		req, err := protocol.ParseRequest(frame)
		if err != nil {
			c.s.logger.Debug("closing connection: unparseable request", "remote", c.nc.RemoteAddr(),
				"key", req.Key, "version", req.Version, "err", err)
			return
		}
		if !c.admit(req.Key) || !c.handle(req) {
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
	return err == nil && !c.closeAfterResponse
}
