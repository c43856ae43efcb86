//go:build unix

package nixtest

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock on path (created if needed) and returns the function
// releasing it. It is best effort: if the file cannot be opened or locked, unlock is a no-op.
func lockFile(path string) (unlock func()) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		if f, err = os.Open(path); err != nil {
			return func() {}
		}
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return func() {}
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}
}
