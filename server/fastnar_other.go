//go:build !linux

package server

import (
	"errors"
	"net"
	"os"
)

const canSendBlocking = false

func sendFileBlocking(*net.TCPConn, *os.File, int64) (int64, error) {
	return 0, errors.New("not supported")
}
