package nar

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"strconv"
	"sync"
)

// Limits enforced by Check. Real file systems allow names of at most 255
// bytes and symlink targets of at most 4095 bytes (Linux PATH_MAX), and Nix
// dumps and restores a tree by full paths, which fail beyond PATH_MAX
// (ENAMETOOLONG), so these bounds are generous while still stopping absurd
// inputs early. Nix's own parser has no such bounds.
const (
	MaxNameLen   = 4096     // longest directory entry name, in bytes
	MaxTargetLen = 64 << 10 // longest symlink target, in bytes
	MaxDepth     = 2048     // deepest directory nesting below the top-level node
	MaxPathLen   = 64 << 10 // longest path inside the NAR ("/a/b/…"), in bytes
	narMagic     = "nix-archive-1"
	maxTokenLen  = 64        // longer than any keyword of the grammar
	bufSize      = 256 << 10 // read buffer; must exceed MaxTargetLen+16
)

// DefaultMaxListing is the listing size Check builds at most when
// Options.MaxListing is zero: 16 MiB, about 200,000 entries (a listing
// takes some 80 bytes per entry; /usr/share of a Debian system, 52,520
// entries, lists in 4.2 MB).
const DefaultMaxListing = 16 << 20

// Options selects optional work done by Check.
type Options struct {
	// Listing makes Check build the .ls JSON listing (Result.Listing).
	Listing bool
	// MaxListing bounds the listing, in bytes (zero: DefaultMaxListing).
	// A NAR whose listing would be larger is still checked, but without
	// a listing: Result.Listing is nil and Result.ListingSkipped is set.
	MaxListing int
}

// Result describes a valid NAR.
type Result struct {
	Size    uint64   // number of bytes in the NAR (the whole stream)
	SHA256  [32]byte // SHA-256 of the NAR bytes (Nix's NarHash)
	Listing []byte   // Nix's .ls JSON when Options.Listing is set, else nil
	// ListingSkipped says that a listing was asked for but not built
	// because it would have exceeded Options.MaxListing.
	ListingSkipped bool
}

var bufPool = sync.Pool{New: func() any {
	b := make([]byte, bufSize)
	return &b
}}

// Check reads the whole uncompressed NAR from r, validates it, hashes it and
// counts its bytes. It reads r until EOF: data after the top-level node is
// an error ("trailing data after NAR"), and so is a stream that ends before
// the NAR does (the error wraps io.ErrUnexpectedEOF). Errors are of type
// *Error. Check does not close r and starts no goroutines.
func Check(r io.Reader, opts Options) (Result, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	c := checker{
		src:  r,
		buf:  *bp,
		h:    sha256.New(),
		path: make([]byte, 0, 256),
	}
	if opts.Listing {
		c.ls = make([]byte, 0, 4096)
		c.maxLs = opts.MaxListing
		if c.maxLs <= 0 {
			c.maxLs = DefaultMaxListing
		}
	}
	err := c.run()
	if cap(c.ls) > bigListing && (err != nil || cap(c.ls) > 2*len(c.ls)) {
		// Keep the large buffer for the next listing; the caller gets a
		// right-sized copy (callers hold listings until they commit).
		big := c.ls[:0]
		if err == nil {
			c.ls = append([]byte(nil), c.ls...)
		}
		bigListings.Put(&big)
	}
	if err != nil {
		return Result{}, err
	}
	res := Result{Size: c.base + uint64(c.r), Listing: c.ls, ListingSkipped: c.lsSkipped}
	c.h.Sum(res.SHA256[:0])
	return res, nil
}

// checker holds the state of one Check call.
//
// The bytes buf[r:w] have been read from src but not yet consumed; buf[:hp]
// have been hashed; buf[0] is at stream offset base. Consumed bytes are
// hashed in one large chunk whenever the buffer is recycled, so every byte
// is hashed exactly once straight out of buf.
type checker struct {
	src       io.Reader
	srcErr    error // sticky error from src (io.EOF at the end)
	buf       []byte
	r, w, hp  int
	base      uint64
	h         hash.Hash
	ls        []byte // listing under construction, nil if not wanted or dropped
	maxLs     int    // listing size limit
	lsSkipped bool   // the listing was dropped at maxLs
	// path is the path of the current node, "" for the top level. Past
	// its length, a directory's loop keeps the previous entry's name
	// there, to check the order of the next.
	path []byte
}

// maxNodeListing bounds what one node adds to the listing: an escaped
// symlink target of MaxTargetLen bytes, or name, and the JSON around it.
const maxNodeListing = 6*MaxTargetLen + 64

