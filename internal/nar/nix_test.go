package nar_test

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nix-community/go-nix/pkg/nixbase32"

	"github.com/nixrepo/nixrepo/internal/nar"
	"github.com/nixrepo/nixrepo/internal/nixtest"
)

// nixEnv returns the environment for running Nix commands in a test, or
// skips the test when Nix is not installed (but fails it in CI).
func nixEnv(t *testing.T) []string {
	t.Helper()
	for _, tool := range []string{"nix", "nix-build", "nix-store"} {
		nixtest.RequireTool(t, tool)
	}
	return append(os.Environ(),
		"NIX_CONFIG=experimental-features = nix-command\nbuild-users-group =\nsandbox = false\nsubstituters =\nrequire-sigs = true",
		"HOME="+t.TempDir(),
		"XDG_CACHE_HOME="+t.TempDir(),
	)
}

func runCmd(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return string(out)
}

// builderScript makes a tree with directories, symlinks, executables,
// empty files and a file larger than Check's buffer. The builder has no
// PATH: only shell built-ins and absolute paths.
const builderScript = `
set -e
/bin/mkdir -p $out/bin $out/lib/deep/a/b/c $out/share/empty
printf '#!/bin/sh\necho hello\n' > $out/bin/hello
/bin/chmod 0755 $out/bin/hello
/bin/ln -s hello $out/bin/hi
/bin/ln -s ../lib/deep/a $out/bin/deep-link
/bin/ln -s /nix/store/does-not-exist $out/bin/dangling
: > $out/lib/empty-file
: > $out/lib/empty-exec
/bin/chmod 0555 $out/lib/empty-exec
printf 12345678 > $out/lib/eight
printf 123456789 > $out/lib/nine
printf x > "$out/lib/deep/a/b/c/q\"uote"
printf x > "$out/lib/ctl$(printf '\001\037\177')x"
printf x > "$out/lib/$(printf 'tab\there')"
/usr/bin/head -c 700001 /dev/zero > $out/lib/big
`

func buildDerivation(t *testing.T, env []string) string {
	t.Helper()
	if strings.Contains(builderScript, "''") {
		t.Fatal("builder script must not contain two single quotes in a row")
	}
	f := filepath.Join(t.TempDir(), "x.nix")
	expr := `derivation {
  name = "nixrepo-nar-test-1.0";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" ''` + builderScript + `'' ];
}
`
	if err := os.WriteFile(f, []byte(expr), 0o644); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(runCmd(t, env, "nix-build", "--no-out-link", f))
}

// oddTree creates a folder whose names and symlink targets need every kind
// of JSON escaping, plus UTF-8 and invalid UTF-8.
func oddTree(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "nixrepo-odd-names")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "empty-dir"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "sub\\dir", "deeper"), 0o755))
	files := []string{
		`q"uote`, `back\slash`, "ctl\x01\x1f\x7fx", "nl\nx\ttab\rcr\bbs\ffeed",
		"ünï€😀", "bad\xff\xfeutf", "over\xc0\xaflong", "<>&'", " space", "-dash",
		"UPPER", "lower", ".hidden", "...", "sub\\dir/deeper/\x1b[31mred",
	}
	for i, name := range files {
		must(os.WriteFile(filepath.Join(root, name), []byte(strconv.Itoa(i)), 0o644))
	}
	must(os.WriteFile(filepath.Join(root, "exec"), []byte("#!/bin/sh\n"), 0o755))
	must(os.WriteFile(filepath.Join(root, "empty"), nil, 0o644))
	big := make([]byte, 1<<20+3)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	must(os.WriteFile(filepath.Join(root, "big"), big, 0o644))
	must(os.Symlink("tgt\"\\\x01\xff\n", filepath.Join(root, "odd-link")))
	must(os.Symlink("ünï", filepath.Join(root, "utf8-link")))
	return root
}

// TestCheckAgainstNix builds real store paths, lets Nix 2.8 write a binary
// cache with listings, and checks that Check reproduces NarSize, NarHash
// and the .ls file byte for byte.
func TestCheckAgainstNix(t *testing.T) {
	env := nixEnv(t)
	paths := []string{buildDerivation(t, env)}
	paths = append(paths, strings.TrimSpace(runCmd(t, env, "nix-store", "--add", oddTree(t))))

	dir := t.TempDir()
	file := filepath.Join(dir, "nixrepo-single-file")
	if err := os.WriteFile(file, []byte("just one file\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "nixrepo-single-link")
	if err := os.Symlink("some/where", link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, link} {
		paths = append(paths, strings.TrimSpace(runCmd(t, env, "nix-store", "--add", p)))
	}

	cache := t.TempDir()
	runCmd(t, env, "nix", append([]string{"copy", "--to", "file://" + cache + "?write-nar-listing=1&compression=none"}, paths...)...)

	for _, p := range paths {
		hashPart := strings.SplitN(filepath.Base(p), "-", 2)[0]
		t.Run(filepath.Base(p), func(t *testing.T) {
			info := readNarinfo(t, filepath.Join(cache, hashPart+".narinfo"))
			if info["Compression"] != "none" {
				t.Fatalf("Compression %q", info["Compression"])
			}
			wantHash, err := nixbase32.DecodeString(strings.TrimPrefix(info["NarHash"], "sha256:"))
			if err != nil {
				t.Fatal(err)
			}
			wantSize, err := strconv.ParseUint(info["NarSize"], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			wantListing, err := os.ReadFile(filepath.Join(cache, hashPart+".ls"))
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(filepath.Join(cache, info["URL"]))
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(filepath.Join(cache, info["URL"]))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			res, err := nar.Check(f, nar.Options{Listing: true})
			if err != nil {
				t.Fatal(err)
			}
			if res.Size != wantSize {
				t.Errorf("Size %d, NarSize %d", res.Size, wantSize)
			}
			if !bytes.Equal(res.SHA256[:], wantHash) {
				t.Errorf("SHA256 %x, NarHash %x", res.SHA256, wantHash)
			}
			if !bytes.Equal(res.Listing, wantListing) {
				t.Errorf("listing differs from Nix's\n got %q\nwant %q", res.Listing, wantListing)
			}
			if out, ok := rebuild(t, wantListing, data); ok && !bytes.Equal(out, data) {
				t.Errorf("go-nix re-serialisation of Nix's listing differs from the NAR")
			}
		})
	}
}

func readNarinfo(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			m[k] = v
		}
	}
	return m
}
