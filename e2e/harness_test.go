package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/s3blob"

	"github.com/nixrepo/nixrepo/internal/store"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// nixrepoBinary builds the nixrepo command of this checkout once per test
// binary.
func nixrepoBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nixrepo-e2e-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "nixrepo")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/nixrepo/nixrepo/cmd/nixrepo").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// cluster is one bucket with a configuration every process shares: the
// replicas of `nixrepo serve` and the `nixrepo run` jobs.
type cluster struct {
	t        *testing.T
	bin      string
	dir      string // the configuration's folder
	config   string
	storeURL string
	repo     string
	write    string // a token that may upload to repo
	pub      string // the repository's public key
	replicas []*replica
	st       *store.Store // the bucket, read by the checks
}

// newCluster writes a configuration for storeURL with one local repository
// whose incoming sources are the given folders, and makes its signing key.
func newCluster(t *testing.T, storeURL string, incoming []string) *cluster {
	t.Helper()
	c := &cluster{t: t, bin: nixrepoBinary(t), dir: t.TempDir(), storeURL: storeURL, repo: "nix-local"}
	tok, sum := newToken(t)
	c.write = tok
	var inc []string
	for _, d := range incoming {
		inc = append(inc, fmt.Sprintf("%q", "file://"+d))
	}
	cfg := fmt.Sprintf(`version = 1
[store]
url = %q
[[repo]]
name = %q
type = "local"
signing_key_file = "keys/nix-local.sec"
incoming = [%s]
channel_keep = 100000
[[token]]
name = "ci"
sha256 = %q
read = [%q]
write = [%q]
`, storeURL, c.repo, strings.Join(inc, ", "), sum, c.repo, c.repo)
	c.config = filepath.Join(c.dir, "nixrepo.toml")
	if err := os.WriteFile(c.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := c.command(context.Background(), nil, "keygen", "nix-local-1", "--out", "keys/nix-local.sec").Output()
	if err != nil {
		t.Fatalf("nixrepo keygen: %v", err)
	}
	c.pub = strings.TrimSpace(string(out))
	st, err := store.Open(context.Background(), storeURL, "", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c.st = st
	return c
}

func newToken(t *testing.T) (token, sha256Hex string) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	token = "nxr_" + hex.EncodeToString(b[:])
	h := sha256.Sum256([]byte(token))
	return token, hex.EncodeToString(h[:])
}

// command is nixrepo with args and the cluster's configuration; env adds
// to the process environment.
func (c *cluster) command(ctx context.Context, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.bin, append([]string{"--config", c.config, "--quiet"}, args...)...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// replica is one `nixrepo serve` process, restarted on the same address
// after each kill.
type replica struct {
	c     *cluster
	addr  string
	index string // its own search index folder, as on its own machine
	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{}
	kills int
	logMu sync.Mutex
	log   bytes.Buffer
}

// output is the start of what the replica printed.
func (r *replica) output() string {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	return r.log.String()
}

func (c *cluster) startReplicas(n int) {
	for i := 0; i < n; i++ {
		r := &replica{c: c, addr: freeAddr(c.t), index: filepath.Join(c.dir, fmt.Sprintf("index-replica-%d", i))}
		r.start()
		c.replicas = append(c.replicas, r)
	}
	c.t.Cleanup(func() {
		for _, r := range c.replicas {
			r.stop()
		}
	})
}

func (r *replica) url() string { return "http://" + r.addr + "/api/nix/" + r.c.repo }

func (r *replica) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	cmd := r.c.command(context.Background(), []string{"NIXREPO_INDEX_DIR=" + r.index}, "serve", "--listen", r.addr)
	cmd.Stdout, cmd.Stderr = &lockedWriter{mu: &r.logMu, w: &r.log}, &lockedWriter{mu: &r.logMu, w: &r.log}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		r.c.t.Fatalf("nixrepo serve: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	r.cmd, r.done = cmd, done
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + r.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-done:
			r.c.t.Fatalf("nixrepo serve exited at start:\n%s", r.output())
		case <-time.After(50 * time.Millisecond):
		}
	}
	r.c.t.Fatalf("nixrepo serve did not answer /healthz within 30 s:\n%s", r.output())
}

// kill ends the replica with SIGKILL: whatever it was writing is cut off.
func (r *replica) kill() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.kills++
	r.mu.Unlock()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

func (r *replica) stop() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

// Write keeps the first 64 KiB of a replica's output for failure messages.
func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.w.Len() < 1<<16 {
		w.w.Write(p)
	}
	return len(p), nil
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// httpClient gives up on a request after a minute, so a killed replica
// never hangs an uploader.
var httpClient = &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// put uploads body to url with the token; it returns the status, or 0 when
// no answer came (connection refused or cut: a killed replica).
func put(url, token string, body []byte, contentType string) (int, string) {
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	req.SetBasicAuth("ci", token)
	req.Header.Set("Content-Type", contentType)
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(msg))
}

// get reads a bucket object; ok is false when it does not exist.
func (c *cluster) get(key string) ([]byte, bool) {
	b, err := c.st.Get(context.Background(), key)
	if err != nil {
		return nil, false
	}
	return b, true
}
