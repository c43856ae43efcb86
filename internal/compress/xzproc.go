package compress

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// xzMemlimit is the memory limit given to xz for a dictionary limit of
// maxDict, so that it refuses what the Go decoder refuses: xz needs about
// the dictionary size plus 1 MiB, and the next dictionary size above a
// power of two is 1.5 times it (4/3 times above 3·2^n), so maxDict plus a
// quarter accepts maxDict and refuses the next size up (for the default
// 128 MiB: 160 MiB, and the next size is 192 MiB). Below 8 MiB the margin
// is 2 MiB, and xz may accept one dictionary size more than the Go decoder.
func xzMemlimit(maxDict int64) string {
	return fmt.Sprintf("--memlimit-decompress=%d", maxDict+max(maxDict/4, 2<<20))
}

// xzProcess decodes xz with an "xz -dc" subprocess. r is copied to the
// process's stdin by a goroutine (or handed over directly when it is an
// *os.File); the decoded data is read from its stdout pipe.
type xzProcess struct {
	path    string
	src     *srcReader
	maxDict int64

	startOnce sync.Once
	startErr  error
	cmd       *exec.Cmd
	stdout    *os.File
	stderr    *boundedBuffer
	feedDone  chan struct{} // closed when the feeding goroutine has ended; nil without one

	waitOnce sync.Once
	waitErr  error

	mu     sync.Mutex // guards closed
	closed bool

	err error // sticky Read result, only touched by Read
}

func newXZProcess(r io.Reader, path string, maxDict int64) *xzProcess {
	return &xzProcess{path: path, src: &srcReader{r: r}, maxDict: maxDict}
}

// start launches the process on the first Read, so that an unread reader
// costs nothing.
func (p *xzProcess) start() error {
	p.startOnce.Do(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.closed {
			p.startErr = errClosed
			return
		}
		p.startErr = p.startLocked()
	})
	return p.startErr
}

func (p *xzProcess) startLocked() error {
	// --format=xz: accept exactly what the Go decoder accepts (no .lzma or
	// .lz); -T1 and the memory limit: bounded memory. LC_ALL=C gives English messages, and the
	// otherwise empty environment keeps XZ_OPT/XZ_DEFAULTS out.
	cmd := exec.Command(p.path, "--decompress", "--stdout", "--format=xz", "--threads=1", xzMemlimit(p.maxDict))
	cmd.Args[0] = "xz" // messages read "xz: (stdin): …"
	cmd.Env = []string{"LC_ALL=C"}
	p.stderr = &boundedBuffer{max: 4 << 10}
	cmd.Stderr = p.stderr

	var stdinR, stdinW *os.File
	if f, ok := p.src.r.(*os.File); ok {
		cmd.Stdin = f
	} else {
		var err error
		if stdinR, stdinW, err = os.Pipe(); err != nil {
			return fmt.Errorf("compress: starting xz: %w", err)
		}
		cmd.Stdin = stdinR
	}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		closeAll(stdinR, stdinW)
		return fmt.Errorf("compress: starting xz: %w", err)
	}
	cmd.Stdout = stdoutW
	if err := cmd.Start(); err != nil {
		closeAll(stdinR, stdinW, stdoutR, stdoutW)
		return fmt.Errorf("compress: starting xz: %w", err)
	}
	closeAll(stdinR, stdoutW) // the child has its own copies
	p.cmd, p.stdout = cmd, stdoutR
	if stdinW != nil {
		p.feedDone = make(chan struct{})
		go p.feed(stdinW)
	}
	return nil
}

// feed copies the input to xz's stdin. A failing write (xz exited) just
// ends the copy; a failing read is recorded by srcReader.
func (p *xzProcess) feed(w *os.File) {
	defer close(p.feedDone)
	defer w.Close()
	buf := make([]byte, 128<<10)
	for {
		n, err := p.src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *xzProcess) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	if err := p.start(); err != nil {
		p.err = err
		return 0, err
	}
	n, err := p.stdout.Read(b)
	switch {
	case err == nil:
		return n, nil
	case p.isClosed():
		p.err = errClosed
	case err == io.EOF:
		p.err = p.finish()
	default:
		p.err = fmt.Errorf("compress: reading xz output: %w", err)
	}
	return n, p.err
}

// finish reaps the process after its output ended and turns its exit status
// into io.EOF or an error.
func (p *xzProcess) finish() error {
	waitErr := p.wait()
	if p.isClosed() {
		return errClosed
	}
	if srcErr := p.src.failure(); srcErr != nil {
		return fmt.Errorf("compress: reading xz input: %w", srcErr)
	}
	if waitErr == nil {
		return io.EOF
	}
	detail := strings.TrimSpace(p.stderr.String())
	if detail == "" {
		detail = "xz: " + waitErr.Error()
	} else {
		detail = strings.ReplaceAll(detail, "\n", "; ")
	}
	if strings.Contains(detail, "Memory usage limit reached") {
		// Only xz's first line: the next one gives its estimate of
		// the memory needed, which is not the dictionary size.
		first, _, _ := strings.Cut(detail, "; ")
		return &memoryError{method: "xz", detail: fmt.Sprintf("a dictionary above the limit of %s (%s)", formatSize(p.maxDict), first)}
	}
	var cause error = waitErr
	if strings.Contains(detail, "Unexpected end of input") {
		cause = io.ErrUnexpectedEOF
	}
	return &corruptError{method: "xz", detail: detail, cause: cause}
}

// wait reaps the process and waits for the feeding goroutine, once.
func (p *xzProcess) wait() error {
	p.waitOnce.Do(func() {
		p.waitErr = p.cmd.Wait()
		if p.feedDone != nil {
			<-p.feedDone
		}
	})
	return p.waitErr
}

func (p *xzProcess) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// Close kills the process if it is still running, reaps it and waits for
// the feeding goroutine. It is safe to call concurrently with Read and more
// than once.
func (p *xzProcess) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.startOnce.Do(func() { p.startErr = errClosed }) // never start after Close
	if p.cmd == nil {
		return nil
	}
	// Killing an exited but unreaped process is harmless; the error (if
	// any) says it is already done.
	_ = p.cmd.Process.Kill()
	p.wait()
	// A concurrent Read blocked on the pipe got EOF when the process died;
	// closing our end now is safe.
	p.stdout.Close()
	return nil
}

func closeAll(files ...*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// boundedBuffer keeps the first max bytes written to it (xz's stderr).
type boundedBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		if len(p) > room {
			b.buf.Write(p[:room])
		} else {
			b.buf.Write(p)
		}
	}
	return len(p), nil
}

func (b *boundedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
