package storage

import (
	"fmt"
	"io"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxSendfileChunk is the most Linux transfers in one sendfile call (MAX_RW_COUNT).
const maxSendfileChunk = 0x7ffff000

// SendTo writes the region to conn with sendfile(2), so the bytes go from the page
// cache to the socket without passing through Go memory (Kafka FileRecords.writeTo /
// FileChannel.transferTo). It passes an explicit offset, so the shared file offset is
// neither used nor moved and concurrent SendTo calls on one file are safe. On a
// non-blocking socket, EAGAIN parks the goroutine in the netpoller (the RawConn
// callback returns false) and the write deadline of conn applies. It returns the
// bytes sent, which are fewer than Len only with an error.
func (r FileRegion) SendTo(conn syscall.Conn) (int64, error) {
	if r.size == 0 {
		return 0, nil
	}
	if err := r.usable(); err != nil {
		return 0, err
	}
	dst, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	src, err := r.h.f.file.SyscallConn()
	if err != nil {
		return 0, err
	}
	var written int64
	var sendErr error
	ctlErr := src.Control(func(srcfd uintptr) {
		off, remaining := r.pos, r.size
		werr := dst.Write(func(dstfd uintptr) bool {
			for remaining > 0 {
				n, err := unix.Sendfile(int(dstfd), int(srcfd), &off, int(min(remaining, maxSendfileChunk)))
				if n > 0 {
					written += int64(n)
					remaining -= int64(n)
				}
				switch {
				case err == unix.EAGAIN:
					return false // wait until the socket is writable
				case err == unix.EINTR:
					continue
				case err != nil:
					sendErr = fmt.Errorf("storage: sendfile: %w", err)
					return true
				case n == 0:
					sendErr = fmt.Errorf("storage: sendfile: %w", io.ErrUnexpectedEOF) // file shorter than the region
					return true
				}
			}
			return true
		})
		if sendErr == nil && werr != nil {
			sendErr = werr
		}
	})
	if sendErr == nil {
		sendErr = ctlErr
	}
	return written, sendErr
}
