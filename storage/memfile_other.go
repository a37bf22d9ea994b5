//go:build !linux

package storage

import (
	"errors"
	"os"
)

// memFile is a file in memory; outside Linux there is none.
func memFile(string) (*os.File, error) {
	return nil, errors.ErrUnsupported
}
