package e2e_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nixrepo/nixrepo/internal/compress"
	"github.com/nixrepo/nixrepo/internal/nar"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/nixtest"
	"github.com/nixrepo/nixrepo/internal/s3test"
	"github.com/nixrepo/nixrepo/internal/store"
)

// durationEnv sets how long the writers of TestManyWritersOneBucket run on
// each backend (a Go duration; default 30s).
const durationEnv = "NIXREPO_E2E_DURATION"

func writersDuration(t *testing.T) time.Duration {
	if v := os.Getenv(durationEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s=%q: %v", durationEnv, v, err)
		}
		return d
	}
	return 30 * time.Second
}

// TestManyWritersOneBucket runs, on one bucket, three `nixrepo serve`
// replicas (one killed with SIGKILL every few seconds and restarted), two
// overlapping `nixrepo run` loops consuming the same incoming folders, and
// uploaders through every replica: raw PUTs and nix copy of real closures,
// two claims at once for one store path, corrupt NARs, store paths that
// share one NAR file with a path a run refuses, and channel snapshots
// (some IDs pushed twice at once). Then it reads the bucket and counts:
// acknowledged narinfos lost or replaced, narinfos without their NAR file,
// listing or references, listings that do not describe their NAR, lost or
// changed channel snapshots, refusals of valid paths, 5xx answers to PUTs,
// and what `nixrepo verify` says. Every count but the activity must be 0.
func TestManyWritersOneBucket(t *testing.T) {
	env := nixtest.Require(t)
	var tops []string
	for i := 0; i < 4; i++ {
		tops = append(tops, env.Build(t, nixtest.ClosureExpr(fmt.Sprintf("e2e-writers-%d-%d", os.Getpid(), i), 6))...)
	}
	raw := t.TempDir()
	env.CopyTo(t, "file://"+raw, tops...)
	all := readCache(t, raw)
	for _, b := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"folder", func(t *testing.T) string { return "file://" + t.TempDir() }},
		{"s3", func(t *testing.T) string { return s3test.Start(t).Bucket(t) }},
	} {
		t.Run(b.name, func(t *testing.T) {
			w := &writers{t: t, env: env, tops: tops, all: all,
				acked: map[string]map[string]bool{}, fed: map[string]bool{}, orphans: map[string]bool{},
				snapshots: map[string]string{}}
			w.inA, w.inB = t.TempDir(), t.TempDir()
			w.c = newCluster(t, b.url(t), []string{w.inA, w.inB})
			w.c.startReplicas(3)
			w.run(writersDuration(t))
			w.check()
		})
	}
}

// writers is one run of the test on one backend, and what it saw.
type writers struct {
	t        *testing.T
	env      *nixtest.Env
	c        *cluster
	tops     []string
	all      []*cached
	inA, inB string

	mu        sync.Mutex
	acked     map[string]map[string]bool // store path → NarHashes acknowledged (2xx or nix copy success)
	fed       map[string]bool            // store paths copied into an incoming folder
	orphans   map[string]bool            // store paths planted in incoming to be refused
	snapshots map[string]string          // acknowledged snapshot ID → sha256 of its tarball
	failures  []string
	seen      tally
}

func (w *writers) fail(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.failures) < 200 {
		w.failures = append(w.failures, fmt.Sprintf(format, args...))
	}
}

func (w *writers) count(kind string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen.add(kind)
}

func (w *writers) ack(sp nix.StorePath, narHash nix.Hash) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := sp.String()
	if w.acked[k] == nil {
		w.acked[k] = map[string]bool{}
	}
	w.acked[k][narHash.String()] = true
}

func (w *writers) replica() *replica { return w.c.replicas[mrand.IntN(len(w.c.replicas))] }

