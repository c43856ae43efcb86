package server

import (
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

const canSendBlocking = true

// sendFileBlocking sends size bytes of f on c with sendfile(2), the socket
// in blocking mode (and a send timeout) for the duration.
func sendFileBlocking(c *net.TCPConn, f *os.File, size int64) (int64, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	sock := -1
	if err := rc.Control(func(fd uintptr) { sock = int(fd) }); err != nil {
		return 0, err
	}
	// The connection is this goroutine's alone (nothing reads or closes
	// it meanwhile), so its descriptor can be used outside Control.
	tv := unix.NsecToTimeval(narSendStall.Nanoseconds())
	if err := unix.SetsockoptTimeval(sock, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return 0, err
	}
	if err := unix.SetNonblock(sock, false); err != nil {
		return 0, err
	}
	defer unix.SetNonblock(sock, true)
	// Full segments only while the file streams (nginx's tcp_nopush);
	// uncorking sends the rest.
	if unix.SetsockoptInt(sock, unix.IPPROTO_TCP, unix.TCP_CORK, 1) == nil {
		defer unix.SetsockoptInt(sock, unix.IPPROTO_TCP, unix.TCP_CORK, 0)
	}
	src := int(f.Fd())
	var off int64
	for off < size {
		n, err := unix.Sendfile(sock, src, &off, int(min(size-off, 1<<30)))
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return off, errSendStall // SO_SNDTIMEO
		case err != nil:
			return off, err
		case n == 0:
			return off, io.ErrUnexpectedEOF // the file shrank
		}
	}
	return off, nil
}
