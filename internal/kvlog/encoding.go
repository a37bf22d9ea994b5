package kvlog

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// encodingVersion leads every encoded batch of changes:
//
//	version 1 | count uvarint | count × change
//	change: op byte | path count uvarint | path count × (len uvarint | name) |
//	        OpPut, OpDelete: key len uvarint | key |
//	        OpPut:           value len uvarint | value
//
// A decoder that meets another version refuses the batch rather than guess:
// a follower that applied part of a transaction would diverge.
const encodingVersion = 1

// ErrMalformed is returned by Decode for bytes that are not an encoded
// batch of changes.
var ErrMalformed = errors.New("kvlog: malformed changes")

// Encode encodes changes in the format described at encodingVersion.
func Encode(changes []Change) []byte {
	n := 1 + binary.MaxVarintLen64
	for _, c := range changes {
		n += 1 + binary.MaxVarintLen64*(3+len(c.Path)) + len(c.Key) + len(c.Value)
		for _, p := range c.Path {
			n += len(p)
		}
	}
	b := make([]byte, 0, n)
	b = append(b, encodingVersion)
	b = binary.AppendUvarint(b, uint64(len(changes)))
	bytes := func(v []byte) {
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	for _, c := range changes {
		b = append(b, byte(c.Op))
		b = binary.AppendUvarint(b, uint64(len(c.Path)))
		for _, p := range c.Path {
			bytes(p)
		}
		switch c.Op {
		case OpPut:
			bytes(c.Key)
			bytes(c.Value)
		case OpDelete:
			bytes(c.Key)
		}
	}
	return b
}

// Decode decodes what Encode encoded. It refuses anything else with an
// error wrapping ErrMalformed (an unknown version or op, a length past the
// end, an overlong varint, bytes left over, an empty path) and never panics. The changes share
// b's memory: b must not change while they are in use, which for Apply
// means until its transaction commits.
func Decode(b []byte) ([]Change, error) {
	d := decoder{b: b}
	if v := d.byte(); d.err == nil && v != encodingVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrMalformed, v, encodingVersion)
	}
	// Every change takes at least an op and a path count: a count beyond
	// that is a lie, and must not size an allocation.
	count := d.count(2)
	changes := make([]Change, 0, count)
	for i := uint64(0); i < count && d.err == nil; i++ {
		c := Change{Op: Op(d.byte())}
		if d.err == nil && (c.Op < OpPut || c.Op > OpCreateBucket) {
			return nil, fmt.Errorf("%w: change %d: unknown op %d", ErrMalformed, i, uint8(c.Op))
		}
		np := d.count(1)
		if d.err == nil && np == 0 {
			return nil, fmt.Errorf("%w: change %d: empty path", ErrMalformed, i)
		}
		c.Path = make([][]byte, 0, np)
		for j := uint64(0); j < np && d.err == nil; j++ {
			c.Path = append(c.Path, d.bytes())
		}
		switch c.Op {
		case OpPut:
			c.Key = d.bytes()
			c.Value = d.bytes()
		case OpDelete:
			c.Key = d.bytes()
		}
		changes = append(changes, c)
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last change", ErrMalformed, len(d.b))
	}
	return changes, nil
}

// decoder reads from b, remembering the first error; reads after it return
// zero values.
type decoder struct {
	b       []byte
	err     error
	scratch [binary.MaxVarintLen64]byte
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformed, what)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	// An overlong varint is refused too, so a batch has one encoding.
	if n <= 0 || n != len(binary.AppendUvarint(d.scratch[:0], v)) {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a count of items taking at least minSize bytes each.
func (d *decoder) count(minSize int) uint64 {
	v := d.uvarint()
	if d.err == nil && v > uint64(len(d.b)/minSize) {
		d.fail(fmt.Sprintf("count %d with %d bytes left", v, len(d.b)))
		return 0
	}
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(fmt.Sprintf("length %d with %d bytes left", n, len(d.b)))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}