// putPath uploads a NAR file and then its narinfo through r, as Nix does;
// it returns whether the narinfo was acknowledged.
func (w *writers) putPath(r *replica, ni *nix.NarInfo, info, narFile []byte, what string) bool {
	code, msg := put(r.url()+"/"+ni.URL, w.c.write, narFile, "application/x-nix-nar")
	if !w.judge(what+" NAR", code, msg) {
		return false
	}
	code, msg = put(r.url()+"/"+ni.StorePath.HashPart()+".narinfo", w.c.write, info, "text/x-nix-narinfo")
	return w.judge(what+" narinfo", code, msg)
}

// judge counts one PUT answer: true for 2xx. A 5xx is a failure whatever
// the upload (Nix 2.8 retries PUTs on 5xx and hangs).
func (w *writers) judge(what string, code int, msg string) bool {
	switch {
	case code == 0:
		w.count("put-cut")
	case code >= 500:
		w.fail("%s: answered %d: %s", what, code, msg)
	case code >= 400:
		w.count(fmt.Sprintf("put-%d", code))
	default:
		w.count("put-2xx")
		return true
	}
	return false
}

func (w *writers) run(d time.Duration) {
	ctx, stop := context.WithTimeout(context.Background(), d)
	defer stop()
	var wg sync.WaitGroup
	loop := func(n int, body func(i int)) {
		for g := 0; g < n; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					body(g*1_000_000 + i)
				}
			}()
		}
	}
	// Twenty uploaders in all: raw PUTs, nix copy, contested claims, corrupt
	// NARs, shared NAR files, channel snapshots; and the incoming feeder.
	loop(12, func(int) { w.rawUpload() })
	loop(2, func(int) { w.nixCopy(ctx) })
	loop(2, func(i int) { w.contested(i) })
	loop(1, func(int) { w.corrupt() })
	loop(1, func(i int) { w.sharedNar(i) })
	loop(1, func(int) { w.feed(ctx) })
	loop(2, func(i int) { w.runOnce(ctx, fmt.Sprintf("index-run-%d", i/1_000_000)) })
	loop(2, func(i int) { w.channel(i) })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(2000+mrand.IntN(2000)) * time.Millisecond):
				r := w.replica()
				r.kill()
				w.count("replica-killed")
				time.Sleep(200 * time.Millisecond)
				r.start()
			}
		}
	}()
	wg.Wait()
	// One last run on its own: whatever an overlapping run left in the
	// incoming folders is ingested now.
	w.runOnce(context.Background(), "index-final")
}

// rawUpload uploads a real path's closure, references first, by raw PUTs.
func (w *writers) rawUpload() {
	r := w.replica()
	top := w.all[mrand.IntN(len(w.all))]
	for _, p := range closureOf(w.all, top.ni.StorePath.String()) {
		if !w.putPath(r, p.ni, p.info, p.nar, "raw") {
			return
		}
		w.ack(p.ni.StorePath, p.ni.NarHash)
	}
}

// nixCopy uploads a closure with the real Nix client.
func (w *writers) nixCopy(ctx context.Context) {
	r := w.replica()
	top := w.tops[mrand.IntN(len(w.tops))]
	cctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	url := strings.Replace(r.url(), "http://", "http://ci:"+w.c.write+"@", 1)
	if out, err := w.env.Command(cctx, "nix", "copy", "--to", url, top).CombinedOutput(); err != nil {
		if ctx.Err() == nil && !bytes.Contains(out, []byte("Connection refused")) && !bytes.Contains(out, []byte("connection")) {
			w.count("nix-copy-failed")
		}
		return
	}
	w.count("nix-copy-ok")
	for _, p := range closureOf(w.all, top) {
		w.ack(p.ni.StorePath, p.ni.NarHash)
	}
}

// contested makes two claims at once, through two replicas, for one new
// store path with different NARs: at most one may be acknowledged.
func (w *writers) contested(i int) {
	sp := randomStorePath(w.t, fmt.Sprintf("contested-%d", i))
	var wg sync.WaitGroup
	// Contents of different lengths, so that the two listings differ too.
	for _, side := range []string{"a", "b, the other one"} {
		s := newSynthetic(sp, []byte(fmt.Sprintf("claim %s of %s\n", side, sp)))
		r := w.replica()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w.putPath(r, s.ni, s.ni.Bytes(), s.nar, "contested") {
				w.ack(sp, s.ni.NarHash)
			}
		}()
	}
	wg.Wait()
}

