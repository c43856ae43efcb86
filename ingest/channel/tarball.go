package channel

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	gonar "github.com/nix-community/go-nix/pkg/nar"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/internal/compress"
	"github.com/nixrepo/nixrepo/internal/nix"
)

// Defaults of TarballLimits. nixpkgs' own nixexprs.tar.xz (nixos-25.11)
// holds about 50,000 entries and unpacks to a few hundred MB; these leave
// room for four times the entries and five times the bytes. The tarball
// itself (about 40 MB) is bounded by 4 GiB.
const (
	DefaultMaxTarballEntries      = 200_000
	DefaultMaxTarballUnpackedSize = 2 << 30
	DefaultMaxTarballSize         = 4 << 30
)

// Fixed bounds of one tar entry, those of Linux: a path name or a symlink
// target of at most PATH_MAX bytes, each path component at most NAME_MAX.
// And at most maxTarDepth components: creating an entry through an os.Root
// costs a system call per component, so depth multiplies the cost of every
// entry (measured: 20 times slower per file at depth 2000 than at depth 10,
// which 200,000 entries turn into an hour); channel trees such as nixpkgs
// are a small fraction of that deep.
const (
	maxTarPath      = 4096
	maxTarComponent = 255
	maxTarDepth     = 128
)

// TarballLimits bound what a channel tarball may unpack to; zero fields
// take the defaults.
type TarballLimits struct {
	// MaxEntries bounds the number of tar entries (headers), of any type.
	MaxEntries int
	// MaxUnpackedSize bounds the decompressed tar stream, and so the bytes
	// of the files it unpacks to.
	MaxUnpackedSize int64
	// MaxSize bounds the tarball itself, as pushed, uploaded or downloaded
	// from a channel upstream.
	MaxSize int64
}

func (l TarballLimits) withDefaults() TarballLimits {
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxTarballEntries
	}
	if l.MaxUnpackedSize <= 0 {
		l.MaxUnpackedSize = DefaultMaxTarballUnpackedSize
	}
	if l.MaxSize <= 0 {
		l.MaxSize = DefaultMaxTarballSize
	}
	return l
}

// tarballLimitError is a tarball past one of its limits; it is ingest.ErrTooLarge.
type tarballLimitError struct{ msg string }

func (e *tarballLimitError) Error() string        { return e.msg }
func (e *tarballLimitError) Is(target error) bool { return target == ingest.ErrTooLarge }

func (l TarballLimits) unpackedError() error {
	return &tarballLimitError{fmt.Sprintf("the tarball unpacks to more than %d bytes (max_tarball_unpacked_size)", l.MaxUnpackedSize)}
}

// checkChannelTarball unpacks an xz tarball into a temporary folder the way
// Nix does for a channel or fetchTarball and returns the nix32 sha256 of the
// single top-level directory's NAR (fetchTarball's sha256).
func checkChannelTarball(r io.Reader, lim TarballLimits) (string, error) {
	dr, err := compress.NewReader(bufio.NewReaderSize(r, 1<<20), "xz")
	if err != nil {
		return "", err
	}
	defer dr.Close()
	dir, err := os.MkdirTemp("", "nixrepo-unpack-*")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	top, err := unpackTar(dr, dir, lim)
	if err != nil {
		return "", err
	}
	if err := dr.Close(); err != nil {
		return "", fmt.Errorf("xz: %v", err)
	}
	root := filepath.Join(dir, top)
	if fi, err := os.Lstat(filepath.Join(root, "default.nix")); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("the top-level directory %q has no default.nix", top)
	}
	h := sha256.New()
	bw := bufio.NewWriterSize(h, 1<<16)
	if err := gonar.DumpPath(bw, root); err != nil {
		return "", err
	}
	if err := bw.Flush(); err != nil {
		return "", err
	}
	return nix.EncodeNix32(h.Sum(nil)), nil
}

// capReader fails with the unpacked-size error on the first byte past max.
type capReader struct {
	r    io.Reader
	left int64 // bytes still allowed
	err  error
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, c.err
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, c.err
	}
	return n, err
}

