package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// newClient is an HTTP client keeping up to conns connections per server
// alive, never asking for compressed answers.
func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 2 * time.Minute,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			MaxConnsPerHost:     conns,
			MaxIdleConnsPerHost: conns,
			DisableCompression:  true,
			IdleConnTimeout:     time.Minute,
		},
	}
}

// do sends one request and reads the whole answer; any status but 2xx is
// an error naming it and the start of the body.
func do(c *http.Client, method, url, token, contentType string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.SetBasicAuth("ci", token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	// Answers here are narinfos and short reasons; a server that sent more
	// is broken, not measured.
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %v", method, url, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("%s %s: %s: %.300s", method, url, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

// parallel runs job(i) for i in [0, n) on conns goroutines and returns the
// first error; after an error no new job starts.
func parallel(n, conns int, job func(i int) error) error {
	var next atomic.Int64
	var once sync.Once
	var first error
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := job(i); err != nil {
					once.Do(func() { first = err })
					failed.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// cacheEntry is one path of a binary-cache folder made by gen.
type cacheEntry struct {
	hash    string // the narinfo's name without .narinfo
	narinfo []byte
	narURL  string // nar/….nar
}

func readCache(dir string) ([]cacheEntry, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.narinfo"))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s holds no narinfo", dir)
	}
	slices.Sort(names)
	var es []cacheEntry
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		e := cacheEntry{hash: strings.TrimSuffix(filepath.Base(n), ".narinfo"), narinfo: b}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "URL: "); ok {
				e.narURL = u
			}
		}
		if e.narURL == "" {
			return nil, fmt.Errorf("%s has no URL", n)
		}
		es = append(es, e)
	}
	return es, nil
}

// cpuMeter measures the CPU seconds the driver and the processes of -pids
// use between start and stop.
type cpuMeter struct {
	names []string
	pids  []int
	self0 float64
	proc0 []float64
}

func newCPUMeter(spec string) (*cpuMeter, error) {
	m := &cpuMeter{}
	for _, kv := range strings.Split(spec, ",") {
		if kv == "" {
			continue
		}
		name, p, ok := strings.Cut(kv, "=")
		pid, err := strconv.Atoi(p)
		if !ok || err != nil {
			return nil, fmt.Errorf("-pids: %q is not name=PID", kv)
		}
		m.names, m.pids = append(m.names, name), append(m.pids, pid)
	}
	return m, nil
}

func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// procCPU is the user and system time of pid from /proc/PID/stat (clock
// ticks of 1/100 s, Linux's USER_HZ).
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	s, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return (u + s) / 100, nil
}

func (m *cpuMeter) start() error {
	m.self0 = selfCPU()
	m.proc0 = m.proc0[:0]
	for _, p := range m.pids {
		c, err := procCPU(p)
		if err != nil {
			return err
		}
		m.proc0 = append(m.proc0, c)
	}
	return nil
}

// stop returns "cpu_self=S cpu_NAME=S …".
func (m *cpuMeter) stop() (string, error) {
	out := fmt.Sprintf("cpu_self=%.2f", selfCPU()-m.self0)
	for i, p := range m.pids {
		c, err := procCPU(p)
		if err != nil {
			return "", fmt.Errorf("%s (pid %d) is gone: %v", m.names[i], p, err)
		}
		out += fmt.Sprintf(" cpu_%s=%.2f", m.names[i], c-m.proc0[i])
	}
	return out, nil
}

