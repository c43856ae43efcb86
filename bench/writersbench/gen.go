package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nix-community/go-nix/pkg/nixbase32"
)

// narOfFile is the NAR (Nix's archive) of one regular file holding data:
// every field a length-prefixed string padded to 8 bytes.
func narOfFile(data []byte) []byte {
	var b bytes.Buffer
	field := func(p []byte) {
		var l [8]byte
		binary.LittleEndian.PutUint64(l[:], uint64(len(p)))
		b.Write(l[:])
		b.Write(p)
		b.Write(make([]byte, (8-len(p)%8)%8))
	}
	for _, s := range []string{"nix-archive-1", "(", "type", "regular", "contents"} {
		field([]byte(s))
	}
	field(data)
	field([]byte(")"))
	return b.Bytes()
}

// randomHashPart is a store path hash part: 32 nix32 characters.
func randomHashPart() string {
	var b [20]byte
	rand.Read(b[:])
	return nixbase32.EncodeToString(b[:])
}

func nix32sha256(b []byte) string {
	h := sha256.Sum256(b)
	return nixbase32.EncodeToString(h[:])
}

// gen writes a binary cache of n paths as `nix copy --to file://` would
// (unsigned narinfos, uncompressed NAR files under nar/). With refs, every
// third path references the path before it and the path at half its index,
// so the closure has chains and shared references; references always come
// earlier in the list.
func gen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	out := fs.String("out", "", "folder of the binary cache")
	n := fs.Int("n", 1000, "paths")
	refs := fs.Bool("refs", false, "add references between paths")
	fs.Parse(args)
	if *out == "" || *n < 1 {
		return fmt.Errorf("gen: -out and -n ≥ 1 are required")
	}
	if err := os.MkdirAll(filepath.Join(*out, "nar"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*out, "nix-cache-info"), []byte("StoreDir: /nix/store\n"), 0o644); err != nil {
		return err
	}
	names := make([]string, *n) // HASH-NAME of each path
	for i := range *n {
		h := randomHashPart()
		names[i] = fmt.Sprintf("%s-wb%d-1.%d", h, i, i%7)
		data := fmt.Appendf(nil, "#!/bin/sh\necho %s\n%s", names[i], strings.Repeat("# filler\n", i%40))
		nar := narOfFile(data)
		fh := nix32sha256(nar) // Compression: none: the file is the NAR
		var rs []string
		if *refs && i > 0 && i%3 == 0 {
			rs = append(rs, names[i-1])
			if j := i / 2; j != i-1 {
				rs = append(rs, names[j])
			}
		}
		info := fmt.Sprintf("StorePath: /nix/store/%s\nURL: nar/%s.nar\nCompression: none\nFileHash: sha256:%s\nFileSize: %d\nNarHash: sha256:%s\nNarSize: %d\nReferences: %s\n",
			names[i], fh, fh, len(nar), fh, len(nar), strings.Join(rs, " "))
		if err := os.WriteFile(filepath.Join(*out, "nar", fh+".nar"), nar, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(*out, h+".narinfo"), []byte(info), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// runcheck reads the JSON report of `nixrepo run --json` and checks that
// its ingest accepted and consumed n paths and refused none; it prints the
// ingest's seconds (summed over sources).
func runcheck(args []string) error {
	fs := flag.NewFlagSet("runcheck", flag.ExitOnError)
	file := fs.String("json", "", "the report")
	n := fs.Int("n", 0, "paths the incoming folder held")
	fs.Parse(args)
	b, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	var rep struct {
		Ingest []struct {
			Source   string  `json:"source"`
			Accepted int     `json:"accepted"`
			Present  int     `json:"present"`
			Refused  int     `json:"refused"`
			Consumed int     `json:"consumed"`
			Duration float64 `json:"duration"`
			Paths    []struct {
				StorePath string `json:"storePath"`
				Outcome   string `json:"outcome"`
				Reason    string `json:"reason"`
			} `json:"paths"`
		} `json:"ingest"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("runcheck: %s: %v", *file, err)
	}
	accepted, consumed, secs := 0, 0, 0.0
	for _, r := range rep.Ingest {
		if r.Refused > 0 {
			for _, p := range r.Paths {
				if p.Outcome == "refused" {
					return fmt.Errorf("runcheck: %s refused %s: %s", r.Source, p.StorePath, p.Reason)
				}
			}
			return fmt.Errorf("runcheck: %s refused %d paths", r.Source, r.Refused)
		}
		accepted += r.Accepted
		consumed += r.Consumed
		secs += r.Duration
	}
	if accepted != *n || consumed != *n {
		return fmt.Errorf("runcheck: %d paths accepted and %d consumed, want %d", accepted, consumed, *n)
	}
	fmt.Printf("%.3f\n", secs)
	return nil
}