// corrupt uploads a NAR file whose bytes do not match its name, and a
// narinfo whose NarHash does not match its NAR: neither may be accepted.
func (w *writers) corrupt() {
	r := w.replica()
	s := newSynthetic(randomStorePath(w.t, "corrupt"), []byte(fmt.Sprintf("corrupt %d\n", mrand.Int64())))
	bad := bytes.Clone(s.nar)
	bad[len(bad)-20] ^= 0xff
	if code, msg := put(r.url()+"/"+s.ni.URL, w.c.write, bad, "application/x-nix-nar"); code >= 200 && code < 300 {
		w.fail("a NAR file whose bytes do not match its name was acknowledged (%d %s)", code, msg)
	} else {
		w.judge("corrupt NAR", code, msg)
	}
	if code, msg := put(r.url()+"/"+s.ni.URL, w.c.write, s.nar, "application/x-nix-nar"); !w.judge("corrupt's NAR", code, msg) {
		return
	}
	lie := *s.ni
	other := newSynthetic(s.ni.StorePath, []byte("something else\n"))
	lie.NarHash, lie.NarSize = other.ni.NarHash, other.ni.NarSize
	if code, msg := put(r.url()+"/"+s.ni.StorePath.HashPart()+".narinfo", w.c.write, lie.Bytes(), "text/x-nix-narinfo"); code >= 200 && code < 300 {
		w.fail("a narinfo whose NarHash does not match its NAR was acknowledged (%d %s)", code, msg)
	} else {
		w.judge("corrupt narinfo", code, msg)
	}
}

// sharedNar plants in an incoming folder a path that a run must refuse (its
// reference exists nowhere) and, at once, uploads through a replica another
// store path whose NAR file is the same file.
func (w *writers) sharedNar(i int) {
	contents := []byte(fmt.Sprintf("shared %d %d\n", i, mrand.Int64()))
	orphan := newSynthetic(randomStorePath(w.t, fmt.Sprintf("orphan-%d", i)), contents, randomStorePath(w.t, "nowhere"))
	shared := newSynthetic(randomStorePath(w.t, fmt.Sprintf("shared-%d", i)), contents)
	w.mu.Lock()
	w.orphans[orphan.ni.StorePath.String()] = true
	w.mu.Unlock()
	orphan.writeTo(w.t, []string{w.inA, w.inB}[i%2])
	time.Sleep(time.Duration(mrand.IntN(300)) * time.Millisecond)
	if w.putPath(w.replica(), shared.ni, shared.ni.Bytes(), shared.nar, "shared-NAR") {
		w.ack(shared.ni.StorePath, shared.ni.NarHash)
	}
	time.Sleep(200 * time.Millisecond)
}

// feed copies a closure into an incoming folder with nix copy, for the runs
// to ingest.
func (w *writers) feed(ctx context.Context) {
	top := w.tops[mrand.IntN(len(w.tops))]
	dir := []string{w.inA, w.inB}[mrand.IntN(2)]
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if out, err := w.env.Command(cctx, "nix", "copy", "--to", "file://"+dir, top).CombinedOutput(); err != nil {
		if ctx.Err() == nil {
			w.fail("nix copy into an incoming folder: %v: %s", err, out)
		}
		return
	}
	w.count("fed")
	w.mu.Lock()
	for _, p := range closureOf(w.all, top) {
		w.fed[p.ni.StorePath.String()] = true
	}
	w.mu.Unlock()
	time.Sleep(500 * time.Millisecond)
}

