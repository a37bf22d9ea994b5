package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// These errors mean the stream cannot be framed or the request cannot be
// parsed; the connection is closed, as Kafka's SocketServer does
// (InvalidReceiveException, InvalidRequestException).
var (
	// ErrFrameTooLarge is returned when a frame's size exceeds
	// socket.request.max.bytes.
	ErrFrameTooLarge = errors.New("protocol: frame larger than socket.request.max.bytes")
	// ErrFrameInvalid is returned for a negative size or a frame too short
	// to hold a request header.
	ErrFrameInvalid = errors.New("protocol: invalid frame")
	// ErrUnknownAPIKey is returned for an API key kmsg does not know.
	ErrUnknownAPIKey = errors.New("protocol: unknown api key")
	// ErrUnsupportedVersion is returned for a version outside the broker's
	// supported range (ApiVersions excepted: it gets an error response).
	ErrUnsupportedVersion = errors.New("protocol: unsupported api version")
	// ErrMalformedRequest is returned when the body does not decode.
	ErrMalformedRequest = errors.New("protocol: malformed request")
)

// minHeaderSize is key + version + correlation id + client id length.
const minHeaderSize = 2 + 2 + 4 + 2

// ReadFrame reads one size-prefixed frame into buf (grown as needed) and
// returns the frame body. The size is checked against maxSize before any
// allocation, so a hostile size cannot make the broker allocate.
func ReadFrame(r io.Reader, maxSize int32, buf []byte) ([]byte, error) {
	var sizeBuf [4]byte
	if _, err := io.ReadFull(r, sizeBuf[:]); err != nil {
		return nil, err
	}
	size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
	switch {
	case size < minHeaderSize:
		return nil, fmt.Errorf("%w: size %d", ErrFrameInvalid, size)
	case size > maxSize:
		return nil, fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, size, maxSize)
	}
	if cap(buf) < int(size) {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// RequestHeader is Kafka's request header (v1, or v2 for flexible versions).
type RequestHeader struct {
	Key           int16
	Version       int16
	CorrelationID int32
	ClientID      string // a null client id reads as "", as in Kafka
}

// Request is a parsed request: its header and its kmsg-decoded body.
type Request struct {
	RequestHeader
	Body kmsg.Request
}

// ParseRequest parses a frame body (without the size prefix).
//
// An unsupported ApiVersions version is not an error: Kafka answers it with a
// v0 ApiVersions response carrying UNSUPPORTED_VERSION and the supported
// ranges, so the client can retry with a version both sides know. The
// returned Request then has Body == nil and Key == ApiVersionsKey.
func ParseRequest(frame []byte) (Request, error) {
	if len(frame) < minHeaderSize {
		return Request{}, ErrFrameInvalid
	}
	r := kbin.Reader{Src: frame}
	var req Request
	req.Key = r.Int16()
	req.Version = r.Int16()
	req.CorrelationID = r.Int32()
	if cid := r.NullableString(); cid != nil {
		req.ClientID = *cid
	}
	if err := r.Complete(); err != nil {
		return req, fmt.Errorf("%w: header: %v", ErrMalformedRequest, err)
	}

	if !Supported(req.Key, req.Version) {
		if req.Key == ApiVersionsKey {
			return req, nil
		}
		if kmsg.RequestForKey(req.Key) == nil {
			return req, fmt.Errorf("%w %d", ErrUnknownAPIKey, req.Key)
		}
		return req, fmt.Errorf("%w: %s v%d", ErrUnsupportedVersion, kmsg.NameForKey(req.Key), req.Version)
	}

	body := kmsg.RequestForKey(req.Key)
	body.SetVersion(req.Version)
	if body.IsFlexible() {
		SkipTags(&r)
		if err := r.Complete(); err != nil {
			return req, fmt.Errorf("%w: header tags: %v", ErrMalformedRequest, err)
		}
	}
	if err := body.ReadFrom(r.Src); err != nil {
		return req, fmt.Errorf("%w: %s v%d: %v", ErrMalformedRequest, kmsg.NameForKey(req.Key), req.Version, err)
	}
	req.Body = body
	return req, nil
}

// SkipTags skips a tagged-field section, bounded by the input: kmsg.SkipTags
// runs its loop for the declared count even after the input has run out, so
// one frame claiming 2^32 tags would cost seconds of CPU. Each tag takes at
// least two bytes, so a larger count is malformed at once.
func SkipTags(r *kbin.Reader) {
	num := r.Uvarint()
	if int64(num) > int64(len(r.Src))/2 {
		r.Span(len(r.Src) + 1) // fails the reader
		return
	}
	for ; num > 0 && r.Ok(); num-- {
		_, size := r.Uvarint(), r.Uvarint()
		r.Span(int(size))
	}
}

// AppendResponseHeader appends the response header for resp: the
// correlation id, then an empty tagged-field section for flexible versions.
// ApiVersions is the exception: its response header is always v0, so that a
// client can parse it before it knows which versions the broker speaks.
func AppendResponseHeader(dst []byte, correlationID int32, resp kmsg.Response) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(correlationID))
	if resp.IsFlexible() && resp.Key() != ApiVersionsKey {
		dst = append(dst, 0)
	}
	return dst
}
