//go:build !linux

package storage

import (
	"errors"
	"io"
	"syscall"
)

// SendTo writes the region to conn. Outside Linux this copies through a buffer;
// conn must also be an io.Writer.
func (r FileRegion) SendTo(conn syscall.Conn) (int64, error) {
	if r.size == 0 {
		return 0, nil
	}
	if err := r.usable(); err != nil {
		return 0, err
	}
	w, ok := conn.(io.Writer)
	if !ok {
		return 0, errors.New("storage: SendTo needs an io.Writer on this platform")
	}
	return io.Copy(w, io.NewSectionReader(r, 0, r.size))
}