// lsReserve makes room for n (≤ maxNodeListing) more listing bytes,
// doubling the buffer (so the garbage of growing it is at most its final
// size; append's gentler growth of large slices leaves about four times
// that) but never beyond the limit plus one node: the listing is at most
// maxLs long before a node is added (lsDone), so it never grows twice
// near the limit.
func (c *checker) lsReserve(n int) {
	if cap(c.ls)-len(c.ls) >= n {
		return
	}
	size := max(2*cap(c.ls), len(c.ls)+n)
	size = min(size, max(c.maxLs+maxNodeListing, len(c.ls)+n))
	var grown []byte
	if size > bigListing {
		// A large listing: take a buffer a dropped listing left, so a
		// stream of NARs with listings past the limit (which are built
		// and dropped) does not allocate a limit-sized buffer each.
		if bp, ok := bigListings.Get().(*[]byte); ok && cap(*bp) >= size {
			grown = (*bp)[:len(c.ls)]
		}
	}
	if grown == nil {
		grown = make([]byte, len(c.ls), size)
	}
	copy(grown, c.ls)
	c.ls = grown
}

// bigListing is the size past which listing buffers come from, and go
// back to, bigListings.
const bigListing = 1 << 20

// bigListings holds large listing buffers dropped past the limit.
var bigListings sync.Pool

// lsDone drops the listing when it has grown past its limit. It is
// called after each node's part of the listing, so the listing exceeds
// the limit by at most one node (a name or target, escaped) before it is
// dropped.
func (c *checker) lsDone() {
	if c.ls != nil && len(c.ls) > c.maxLs {
		if cap(c.ls) > bigListing {
			b := c.ls[:0]
			bigListings.Put(&b)
		}
		c.ls = nil
		c.lsSkipped = true
	}
}

func (c *checker) run() error {
	if err := c.magic(); err != nil {
		return err
	}
	if c.ls != nil {
		c.ls = append(c.ls, `{"version":1,"root":`...)
	}
	if err := c.node(0); err != nil {
		return err
	}
	if c.ls != nil {
		c.lsReserve(1)
		c.ls = append(c.ls, '}')
		c.lsDone()
	}
	return c.finish()
}

// off returns the stream offset of the next unconsumed byte.
func (c *checker) off() uint64 { return c.base + uint64(c.r) }

func (c *checker) pathString() string {
	if len(c.path) == 0 {
		return "/"
	}
	return string(c.path)
}

func (c *checker) invalid(off uint64, msg string) error {
	return &Error{Offset: off, Path: c.pathString(), Msg: msg, Err: ErrInvalid}
}

// fill makes at least n (≤ len(buf)) unconsumed bytes available. what names
// the item being read, for the error message.
func (c *checker) fill(n int, what string) error {
	if c.w-c.r >= n {
		return nil
	}
	if c.r+n > len(c.buf) {
		c.recycle()
	}
	for c.w-c.r < n {
		if c.srcErr != nil {
			return c.readFailure(what)
		}
		c.readMore()
	}
	return nil
}

// recycle hashes the consumed bytes and moves the unconsumed ones to the
// start of buf.
func (c *checker) recycle() {
	if c.hp < c.r {
		c.h.Write(c.buf[c.hp:c.r])
	}
	k := copy(c.buf, c.buf[c.r:c.w])
	c.base += uint64(c.r)
	c.r, c.w, c.hp = 0, k, 0
}

// readMore does one successful Read into the free part of buf, or records
// src's error.
func (c *checker) readMore() {
	for range 100 {
		n, err := c.src.Read(c.buf[c.w:])
		if n < 0 || n > len(c.buf)-c.w {
			c.srcErr = fmt.Errorf("reader returned invalid count %d", n)
			return
		}
		c.w += n
		if err != nil {
			c.srcErr = err
			return
		}
		if n > 0 {
			return
		}
	}
	c.srcErr = io.ErrNoProgress
}

func (c *checker) readFailure(what string) error {
	e := &Error{Offset: c.base + uint64(c.w), Path: c.pathString()}
	if c.srcErr == io.EOF {
		e.Msg = "truncated NAR (stream ended in " + what + ")"
		e.Err = io.ErrUnexpectedEOF
	} else {
		e.Msg = "read error in " + what
		e.Err = c.srcErr
	}
	return e
}

func (c *checker) magic() error {
	const want = "\x0d\x00\x00\x00\x00\x00\x00\x00" + narMagic + "\x00\x00\x00"
	if err := c.fill(len(want), "the NAR header"); err != nil {
		got := c.buf[c.r:c.w]
		if !bytes.HasPrefix([]byte(want), got) {
			return &Error{Offset: 0, Msg: "not a NAR (bad magic)", Err: ErrInvalid}
		}
		err.(*Error).Path = ""
		return err
	}
	if string(c.buf[c.r:c.r+len(want)]) != want {
		return &Error{Offset: 0, Msg: "not a NAR (bad magic)", Err: ErrInvalid}
	}
	c.r += len(want)
	return nil
}

