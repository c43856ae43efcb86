package main

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/nix-community/go-nix/pkg/nixbase32"
	"github.com/ulikunitz/xz"
)

// narWriter writes the NAR format (Nix's archive): every field a
// length-prefixed string padded to 8 bytes.
type narWriter struct {
	w   io.Writer
	err error
}

func (n *narWriter) str(s string) {
	n.bytes([]byte(s))
}

func (n *narWriter) bytes(b []byte) {
	if n.err != nil {
		return
	}
	var l [8]byte
	binary.LittleEndian.PutUint64(l[:], uint64(len(b)))
	if _, n.err = n.w.Write(l[:]); n.err != nil {
		return
	}
	if _, n.err = n.w.Write(b); n.err != nil {
		return
	}
	n.pad(int64(len(b)))
}

func (n *narWriter) pad(size int64) {
	if p := (8 - size%8) % 8; p > 0 && n.err == nil {
		_, n.err = n.w.Write(make([]byte, p))
	}
}

// regular writes a NAR of one regular file.
func (n *narWriter) regular(data []byte) {
	n.str("nix-archive-1")
	n.str("(")
	n.str("type")
	n.str("regular")
	n.str("contents")
	n.bytes(data)
	n.str(")")
}

// zeroFile writes a NAR of one regular file of size zero bytes, streamed.
func (n *narWriter) zeroFile(size int64) {
	n.str("nix-archive-1")
	n.str("(")
	n.str("type")
	n.str("regular")
	n.str("contents")
	if n.err != nil {
		return
	}
	var l [8]byte
	binary.LittleEndian.PutUint64(l[:], uint64(size))
	if _, n.err = n.w.Write(l[:]); n.err != nil {
		return
	}
	zero := make([]byte, 1<<20)
	for left := size; left > 0 && n.err == nil; {
		c := min(left, int64(len(zero)))
		_, n.err = n.w.Write(zero[:c])
		left -= c
	}
	n.pad(size)
	n.str(")")
}

// symlinks writes a NAR of a folder of count symlinks (l00000, l00001, …)
// whose targets are targetLen bytes each.
func (n *narWriter) symlinks(count, targetLen int) {
	target := strings.Repeat("t", targetLen)
	n.str("nix-archive-1")
	n.str("(")
	n.str("type")
	n.str("directory")
	for i := range count {
		n.str("entry")
		n.str("(")
		n.str("name")
		n.str(fmt.Sprintf("l%05d", i))
		n.str("node")
		n.str("(")
		n.str("type")
		n.str("symlink")
		n.str("target")
		n.str(target)
		n.str(")")
		n.str(")")
	}
	n.str(")")
}

// counter counts the bytes written through it.
type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// narFile is a NAR file as stored (compressed or not) with what its narinfo
// says about it.
type narFile struct {
	Data        []byte // the file's bytes
	Compression string // "none", "zstd"
	FileHash    string // nix32 sha256 of Data
	NarHash     string // nix32 sha256 of the NAR
	NarSize     int64
}

// URL is the file's name in a binary cache.
func (f *narFile) URL() string {
	ext := ".nar"
	if f.Compression == "zstd" {
		ext = ".nar.zst"
	}
	return "nar/" + f.FileHash + ext
}

// makeNar runs write with a narWriter and returns the NAR file, zstd
// compressed when compress is set.
func makeNar(compress bool, write func(*narWriter)) (*narFile, error) {
	var file bytes.Buffer
	narHash := sha256.New()
	size := &counter{}
	dst := io.Writer(&file)
	var enc *zstd.Encoder
	if compress {
		var err error
		if enc, err = zstd.NewWriter(&file, zstd.WithEncoderConcurrency(1)); err != nil {
			return nil, err
		}
		dst = enc
	}
	n := &narWriter{w: io.MultiWriter(dst, narHash, size)}
	write(n)
	if n.err != nil {
		return nil, n.err
	}
	f := &narFile{Compression: "none", NarHash: nix32(narHash), NarSize: size.n}
	if enc != nil {
		if err := enc.Close(); err != nil {
			return nil, err
		}
		f.Compression = "zstd"
	}
	f.Data = file.Bytes()
	fh := sha256.Sum256(f.Data)
	f.FileHash = nixbase32.EncodeToString(fh[:])
	return f, nil
}

func nix32(h hash.Hash) string { return nixbase32.EncodeToString(h.Sum(nil)) }

// randomHashPart is a store path hash part: 32 nix32 characters.
func randomHashPart() string {
	var b [20]byte
	rand.Read(b[:])
	return nixbase32.EncodeToString(b[:])
}

// randomFileHash is a FileHash that no file has: a random nix32 sha256.
func randomFileHash() string {
	var b [32]byte
	rand.Read(b[:])
	return nixbase32.EncodeToString(b[:])
}

// narInfo is the unsigned narinfo of f as the store path
// /nix/store/HASH-NAME (no references): the server signs it.
func narInfo(hashPart, name string, f *narFile) []byte {
	return fmt.Appendf(nil, "StorePath: /nix/store/%s-%s\nURL: %s\nCompression: %s\nFileHash: sha256:%s\nFileSize: %d\nNarHash: sha256:%s\nNarSize: %d\nReferences: \n",
		hashPart, name, f.URL(), f.Compression, f.FileHash, len(f.Data), f.NarHash, f.NarSize)
}

// tarEntry is one entry of a channel tarball made by makeTarball.
type tarEntry struct {
	name     string
	typ      byte
	linkname string
	data     []byte
	size     int64 // a regular file of size zero bytes, when data is nil
}

// makeTarball writes entries as an xz-compressed tar stream.
func makeTarball(entries []tarEntry) ([]byte, error) {
	var out bytes.Buffer
	xw, err := xz.NewWriter(&out)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(xw)
	zero := make([]byte, 1<<20)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.linkname, Mode: 0o644}
		switch e.typ {
		case tar.TypeDir:
			h.Mode = 0o755
		case tar.TypeReg:
			h.Size = int64(len(e.data))
			if e.data == nil {
				h.Size = e.size
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if e.typ != tar.TypeReg {
			continue
		}
		if e.data != nil {
			if _, err := tw.Write(e.data); err != nil {
				return nil, err
			}
			continue
		}
		for left := e.size; left > 0; {
			c := min(left, int64(len(zero)))
			if _, err := tw.Write(zero[:c]); err != nil {
				return nil, err
			}
			left -= c
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := xw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// channelTarball is a usable channel tarball: one top folder with a
// default.nix.
func channelTarball(top string) ([]byte, error) {
	return makeTarball([]tarEntry{
		{name: top + "/", typ: tar.TypeDir},
		{name: top + "/default.nix", typ: tar.TypeReg, data: []byte("{ ... }: { hello = \"bench\"; }\n")},
	})
}
