package main

// gen: the synthetic bucket.
//
// Input (stdin): lines "name<TAB>version<TAB>description", e.g. Debian's
// package list. Names become Nix package names as they are; versions are
// reduced to their upstream part (no epoch, no Debian revision, nothing
// after '+' or '~'); names that Nix's parseDrvName would not split back are
// skipped. Each package gets a geometric number of versions (the Debian one,
// then bumped ones), each version 1–5 outputs (out plus dev, lib, man, doc,
// bin), 10% of versions a .drv and 3% a source tarball. When the list runs
// out, names come again with interpreter prefixes (python3.12-, perl5.40-,
// …), as in nixpkgs. Paths go to repository "main" (85%) and/or "staging"
// (30%); "main" also gets a channel "nixpkgs-unstable" with one snapshot
// whose store-paths.xz lists the newest version of every package and whose
// packages.json.br carries the descriptions. DIR/names.txt lists the
// package names (for search queries).

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/ulikunitz/xz"

	"github.com/nixrepo/nixrepo/index"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

type srcPkg struct{ name, version, desc string }

var (
	upstreamRE = regexp.MustCompile(`^[0-9][0-9A-Za-z.]*`)
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+._-]*$`)
	prefixes   = []string{"", "python3.12-", "python3.11-", "perl5.40-", "ocaml5.2-", "lua5.4-", "ruby3.3-", "haskell-ghc9.6-"}
	extraOuts  = []string{"dev", "lib", "man", "doc", "bin"}
)

func upstream(v string) string {
	if i := strings.IndexByte(v, ':'); i >= 0 {
		v = v[i+1:]
	}
	if i := strings.LastIndexByte(v, '-'); i > 0 {
		v = v[:i]
	}
	if i := strings.IndexAny(v, "+~"); i >= 0 {
		v = v[:i]
	}
	return strings.TrimRight(upstreamRE.FindString(v), ".")
}

// bump returns the i-th later version: the last number raised by i.
func bump(v string, i int) string {
	if i == 0 {
		return v
	}
	j := len(v)
	for j > 0 && v[j-1] >= '0' && v[j-1] <= '9' {
		j--
	}
	if j == len(v) {
		return v + "." + strconv.Itoa(i)
	}
	n, err := strconv.Atoi(v[j:])
	if err != nil || n > 1<<30 {
		return v + "." + strconv.Itoa(i)
	}
	return v[:j] + strconv.Itoa(n+i)
}

type path struct {
	name    string
	repos   byte // 1 main, 2 staging
	narSize uint64
}

func gen(args []string) {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	out := fs.String("out", "", "bucket folder to create")
	nPaths := fs.Int("paths", 100000, "number of store paths")
	seed := fs.Uint64("seed", 1, "random seed")
	workers := fs.Int("workers", 4, "parallel writers")
	fs.Parse(args)
	if *out == "" {
		fail(fmt.Errorf("gen: -out DIR is required"))
	}
	start := time.Now()
	var list []srcPkg
	seen := map[string]bool{}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), "\t", 3)
		if len(f) < 2 {
			continue
		}
		name, ver := f[0], upstream(f[1])
		if ver == "" || seen[name] || !nameRE.MatchString(name) {
			continue
		}
		if p, v := index.SplitName(name + "-" + ver); p != name || v != ver {
			continue
		}
		seen[name] = true
		d := ""
		if len(f) == 3 {
			d = f[2]
		}
		list = append(list, srcPkg{name, ver, d})
	}
	if len(list) == 0 {
		fail(fmt.Errorf("no usable package in the input"))
	}
	rng := rand.New(rand.NewPCG(*seed, 42))
	rng.Shuffle(len(list), func(i, j int) { list[i], list[j] = list[j], list[i] })

	var paths []path
	type pkgInfo struct {
		name, latest, desc string
	}
	var pkgs []pkgInfo
	for round := 0; len(paths) < *nPaths; round++ {
		if round >= len(prefixes) {
			fail(fmt.Errorf("the list has too few names for %d paths", *nPaths))
		}
		for _, sp := range list {
			if len(paths) >= *nPaths {
				break
			}
			name := prefixes[round] + sp.name
			k := 1 + int(math.Floor(-math.Log(1-rng.Float64())*1.6)) // geometric, mean ≈ 2.6
			k = min(k, 40)
			var latest string
			for i := 0; i < k && len(paths) < *nPaths; i++ {
				v := bump(sp.version, i)
				latest = v
				repos := byte(0)
				if rng.Float64() < 0.85 {
					repos |= 1
				}
				if rng.Float64() < 0.3 || repos == 0 {
					repos |= 2
				}
				base := name + "-" + v
				nOut := 1 + rng.IntN(5)
				outs := []string{""}
				for _, j := range rng.Perm(len(extraOuts))[:nOut-1] {
					outs = append(outs, "-"+extraOuts[j])
				}
				for _, o := range outs {
					paths = append(paths, path{base + o, repos, uint64(1000 + rng.IntN(50<<20))})
				}
				if rng.Float64() < 0.10 {
					paths = append(paths, path{base + ".drv", repos, 2000})
				}
				if rng.Float64() < 0.03 {
					paths = append(paths, path{base + ".tar.gz", repos, 1 << 20})
				}
			}
			pkgs = append(pkgs, pkgInfo{name, latest, sp.desc})
		}
	}
	paths = paths[:*nPaths]

	// Store paths: random hashes; references to earlier paths.
	hashes := make([]string, len(paths))
	for i := range hashes {
		var b [20]byte
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		hashes[i] = nix.EncodeNix32(b[:])
	}
	for _, r := range []string{"main", "staging"} {
		if err := os.MkdirAll(filepath.Join(*out, r, "nar"), 0o755); err != nil {
			fail(err)
		}
		info := nix.CacheInfo{StoreDir: nix.StoreDir, WantMassQuery: true, Priority: map[string]int{"main": 30, "staging": 35}[r]}
		os.WriteFile(filepath.Join(*out, r, store.CacheInfoFile), info.Bytes(), 0o644)
	}
	sig := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 64))
	var wg sync.WaitGroup
	errs := make(chan error, *workers)
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(*seed+uint64(w), 7))
			for i := w; i < len(paths); i += *workers {
				p := paths[i]
				sp, err := nix.ParseStorePath(nix.StoreDir + "/" + hashes[i] + "-" + p.name)
				if err != nil {
					errs <- fmt.Errorf("%s: %w", p.name, err)
					return
				}
				var fh, nh [32]byte
				for j := range fh {
					fh[j], nh[j] = byte(r.Uint32()), byte(r.Uint32())
				}
				ni := nix.NarInfo{StorePath: sp, Compression: "xz", FileHash: nix.SHA256(fh[:]), FileSize: p.narSize / 3,
					NarHash: nix.SHA256(nh[:]), NarSize: p.narSize, Sigs: []string{"main-1:" + sig}}
				ni.URL = store.NarFile(ni.FileHash, "xz")
				if i > 0 {
					for n := r.IntN(8); n > 0; n-- {
						j := r.IntN(i)
						ref, _ := nix.ParseStorePath(nix.StoreDir + "/" + hashes[j] + "-" + paths[j].name)
						ni.References = append(ni.References, ref)
					}
				}
				if !strings.HasSuffix(p.name, ".drv") {
					ni.Deriver = hashes[(i+1)%len(hashes)] + "-" + strings.TrimSuffix(p.name, "-dev") + ".drv"
				}
				b := ni.Bytes()
				for bit, repo := range []string{"main", "staging"} {
					if p.repos&(1<<bit) != 0 {
						if err := os.WriteFile(filepath.Join(*out, repo, store.NarInfoFile(hashes[i])), b, 0o644); err != nil {
							errs <- err
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		fail(err)
	}

	// Channel snapshot: newest version of every package, with descriptions.
	var spaths []string
	latest := map[string]bool{}
	for _, p := range pkgs {
		latest[p.name+"-"+p.latest] = true
	}
	for i, p := range paths {
		if latest[p.name] {
			spaths = append(spaths, nix.StoreDir+"/"+hashes[i]+"-"+p.name)
		}
	}
	var xzBuf bytes.Buffer
	xw, _ := xz.NewWriter(&xzBuf)
	xw.Write([]byte(strings.Join(spaths, "\n") + "\n"))
	xw.Close()
	meta := map[string]any{}
	for _, p := range pkgs {
		attr := strings.ReplaceAll(strings.ReplaceAll(p.name, ".", "_"), "-", "_")
		meta[attr] = map[string]any{"name": p.name + "-" + p.latest, "pname": p.name, "version": p.latest,
			"meta": map[string]any{"description": p.desc, "license": map[string]any{"spdxId": "MIT"}}}
	}
	var brBuf bytes.Buffer
	bw := brotli.NewWriterLevel(&brBuf, 5)
	json.NewEncoder(bw).Encode(map[string]any{"version": 2, "packages": meta})
	bw.Close()
	snap := filepath.Join(*out, "main", "channels", "nixpkgs-unstable", "nixpkgs", "26.05pre1")
	os.MkdirAll(snap, 0o755)
	os.WriteFile(filepath.Join(snap, "nixexprs.tar.xz"), []byte("placeholder"), 0o644)
	os.WriteFile(filepath.Join(snap, "store-paths.xz"), xzBuf.Bytes(), 0o644)
	os.WriteFile(filepath.Join(snap, "packages.json.br"), brBuf.Bytes(), 0o644)
	ch, _ := json.Marshal(map[string]any{"name": "nixpkgs-unstable", "latest": "26.05pre1", "snapshots": []any{map[string]any{
		"id": "26.05pre1", "flavor": "nixpkgs", "narHash": "0000000000000000000000000000000000000000000000000000",
		"uploaded": time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), "files": []string{"nixexprs.tar.xz", "store-paths.xz", "packages.json.br"}}}})
	os.WriteFile(filepath.Join(*out, "main", "channels", "nixpkgs-unstable", "channel.json"), ch, 0o644)

	var names bytes.Buffer
	for _, p := range pkgs {
		names.WriteString(p.name + "\n")
	}
	if err := os.WriteFile(filepath.Join(*out, "names.txt"), names.Bytes(), 0o644); err != nil {
		fail(err)
	}
	fmt.Printf("gen: %d store paths, %d packages, %d snapshot paths in %s (%.1fs)\n",
		len(paths), len(pkgs), len(spaths), *out, time.Since(start).Seconds())
}
