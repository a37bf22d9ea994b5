package storage

import (
	"os"

	"golang.org/x/sys/unix"
)

// memFile is a file in memory (memfd_create(2)): writes and syncs to it
// never reach a disk.
func memFile(name string) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("memfd_create", err)
	}
	return os.NewFile(uintptr(fd), name), nil
}