// runOnce runs the scheduled job and counts refusals of anything but the
// planted orphans.
func (w *writers) runOnce(ctx context.Context, indexDir string) {
	var stdout, stderr bytes.Buffer
	cmd := w.c.command(ctx, []string{"NIXREPO_INDEX_DIR=" + w.c.dir + "/" + indexDir}, "run", "--json")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return
	}
	var rep struct {
		Ingest []struct {
			Paths []struct {
				StorePath string `json:"storePath"`
				Outcome   string `json:"outcome"`
				Reason    string `json:"reason"`
			} `json:"paths"`
		} `json:"ingest"`
	}
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
		w.fail("nixrepo run: %v (exit: %v): %s", jerr, err, stderr.String())
		return
	}
	w.count("run")
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range rep.Ingest {
		for _, p := range r.Paths {
			w.seen.add("run-" + p.Outcome)
			if p.Outcome == "refused" && !w.orphans[p.StorePath] {
				if len(w.failures) < 200 {
					w.failures = append(w.failures, fmt.Sprintf("run refused a valid path %s: %s", p.StorePath, p.Reason))
				}
			}
		}
	}
}

// channel pushes a snapshot through a replica; every fifth round pushes
// one snapshot ID through two replicas at once, with different tarballs
// (at most one may be acknowledged), or the same one (both may).
func (w *writers) channel(i int) {
	id := fmt.Sprintf("s%08d", i)
	type push struct {
		r    *replica
		body []byte
	}
	pushes := []push{{w.replica(), channelTarball(w.t, id+"-a")}}
	switch i % 10 {
	case 0:
		pushes = append(pushes, push{w.replica(), channelTarball(w.t, id+"-b")})
	case 5:
		pushes = append(pushes, push{w.replica(), pushes[0].body})
	}
	var wg sync.WaitGroup
	for _, p := range pushes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, msg := put(p.r.url()+"/channels/team/nixpkgs/"+id, w.c.write, p.body, "application/x-xz")
			if !w.judge("channel snapshot", code, msg) {
				return
			}
			sum := sha256.Sum256(p.body)
			w.mu.Lock()
			defer w.mu.Unlock()
			if old, ok := w.snapshots[id]; ok && old != hex.EncodeToString(sum[:]) {
				w.failures = append(w.failures, fmt.Sprintf("snapshot %s acknowledged with two different tarballs", id))
			}
			w.snapshots[id] = hex.EncodeToString(sum[:])
		}()
	}
	wg.Wait()
}