// token reads a string of at most maxTokenLen bytes (a keyword of the
// grammar). The result aliases buf and is valid until the next read.
func (c *checker) token(what string) ([]byte, error) {
	return c.str(maxTokenLen, what, false)
}

// str reads a string of at most max bytes (max+8 ≤ len(buf)). The result
// aliases buf and is valid until the next read. what describes the string
// for error messages; quote says to quote it there (it is a literal token).
// what is only formatted on errors, so that reading allocates nothing.
func (c *checker) str(max int, what string, quote bool) ([]byte, error) {
	start := c.off()
	if c.w-c.r < 8 {
		if err := c.fill(8, describe(what, quote)); err != nil {
			return nil, err
		}
	}
	n := binary.LittleEndian.Uint64(c.buf[c.r:])
	if n > uint64(max) {
		if max == maxTokenLen {
			return nil, c.invalid(start, fmt.Sprintf("expected %s, found a %d-byte string", describe(what, quote), n))
		}
		return nil, c.invalid(start, fmt.Sprintf("%s is %d bytes long (limit %d)", what, n, max))
	}
	c.r += 8
	padded := (int(n) + 7) &^ 7
	if c.w-c.r < padded {
		if err := c.fill(padded, describe(what, quote)); err != nil {
			return nil, err
		}
	}
	s := c.buf[c.r : c.r+int(n)]
	for i, b := range c.buf[c.r+int(n) : c.r+padded] {
		if b != 0 {
			return nil, c.invalid(c.off()+uint64(int(n)+i), "non-zero padding after "+describe(what, quote))
		}
	}
	c.r += padded
	return s, nil
}

func describe(what string, quote bool) string {
	if quote {
		return strconv.Quote(what)
	}
	return what
}

// expect reads a token that must equal want.
func (c *checker) expect(want string) error {
	start := c.off()
	tok, err := c.str(maxTokenLen, want, true)
	if err != nil {
		return err
	}
	if string(tok) != want {
		return c.invalid(start, fmt.Sprintf("expected %q, found %q", want, tok))
	}
	return nil
}

func (c *checker) node(depth int) error {
	if err := c.expect("("); err != nil {
		return err
	}
	if err := c.expect("type"); err != nil {
		return err
	}
	start := c.off()
	t, err := c.token("the node type")
	if err != nil {
		return err
	}
	switch string(t) {
	case "regular":
		err = c.regular()
	case "symlink":
		err = c.symlink()
	case "directory":
		return c.directory(depth) // consumes the closing ")"
	default:
		return c.invalid(start, fmt.Sprintf("unknown node type %q", t))
	}
	if err != nil {
		return err
	}
	return c.expect(")")
}

func (c *checker) regular() error {
	start := c.off()
	tok, err := c.token(`"executable" or "contents"`)
	if err != nil {
		return err
	}
	executable := false
	switch string(tok) {
	case "contents":
	case "executable":
		executable = true
		start = c.off()
		v, err := c.token(`the executable marker's value`)
		if err != nil {
			return err
		}
		if len(v) != 0 {
			return c.invalid(start, fmt.Sprintf("executable marker has non-empty value %q", v))
		}
		if err := c.expect("contents"); err != nil {
			return err
		}
	default:
		return c.invalid(start, fmt.Sprintf(`expected "executable" or "contents", found %q`, tok))
	}
	if err := c.fill(8, "the file size"); err != nil {
		return err
	}
	size := binary.LittleEndian.Uint64(c.buf[c.r:])
	c.r += 8
	if c.ls != nil {
		c.lsReserve(128) // the longest form, with two 20-digit numbers, is 97 bytes
		c.ls = append(c.ls, `{"type":"regular","size":`...)
		c.ls = strconv.AppendUint(c.ls, size, 10)
		if executable {
			c.ls = append(c.ls, `,"executable":true`...)
		}
		// Nix omits a zero narOffset, which cannot occur after the header.
		c.ls = append(c.ls, `,"narOffset":`...)
		c.ls = strconv.AppendUint(c.ls, c.off(), 10)
		c.ls = append(c.ls, '}')
		c.lsDone()
	}
	for left := size; left > 0; {
		if c.r == c.w {
			if err := c.fill(1, "file contents"); err != nil {
				return err
			}
		}
		n := uint64(c.w - c.r)
		if n > left {
			n = left
		}
		c.r += int(n)
		left -= n
	}
	pad := int(-size & 7)
	if err := c.fill(pad, "padding after file contents"); err != nil {
		return err
	}
	for i, b := range c.buf[c.r : c.r+pad] {
		if b != 0 {
			return c.invalid(c.off()+uint64(i), "non-zero padding after file contents")
		}
	}
	c.r += pad
	return nil
}