// unpackTar reads the tar stream r into dir, which must be empty, the way
// Nix unpacks a channel, and returns the name of the single top-level
// directory. Everything is created through an os.Root of dir, so no name
// and no symlink reaches outside it, and nothing is ever created over or
// through an earlier entry: only regular files, folders and symlinks are
// taken; absolute names, "..", an entry below a symlink or a file, and an
// entry whose path an earlier entry already took (but for a folder named
// again) are refused. The stream is read to its end, counted against
// lim.MaxUnpackedSize; the entries against lim.MaxEntries.
func unpackTar(r io.Reader, dir string, lim TarballLimits) (string, error) {
	lim = lim.withDefaults()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", err
	}
	defer root.Close()
	cr := &capReader{r: r, left: lim.MaxUnpackedSize, err: lim.unpackedError()}
	u := &unpacker{root: root, tr: tar.NewReader(cr), lim: lim, tree: &node{kind: kindDir}, left: lim.MaxUnpackedSize}
	top, err := u.run()
	if err != nil {
		var le *tarballLimitError
		if errors.As(err, &le) {
			return "", le
		}
		return "", err
	}
	// Whatever follows the end of the archive (block padding) is read
	// too, within the same bound, so the decoder's own checks run.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		var le *tarballLimitError
		if errors.As(err, &le) {
			return "", le
		}
		return "", fmt.Errorf("after the end of the archive: %v", err)
	}
	return top, nil
}

// Kinds of created paths.
const (
	kindDir  = 'd'
	kindFile = 'f'
	kindLink = 'l'
)

var kindName = map[byte]string{kindDir: "folder", kindFile: "file", kindLink: "symlink"}

// node is a created path. The tree holds one name component per entry
// (at most NAME_MAX bytes), so its memory is bounded by the entries, not
// by the length of their full names.
type node struct {
	kind byte
	kids map[string]*node // folders only
}

func (n *node) child(name string) *node { return n.kids[name] }

func (n *node) add(name string, kind byte) *node {
	if n.kids == nil {
		n.kids = map[string]*node{}
	}
	c := &node{kind: kind}
	n.kids[name] = c
	return c
}

type unpacker struct {
	root    *os.Root
	tr      *tar.Reader
	lim     TarballLimits
	tree    *node // every path created so far, from the folder itself
	top     string
	entries int
	left    int64 // file bytes still allowed
}

func (u *unpacker) run() (string, error) {
	for {
		h, err := u.tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if u.entries == 0 {
				return "", fmt.Errorf("not a tar archive: %w", err)
			}
			return "", fmt.Errorf("tar: %w", err)
		}
		u.entries++
		if u.entries > u.lim.MaxEntries {
			return "", &tarballLimitError{fmt.Sprintf("the tarball has more than %d entries (max_tarball_entries)", u.lim.MaxEntries)}
		}
		if err := u.entry(h); err != nil {
			return "", err
		}
	}
	if u.top == "" {
		return "", errors.New("the archive is empty")
	}
	if t := u.tree.child(u.top); t == nil || t.kind != kindDir {
		return "", fmt.Errorf("the top-level entry %q is not a directory", u.top)
	}
	return u.top, nil
}