// check reads the bucket and fails the test with every count that is not 0.
func (w *writers) check() {
	t, c := w.t, w.c
	ctx := context.Background()
	var n struct{ acked, narinfos, fed, snapshots int }
	lost, replaced, doubly := 0, 0, 0
	for sp, hashes := range w.acked {
		n.acked++
		if len(hashes) > 1 {
			doubly++
			w.fail("%s: %d different claims acknowledged", sp, len(hashes))
		}
		p, _ := nix.ParseStorePath(sp)
		b, ok := c.get(c.repo + "/" + p.HashPart() + ".narinfo")
		if !ok {
			lost++
			w.fail("acknowledged %s is not in the repository", sp)
			continue
		}
		ni, err := nix.ParseNarInfo(b)
		if err != nil || !hashes[ni.NarHash.String()] {
			replaced++
			w.fail("acknowledged %s now has another narinfo (%v)", sp, err)
		}
	}
	for sp := range w.fed {
		n.fed++
		p, _ := nix.ParseStorePath(sp)
		if _, ok := c.get(c.repo + "/" + p.HashPart() + ".narinfo"); !ok {
			w.fail("%s was fed to an incoming folder but is not in the repository", sp)
		}
	}
	broken := 0
	err := c.st.List(ctx, c.repo+"/", true, func(o store.Object) error {
		if !strings.HasSuffix(o.Key, ".narinfo") {
			return nil
		}
		n.narinfos++
		if msg := w.checkNarInfo(o.Key); msg != "" {
			broken++
			w.fail("%s", msg)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("listing the repository: %v", err)
	}
	lostSnap := 0
	var ch struct {
		Snapshots []struct {
			ID       string `json:"id"`
			Flavor   string `json:"flavor"`
			FileHash string `json:"fileHash"`
		} `json:"snapshots"`
	}
	if b, ok := c.get(c.repo + "/channels/team/channel.json"); ok {
		if err := json.Unmarshal(b, &ch); err != nil {
			w.fail("channel.json: %v", err)
		}
	} else if len(w.snapshots) > 0 {
		w.fail("no channel.json after %d acknowledged snapshots", len(w.snapshots))
	}
	listed := map[string]string{}
	for _, s := range ch.Snapshots {
		listed[s.ID] = s.FileHash
	}
	for id, sum := range w.snapshots {
		n.snapshots++
		if got, ok := listed[id]; !ok {
			lostSnap++
			w.fail("acknowledged snapshot %s is not in channel.json", id)
		} else if got != sum {
			w.fail("snapshot %s: channel.json says tarball %s, acknowledged %s", id, got, sum)
		}
		b, ok := c.get(c.repo + "/channels/team/nixpkgs/" + id + "/nixexprs.tar.xz")
		if s := sha256.Sum256(b); !ok || hex.EncodeToString(s[:]) != sum {
			w.fail("snapshot %s: the stored tarball is not the acknowledged one (present: %v)", id, ok)
		}
	}
	out, err := c.command(ctx, nil, "verify", "--repo", c.repo).CombinedOutput()
	if err != nil {
		w.fail("nixrepo verify: %v\n%s", err, out)
	}
	kills := 0
	for _, r := range c.replicas {
		kills += r.kills
	}
	t.Logf("activity: %s; %d acknowledged paths, %d fed, %d narinfos in the bucket, %d acknowledged snapshots, %d replica kills",
		w.seen.String(), n.acked, n.fed, n.narinfos, n.snapshots, kills)
	t.Logf("counted: %d acknowledged narinfos lost, %d replaced, %d paths with two claims acknowledged, %d narinfos without NAR/listing/references or with a wrong listing, %d acknowledged snapshots lost",
		lost, replaced, doubly, broken, lostSnap)
	for _, f := range w.failures {
		t.Error(f)
	}
}

// checkNarInfo checks that a narinfo's NAR file, listing and references are
// in the repository and that the NAR and listing are what it claims; "" when
// they are.
func (w *writers) checkNarInfo(key string) string {
	c := w.c
	b, ok := c.get(key)
	if !ok {
		return key + ": listed but unreadable"
	}
	ni, err := nix.ParseNarInfo(b)
	if err != nil {
		return fmt.Sprintf("%s: %v", key, err)
	}
	for _, r := range ni.References {
		if _, ok := c.get(c.repo + "/" + r.HashPart() + ".narinfo"); !ok {
			return fmt.Sprintf("%s: reference %s is not in the repository", ni.StorePath, r)
		}
	}
	narFile, ok := c.get(c.repo + "/" + ni.URL)
	if !ok {
		return fmt.Sprintf("%s: NAR file %s is missing", ni.StorePath, ni.URL)
	}
	rd, err := compress.NewReader(bytes.NewReader(narFile), ni.EffectiveCompression())
	if err != nil {
		return fmt.Sprintf("%s: %v", ni.StorePath, err)
	}
	defer rd.Close()
	res, err := nar.Check(rd, nar.Options{Listing: true})
	if err != nil {
		return fmt.Sprintf("%s: NAR file %s: %v", ni.StorePath, ni.URL, err)
	}
	if nix.SHA256(res.SHA256[:]).String() != ni.NarHash.String() {
		return fmt.Sprintf("%s: NAR file %s does not have the NarHash", ni.StorePath, ni.URL)
	}
	ls, ok := c.get(c.repo + "/" + ni.StorePath.HashPart() + ".ls")
	if !ok {
		return fmt.Sprintf("%s: no listing", ni.StorePath)
	}
	if !sameJSON(ls, res.Listing) {
		return fmt.Sprintf("%s: the listing does not describe the NAR file the narinfo names", ni.StorePath)
	}
	return ""
}

func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