func (c *checker) symlink() error {
	if err := c.expect("target"); err != nil {
		return err
	}
	start := c.off()
	target, err := c.str(MaxTargetLen, "symlink target", false)
	if err != nil {
		return err
	}
	if len(target) == 0 {
		return c.invalid(start, "empty symlink target")
	}
	if bytes.IndexByte(target, 0) >= 0 {
		return c.invalid(start, fmt.Sprintf("symlink target %q contains NUL", target))
	}
	if c.ls != nil {
		c.lsReserve(32 + jsonStringMax(len(target)))
		c.ls = append(c.ls, `{"type":"symlink","target":`...)
		c.ls = appendJSONString(c.ls, target)
		c.ls = append(c.ls, '}')
		c.lsDone()
	}
	return nil
}

func (c *checker) directory(depth int) error {
	if c.ls != nil {
		c.lsReserve(32)
		c.ls = append(c.ls, `{"type":"directory","entries":{`...)
		c.lsDone()
	}
	dirLen := len(c.path)
	// prev is the previous entry's name. It aliases c.path past its
	// length, where the entry's path left it, and stays valid until the
	// next name is appended to c.path.
	var prev []byte
	first := true
	for {
		start := c.off()
		tok, err := c.token(`"entry" or ")"`)
		if err != nil {
			return err
		}
		if string(tok) == ")" {
			break
		}
		if string(tok) != "entry" {
			return c.invalid(start, fmt.Sprintf(`expected "entry" or ")", found %q`, tok))
		}
		if err := c.expect("("); err != nil {
			return err
		}
		if err := c.expect("name"); err != nil {
			return err
		}
		start = c.off()
		name, err := c.str(MaxNameLen, "entry name", false)
		if err != nil {
			return err
		}
		if len(name) == 0 || string(name) == "." || string(name) == ".." ||
			bytes.IndexByte(name, '/') >= 0 || bytes.IndexByte(name, 0) >= 0 {
			return c.invalid(start, fmt.Sprintf("invalid entry name %q", name))
		}
		if !first {
			switch bytes.Compare(name, prev) {
			case 0:
				return c.invalid(start, fmt.Sprintf("duplicate entry %q", name))
			case -1:
				return c.invalid(start, fmt.Sprintf("entries not sorted (%q after %q)", name, prev))
			}
		}
		if dirLen+1+len(name) > MaxPathLen {
			return c.invalid(start, fmt.Sprintf("path of entry %q is longer than %d bytes", name, MaxPathLen))
		}
		if c.ls != nil {
			c.lsReserve(2 + jsonStringMax(len(name)))
			if !first {
				c.ls = append(c.ls, ',')
			}
			c.ls = appendJSONString(c.ls, name)
			c.ls = append(c.ls, ':')
			c.lsDone()
		}
		first = false
		c.path = append(c.path, '/')
		c.path = append(c.path, name...)
		start = c.off()
		if err := c.expect("node"); err != nil {
			return err
		}
		if depth+1 > MaxDepth {
			return c.invalid(start, fmt.Sprintf("directories nested deeper than %d levels", MaxDepth))
		}
		if err := c.node(depth + 1); err != nil {
			return err
		}
		prev = c.path[dirLen+1:]
		c.path = c.path[:dirLen]
		if err := c.expect(")"); err != nil {
			return err
		}
	}
	if c.ls != nil {
		c.lsReserve(2)
		c.ls = append(c.ls, "}}"...)
		c.lsDone()
	}
	return nil
}

// finish checks that the stream ends right after the top-level node and
// hashes the last bytes.
func (c *checker) finish() error {
	if c.r < c.w {
		return &Error{Offset: c.off(), Msg: "trailing data after NAR", Err: ErrInvalid}
	}
	if c.srcErr == nil {
		c.recycle()
		c.readMore()
		if c.w > 0 {
			return &Error{Offset: c.off(), Msg: "trailing data after NAR", Err: ErrInvalid}
		}
	}
	if c.srcErr != io.EOF {
		return &Error{Offset: c.off(), Msg: "read error after the end of the NAR", Err: c.srcErr}
	}
	c.h.Write(c.buf[c.hp:c.r])
	c.hp = c.r
	return nil
}
