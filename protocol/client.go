package protocol

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Client errors. Any error from Request closes the Client.
var (
	// ErrClientClosed is returned by Request on a closed Client.
	ErrClientClosed = errors.New("protocol: client closed")
	// ErrCorrelationMismatch is returned when a response answers another
	// request than the one in flight: the stream is out of step.
	ErrCorrelationMismatch = errors.New("protocol: response correlation id mismatch")
	// ErrResponseTooLarge is returned when a response frame's size exceeds
	// the client's MaxResponseBytes.
	ErrResponseTooLarge = errors.New("protocol: response larger than the client's limit")
	// ErrMalformedResponse is returned when a response does not decode.
	ErrMalformedResponse = errors.New("protocol: malformed response")
)

// DefaultMaxResponseBytes bounds a response frame. Replica fetches are
// bounded by replica.fetch.response.max.bytes (10 MiB) in Kafka; this leaves
// room for larger settings while refusing a garbage size.
const DefaultMaxResponseBytes = 256 << 20

// Client is one connection to one Kafka node, with requests in order and at
// most one in flight (Kafka's NetworkClient for a single node, without
// pipelining). It is safe for concurrent use: requests are serialised.
//
// Any error closes the client; it is then unusable and a new one must be
// dialled, so a half-read response can never be mistaken for the next one.
type Client struct {
	// MaxResponseBytes bounds response frames; set before the first Request.
	MaxResponseBytes int32

	mu     sync.Mutex // one request in flight; guards everything below
	nc     net.Conn
	r      *bufio.Reader
	f      *kmsg.RequestFormatter
	corr   int32
	buf    []byte // request encoding, reused
	closed bool
}

// Dial connects to addr (host:port). The ctx bounds the connect only.
func Dial(ctx context.Context, addr, clientID string) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return NewClient(nc, clientID), nil
}

// NewClient wraps an established connection.
func NewClient(nc net.Conn, clientID string) *Client {
	return &Client{
		MaxResponseBytes: DefaultMaxResponseBytes,
		nc:               nc,
		r:                bufio.NewReaderSize(nc, 32<<10),
		f:                kmsg.NewRequestFormatter(kmsg.FormatterClientID(clientID)),
	}
}

// RemoteAddr is the address of the node.
func (c *Client) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Request encodes req at req.GetVersion() (the caller sets it) with its
// request header (v1, or v2 for flexible versions), sends it and decodes the
// response into req.ResponseKind(). The ctx deadline, and ctx cancellation,
// bound the round trip. Any error closes the client.
func (c *Client) Request(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClientClosed
	}
	if err := ctx.Err(); err != nil {
		// Nothing was sent: the stream is still in step.
		return nil, err
	}
	resp, err := c.roundTrip(ctx, req)
	if err != nil {
		c.closeLocked()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("%w (%v)", ctxErr, err)
		}
		// The conn deadline can fire a moment before ctx's own timer.
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			return nil, fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
		}
		return nil, err
	}
	return resp, nil
}

func (c *Client) roundTrip(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	deadline, _ := ctx.Deadline() // zero: no deadline
	if err := c.nc.SetDeadline(deadline); err != nil {
		return nil, err
	}
	// A cancelled ctx without a deadline interrupts blocked I/O by moving the
	// deadline into the past.
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	c.corr++
	c.buf = c.f.AppendRequest(c.buf[:0], req, c.corr)
	if _, err := c.nc.Write(c.buf); err != nil {
		return nil, err
	}
	resp := req.ResponseKind()
	// A fresh buffer per response: kmsg's decoded []byte fields (record
	// batches, tag values) alias the frame, and the caller keeps them.
	if _, err := ReadResponse(c.r, c.MaxResponseBytes, c.corr, resp, nil); err != nil {
		return nil, err
	}
	return resp, nil
}

// Close closes the connection. It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeLocked()
}

func (c *Client) closeLocked() error {
	if c.closed {
		return nil
	}
	c.closed = true
	return c.nc.Close()
}

// ReadResponse reads one size-prefixed response frame from r into buf
// (grown as needed; returned for reuse), checks its correlation id and
// decodes the body into resp, whose version must be set. The response header
// is v0 (correlation id) or v1 (plus tagged fields) for flexible versions,
// except ApiVersions, which is always v0 so a client can read it before it
// knows the broker's versions. resp may alias buf after a decode.
func ReadResponse(r io.Reader, maxSize int32, correlationID int32, resp kmsg.Response, buf []byte) ([]byte, error) {
	var sizeBuf [4]byte
	if _, err := io.ReadFull(r, sizeBuf[:]); err != nil {
		return buf, err
	}
	size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
	switch {
	case size < 4:
		return buf, fmt.Errorf("%w: response size %d", ErrFrameInvalid, size)
	case size > maxSize:
		return buf, fmt.Errorf("%w: %d > %d", ErrResponseTooLarge, size, maxSize)
	}
	if cap(buf) < int(size) {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if _, err := io.ReadFull(r, buf); err != nil {
		return buf, err
	}
	return buf, DecodeResponse(buf, correlationID, resp)
}

// DecodeResponse decodes a response frame body (without the size prefix):
// the header, checked against correlationID, then resp.
func DecodeResponse(frame []byte, correlationID int32, resp kmsg.Response) error {
	rd := kbin.Reader{Src: frame}
	if got := rd.Int32(); got != correlationID {
		return fmt.Errorf("%w: got %d, want %d", ErrCorrelationMismatch, got, correlationID)
	}
	if resp.IsFlexible() && resp.Key() != ApiVersionsKey {
		skipTags(&rd)
	}
	if err := rd.Complete(); err != nil {
		return fmt.Errorf("%w: header: %v", ErrMalformedResponse, err)
	}
	if err := resp.ReadFrom(rd.Src); err != nil {
		return fmt.Errorf("%w: %s v%d: %v", ErrMalformedResponse, kmsg.NameForKey(resp.Key()), resp.GetVersion(), err)
	}
	return nil
}

// skipTags skips a tagged-field section. Unlike kmsg.SkipTags it stops at
// the first short read: kmsg's loop runs the declared count (up to 2^32)
// even after the input ran out, which costs seconds of CPU on garbage. Each
// tag takes at least two bytes, so a count above half the rest is refused.
func skipTags(rd *kbin.Reader) {
	num := rd.Uvarint()
	if int64(num) > int64(len(rd.Src))/2 {
		rd.Span(len(rd.Src) + 1) // marks the reader bad
		return
	}
	for ; num > 0 && rd.Ok(); num-- {
		_, size := rd.Uvarint(), rd.Uvarint()
		rd.Span(int(size))
	}
}