func (u *unpacker) entry(h *tar.Header) error {
	if len(h.Name) > maxTarPath {
		return fmt.Errorf("an entry name is %d bytes long, more than %d", len(h.Name), maxTarPath)
	}
	if len(h.Linkname) > maxTarPath {
		return fmt.Errorf("entry %q: the link target is %d bytes long, more than %d", h.Name, len(h.Linkname), maxTarPath)
	}
	switch h.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeDir, tar.TypeReg, tar.TypeSymlink:
	case tar.TypeLink:
		return fmt.Errorf("entry %q is a hard link: unsupported type (only files, folders and symlinks)", h.Name)
	default:
		return fmt.Errorf("entry %q has unsupported type %q (only files, folders and symlinks)", h.Name, h.Typeflag)
	}
	name := strings.TrimPrefix(h.Name, "./")
	name = strings.TrimSuffix(name, "/")
	if name == "" || name == "." {
		if h.Typeflag != tar.TypeDir {
			return fmt.Errorf("entry %q: the archive's root is not a directory", h.Name)
		}
		return nil
	}
	if strings.HasPrefix(name, "/") || path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../") {
		return fmt.Errorf("entry %q escapes the archive", h.Name)
	}
	if strings.ContainsRune(name, 0) {
		return fmt.Errorf("entry %q: NUL in the name", h.Name)
	}
	comps := strings.Split(name, "/")
	if len(comps) > maxTarDepth {
		return fmt.Errorf("an entry name has %d path components, more than %d", len(comps), maxTarDepth)
	}
	for _, c := range comps {
		if len(c) > maxTarComponent {
			return fmt.Errorf("entry %q: a name component is %d bytes long, more than %d", h.Name, len(c), maxTarComponent)
		}
	}
	if u.top == "" {
		u.top = comps[0]
	} else if comps[0] != u.top {
		return fmt.Errorf("more than one top-level entry (%q and %q); a channel tarball has exactly one top-level directory", u.top, comps[0])
	}
	if name == u.top && h.Typeflag != tar.TypeDir {
		what := "a file"
		if h.Typeflag == tar.TypeSymlink {
			what = "a symlink"
		}
		return fmt.Errorf("the top-level entry %q is %s, not a directory", name, what)
	}
	parent, err := u.parents(h.Name, comps)
	if err != nil {
		return err
	}
	last := comps[len(comps)-1]
	if old := parent.child(last); old != nil {
		if old.kind == kindDir && h.Typeflag == tar.TypeDir {
			return nil // a folder named again replaces nothing
		}
		return fmt.Errorf("entry %q replaces the earlier %s %q", h.Name, kindName[old.kind], name)
	}
	native := filepath.FromSlash(name)
	switch h.Typeflag {
	case tar.TypeDir:
		if err := u.mkdir(h.Name, native); err != nil {
			return err
		}
		parent.add(last, kindDir)
	case tar.TypeReg:
		if h.Size > u.left {
			return u.lim.unpackedError()
		}
		mode := os.FileMode(0o644)
		if h.Mode&0o111 != 0 {
			mode = 0o755
		}
		// O_EXCL: never open what is already there (nor follow a symlink
		// in its place).
		out, err := u.root.OpenFile(native, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return u.createError(h.Name, err)
		}
		parent.add(last, kindFile)
		n, err := io.Copy(out, u.tr)
		u.left -= n
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("tar: %s: %w", h.Name, err)
		}
	case tar.TypeSymlink:
		if h.Linkname == "" {
			return fmt.Errorf("entry %q is a symlink with an empty target", h.Name)
		}
		if strings.ContainsRune(h.Linkname, 0) {
			return fmt.Errorf("entry %q: NUL in the link target", h.Name)
		}
		if err := u.root.Symlink(h.Linkname, native); err != nil {
			return u.createError(h.Name, err)
		}
		parent.add(last, kindLink)
	}
	return nil
}

// parents walks the folders above the entry's name, creating those no
// entry named, and returns the node of the one holding it.
func (u *unpacker) parents(entry string, comps []string) (*node, error) {
	n := u.tree
	for i, c := range comps[:len(comps)-1] {
		k := n.child(c)
		if k == nil {
			if err := u.mkdir(entry, filepath.Join(comps[:i+1]...)); err != nil {
				return nil, err
			}
			k = n.add(c, kindDir)
		} else if k.kind != kindDir {
			return nil, fmt.Errorf("entry %q lies below the %s %q", entry, kindName[k.kind], strings.Join(comps[:i+1], "/"))
		}
		n = k
	}
	return n, nil
}

func (u *unpacker) mkdir(entry, native string) error {
	if err := u.root.Mkdir(native, 0o755); err != nil {
		return u.createError(entry, err)
	}
	return nil
}

// createError explains a failed create. A name that exists although no
// entry took it (a file system that folds case, say) replaces an earlier
// entry all the same.
func (u *unpacker) createError(entry string, err error) error {
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("entry %q replaces an earlier entry (the name exists on this file system)", entry)
	}
	return fmt.Errorf("entry %q: %v", entry, err)
}
