// Package s3test starts a real S3-compatible server for tests: versitygw
// (github.com/versity/versitygw, Apache-2.0) with its posix backend, on a
// random loopback port, in a folder of the test's own.
//
// The server binary is looked up as $NIXREPO_VERSITYGW, then "versitygw" on
// PATH, then /var/cache/nixrepo-ci/bin/versitygw (where .ci/run installs
// it with `go install github.com/versity/versitygw/cmd/versitygw@v1.8.0`).
// Without it a test skips, except when CI is set: then it fails, so CI
// never passes by skipping (nixtest.Missing).
//
// versitygw is the judge of conditional-write semantics (If-None-Match: *
// and If-Match on PutObject); the in-process gofakes3 that unit tests also
// use does not implement them faithfully.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/nixrepo/nixrepo/internal/nixtest"
)

// DefaultPath is where .ci/run installs the server.
const DefaultPath = "/var/cache/nixrepo-ci/bin/versitygw"

// Server is a running S3-compatible server.
type Server struct {
	// Endpoint is http://127.0.0.1:PORT.
	Endpoint string
	// Root is the posix backend's folder: bucket B's object K is the file
	// Root/B/K.
	Root string
	// AccessKey and SecretKey are the server's root credentials.
	AccessKey, SecretKey string

	client *s3.Client
	mu     sync.Mutex
	n      int
}

// Binary returns the versitygw binary, or "" when there is none.
func Binary() string {
	if p := os.Getenv("NIXREPO_VERSITYGW"); p != "" {
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	if _, err := os.Stat(DefaultPath); err == nil {
		return DefaultPath
	}
	return ""
}

// Start starts a server for the test (stopped at its end). It skips the
// test when no versitygw is installed, unless CI is set.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		nixtest.Missing(t, "s3test: versitygw is not installed (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
	}
	root := t.TempDir()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	var secret [12]byte
	rand.Read(secret[:])
	s := &Server{Endpoint: "http://" + port, Root: root, AccessKey: "nixrepo", SecretKey: hex.EncodeToString(secret[:])}
	cmd := exec.Command(bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--port", port, "posix", root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &syncWriter{w: &log}, &syncWriter{w: &log}
	if err := cmd.Start(); err != nil {
		t.Fatalf("s3test: starting %s: %v", bin, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", port, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-done:
			t.Fatalf("s3test: versitygw exited: %v\n%s", err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("s3test: versitygw did not listen on %s within 20 s\n%s", port, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.client = s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		HTTPClient:   &http.Client{Timeout: 30 * time.Second},
	})
	return s
}

// Bucket creates a new empty bucket and returns its gocloud URL. The
// credentials travel in the environment (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY), which Bucket sets for the test.
func (s *Server) Bucket(t testing.TB) string {
	t.Helper()
	s.mu.Lock()
	s.n++
	name := fmt.Sprintf("bucket-%d", s.n)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("s3test: create bucket %s: %v", name, err)
	}
	if st, ok := t.(interface{ Setenv(k, v string) }); ok {
		st.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
		st.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
	}
	return s.URL(name)
}

// URL is the gocloud URL of bucket name on this server.
func (s *Server) URL(name string) string {
	return fmt.Sprintf("s3://%s?endpoint=%s&use_path_style=true&region=us-east-1&disable_https=true&request_checksum_calculation=when_required&response_checksum_validation=when_required", name, s.Endpoint)
}

// Dir is the folder holding bucket name's objects (the posix backend).
func (s *Server) Dir(name string) string { return filepath.Join(s.Root, name) }

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.w.Len() < 1<<16 {
		w.w.Write(p)
	}
	return len(p), nil
}
