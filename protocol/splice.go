package protocol

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FileRegion is a byte range of a segment file that a response carries
// without copying it through user space (storage.FileRegion).
type FileRegion interface {
	Len() int64
	// SendTo writes the region to conn with sendfile(2).
	SendTo(conn syscall.Conn) (int64, error)
	// ReadAt reads from the region, for writers that cannot sendfile.
	ReadAt(p []byte, off int64) (int, error)
	// Release lets the region's file be closed; called once written.
	Release()
}

// markerPrefix makes placeholders unique to this process; a placeholder is
// markerPrefix followed by the region's index, 16 bytes in all, so a stray
// match inside other response bytes is practically impossible.
var markerPrefix = func() [8]byte {
	var p [8]byte
	if _, err := rand.Read(p[:]); err != nil {
		panic(err)
	}
	return p
}()

const markerLen = 16

// ResponseBuilder assembles a response whose records fields are file
// regions. A handler puts Placeholder(region) into each records field; Build
// encodes the response with kmsg, then cuts the encoding at each placeholder,
// fixes the length prefix kmsg wrote for it, and splices in the region.
// Nothing but the placeholders is hand-encoded.
type ResponseBuilder struct {
	regions []FileRegion
}

// Placeholder registers region and returns the bytes to put in the records
// field that region will fill.
func (b *ResponseBuilder) Placeholder(region FileRegion) []byte {
	p := make([]byte, markerLen)
	copy(p, markerPrefix[:])
	binary.BigEndian.PutUint64(p[8:], uint64(len(b.regions)))
	b.regions = append(b.regions, region)
	return p
}

// Release releases every registered region; for responses never written.
func (b *ResponseBuilder) Release() {
	for _, r := range b.regions {
		r.Release()
	}
	b.regions = nil
}

// Build encodes resp (framed, with its header) and splices in the regions.
func (b *ResponseBuilder) Build(correlationID int32, resp kmsg.Response) (*Frame, error) {
	buf := make([]byte, 4, 256)
	buf = AppendResponseHeader(buf, correlationID, resp)
	buf = resp.AppendTo(buf)

	f := &Frame{}
	flexible := resp.IsFlexible()
	pos := 0 // start of the bytes not yet emitted
	search := 4
	for i, region := range b.regions {
		var marker [markerLen]byte
		copy(marker[:], markerPrefix[:])
		binary.BigEndian.PutUint64(marker[8:], uint64(i))
		at := bytes.Index(buf[search:], marker[:])
		if at < 0 {
			return nil, fmt.Errorf("protocol: placeholder %d not found in encoded %s response", i, kmsg.NameForKey(resp.Key()))
		}
		at += search
		// The length prefix kmsg wrote for the 16-byte placeholder:
		// compact bytes (uvarint len+1) in flexible versions, int32 before.
		prefixLen := 4
		if flexible {
			prefixLen = 1
		}
		prefixAt := at - prefixLen
		if prefixAt < pos || !bytes.Equal(buf[prefixAt:at], placeholderPrefix(flexible)) {
			return nil, fmt.Errorf("protocol: placeholder %d has an unexpected length prefix", i)
		}
		f.pieces = append(f.pieces, framePiece{bytes: buf[pos:prefixAt]})
		var prefix []byte
		if flexible {
			prefix = binary.AppendUvarint(nil, uint64(region.Len())+1)
		} else {
			prefix = binary.BigEndian.AppendUint32(nil, uint32(region.Len()))
		}
		f.pieces = append(f.pieces, framePiece{bytes: prefix}, framePiece{region: region})
		pos = at + markerLen
		search = pos
	}
	f.pieces = append(f.pieces, framePiece{bytes: buf[pos:]})
	b.regions = nil

	size := -4 // the size field does not count itself
	for _, p := range f.pieces {
		if p.region != nil {
			size += int(p.region.Len())
		} else {
			size += len(p.bytes)
		}
	}
	binary.BigEndian.PutUint32(buf[:4], uint32(size))
	return f, nil
}

func placeholderPrefix(flexible bool) []byte {
	if flexible {
		return []byte{markerLen + 1}
	}
	return []byte{0, 0, 0, markerLen}
}

// EncodeResponse frames a response that carries no file regions.
func EncodeResponse(correlationID int32, resp kmsg.Response) *Frame {
	buf := make([]byte, 4, 128)
	buf = AppendResponseHeader(buf, correlationID, resp)
	buf = resp.AppendTo(buf)
	binary.BigEndian.PutUint32(buf[:4], uint32(len(buf)-4))
	return &Frame{pieces: []framePiece{{bytes: buf}}}
}

// Frame is a ready-to-write response: byte pieces interleaved with file
// regions, size prefix included.
type Frame struct {
	pieces []framePiece
}

type framePiece struct {
	bytes  []byte
	region FileRegion
}

// Bytes returns the whole frame as one slice, reading regions into memory;
// for tests and for writers that cannot sendfile.
func (f *Frame) Bytes() ([]byte, error) {
	var out []byte
	for _, p := range f.pieces {
		if p.region == nil {
			out = append(out, p.bytes...)
			continue
		}
		start := len(out)
		out = append(out, make([]byte, p.region.Len())...)
		if _, err := p.region.ReadAt(out[start:], 0); err != nil && err != io.EOF {
			return nil, err
		}
	}
	return out, nil
}

// WriteTo writes the frame to w: consecutive byte pieces in one writev, each
// region with sendfile when w is a socket (a *net.TCPConn), else copied
// through a buffer: a *tls.Conn is no syscall.Conn, so TLS connections get
// the encrypted copy they need. Regions are released whether or not the
// write succeeds.
//
// Small regions, up to copyRegionsMax bytes in a frame, are read into
// memory and written with the bytes around them: the frame of a consumer
// that waits for a few records then goes out in one writev, one TCP
// segment, instead of a writev, a sendfile and a writev, three segments
// the client wakes up for. Copying a few KiB costs less than those
// syscalls; large fetches, where throughput is, keep sendfile.
func (f *Frame) WriteTo(w io.Writer) (int64, error) {
	defer f.Release()
	sc, canSendfile := w.(syscall.Conn)
	var total int64
	var pending net.Buffers
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		n, err := pending.WriteTo(w)
		total += n
		pending = pending[:0]
		return err
	}
	copyBudget := int64(copyRegionsMax)
	for _, p := range f.pieces {
		if p.region == nil {
			if len(p.bytes) > 0 {
				pending = append(pending, p.bytes)
			}
			continue
		}
		if n := p.region.Len(); n <= copyBudget {
			b := make([]byte, n)
			if k, err := p.region.ReadAt(b, 0); k < len(b) {
				if err == nil || err == io.EOF { // the file is shorter than the region
					err = io.ErrUnexpectedEOF
				}
				return total, err
			}
			copyBudget -= n
			pending = append(pending, b)
			continue
		}
		if err := flush(); err != nil {
			return total, err
		}
		var n int64
		var err error
		if canSendfile {
			n, err = p.region.SendTo(sc)
		} else {
			n, err = io.Copy(w, io.NewSectionReader(p.region, 0, p.region.Len()))
		}
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, flush()
}

// copyRegionsMax is how many bytes of regions a frame copies instead of
// sending them with sendfile (see WriteTo).
const copyRegionsMax = 16 << 10

// Release releases the frame's regions; WriteTo does it itself.
func (f *Frame) Release() {
	for i := range f.pieces {
		if r := f.pieces[i].region; r != nil {
			r.Release()
			f.pieces[i].region = nil
		}
	}
}