// put uploads the paths of a binary-cache folder through one server as
// Nix's HTTP store does: every NAR file first (untimed), then the narinfos
// (timed), each by one PUT. Then it reads every narinfo back (untimed) and
// checks it is the server's signed copy.
func put(args []string) error {
	fs := flag.NewFlagSet("put", flag.ExitOnError)
	url := fs.String("url", "", "the repository's upload URL, …/api/nix/REPO")
	token := fs.String("token", "", "an upload token for the repository")
	dir := fs.String("dir", "", "the binary-cache folder")
	conns := fs.Int("conns", 64, "connections")
	pids := fs.String("pids", "", "name=PID,… whose CPU time to report")
	fs.Parse(args)
	es, err := readCache(*dir)
	if err != nil {
		return err
	}
	meter, err := newCPUMeter(*pids)
	if err != nil {
		return err
	}
	c := newClient(*conns)
	base := strings.TrimSuffix(*url, "/")
	err = parallel(len(es), *conns, func(i int) error {
		b, err := os.ReadFile(filepath.Join(*dir, es[i].narURL))
		if err != nil {
			return err
		}
		_, err = do(c, http.MethodPut, base+"/"+es[i].narURL, *token, "application/x-nix-nar", b)
		return err
	})
	if err != nil {
		return fmt.Errorf("NAR uploads: %v", err)
	}
	if err := meter.start(); err != nil {
		return err
	}
	t0 := time.Now()
	err = parallel(len(es), *conns, func(i int) error {
		_, err := do(c, http.MethodPut, base+"/"+es[i].hash+".narinfo", *token, "text/x-nix-narinfo", es[i].narinfo)
		return err
	})
	secs := time.Since(t0).Seconds()
	if err != nil {
		return fmt.Errorf("narinfo uploads: %v", err)
	}
	cpu, err := meter.stop()
	if err != nil {
		return err
	}
	err = parallel(len(es), *conns, func(i int) error {
		b, err := do(c, http.MethodGet, base+"/"+es[i].hash+".narinfo", *token, "", nil)
		if err != nil {
			return err
		}
		if !bytes.Contains(b, []byte("\nSig: ")) {
			return fmt.Errorf("%s.narinfo as served is not signed:\n%s", es[i].hash, b)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the uploaded narinfos back: %v", err)
	}
	fmt.Printf("RESULT n=%d secs=%.3f rate=%.1f %s\n", len(es), secs, float64(len(es))/secs, cpu)
	return nil
}

// get reads the narinfos of a binary-cache folder from one or more servers:
// first every narinfo once from every server (untimed: the servers' caches
// are warm), then for dur on conns connections, connection i on server
// i mod len(urls), each cycling over the narinfos from its own offset.
func get(args []string) error {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	urls := fs.String("urls", "", "the repository's URL on each server, comma-separated")
	token := fs.String("token", "", "a read token (empty: anonymous)")
	dir := fs.String("dir", "", "the binary-cache folder whose narinfos the servers hold")
	conns := fs.Int("conns", 64, "connections")
	dur := fs.Duration("dur", 10*time.Second, "timed part")
	pids := fs.String("pids", "", "name=PID,… whose CPU time to report")
	fs.Parse(args)
	es, err := readCache(*dir)
	if err != nil {
		return err
	}
	meter, err := newCPUMeter(*pids)
	if err != nil {
		return err
	}
	var bases []string
	for _, u := range strings.Split(*urls, ",") {
		bases = append(bases, strings.TrimSuffix(u, "/"))
	}
	c := newClient(*conns)
	check := func(base string, e cacheEntry) error {
		b, err := do(c, http.MethodGet, base+"/"+e.hash+".narinfo", *token, "", nil)
		if err == nil && !bytes.HasPrefix(b, []byte("StorePath: ")) {
			err = fmt.Errorf("GET %s/%s.narinfo: not a narinfo: %.200s", base, e.hash, b)
		}
		return err
	}
	err = parallel(len(es)*len(bases), *conns, func(i int) error {
		return check(bases[i%len(bases)], es[i/len(bases)])
	})
	if err != nil {
		return fmt.Errorf("warm-up: %v", err)
	}
	if err := meter.start(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	var total atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	t0 := time.Now()
	for g := range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := bases[g%len(bases)]
			for i := g * len(es) / *conns; ctx.Err() == nil; i++ {
				if err := check(base, es[i%len(es)]); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
				total.Add(1)
			}
		}()
	}
	wg.Wait()
	secs := time.Since(t0).Seconds()
	if first != nil {
		return first
	}
	cpu, err := meter.stop()
	if err != nil {
		return err
	}
	n := total.Load()
	fmt.Printf("RESULT n=%d secs=%.3f rate=%.1f %s\n", n, secs, float64(n)/secs, cpu)
	return nil
}

// mkbucket creates an S3 bucket on an S3-compatible server.
func mkbucket(args []string) error {
	fs := flag.NewFlagSet("mkbucket", flag.ExitOnError)
	endpoint := fs.String("endpoint", "", "http://HOST:PORT")
	bucket := fs.String("bucket", "", "the new bucket's name")
	fs.Parse(args)
	access, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if *endpoint == "" || *bucket == "" || access == "" || secret == "" {
		return fmt.Errorf("mkbucket: -endpoint, -bucket, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are required")
	}
	cl := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(*endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(access, secret, ""),
		HTTPClient:   &http.Client{Timeout: 30 * time.Second},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(*bucket)}); err != nil {
		return fmt.Errorf("mkbucket %s: %v", *bucket, err)
	}
	return nil
}
