package nix_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixrepo/nixrepo/internal/nix"
)

// Files under testdata/ were produced by Nix 2.8.0:
//
//	golden/*.narinfo     `nix copy --to file://…` (with ?secret-key= and
//	                     ?compression= variants), `nix store sign` for the
//	                     second signatures; protopkg-doc.narinfo is the
//	                     example in docs/nix-protocols.md §2.4.
//	golden/nix-cache-info written by `nix copy` into a new cache.
//	keys/                throw-away keys from nix-store --generate-binary-cache-key.
//	normalize/X.in       a hand-written narinfo; X.nix-out is the file after
//	                     `nix store sign --store file://… --key-file keys/zzz-2.sec`,
//	                     i.e. Nix's parser followed by Nix's writer.

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testKeys(t *testing.T) ([]nix.SecretKey, []nix.PublicKey) {
	t.Helper()
	var secs []nix.SecretKey
	var pubs []nix.PublicKey
	for _, name := range []string{"test-1", "zzz-2"} {
		sk, err := nix.ParseSecretKey(string(readFile(t, filepath.Join("testdata", "keys", name+".sec"))))
		if err != nil {
			t.Fatal(err)
		}
		pk, err := nix.ParsePublicKey(string(readFile(t, filepath.Join("testdata", "keys", name+".pub"))))
		if err != nil {
			t.Fatal(err)
		}
		if sk.Public().String() != pk.String() {
			t.Fatalf("%s: public key %s does not match the secret key's %s", name, pk, sk.Public())
		}
		secs, pubs = append(secs, sk), append(pubs, pk)
	}
	return secs, pubs
}

// staleSigs names, per golden file, a key whose signature no longer matches
// (the file was edited by hand and then re-signed by Nix with the other key).
var staleSigs = map[string]string{"nix-rewritten-system-ca.narinfo": "test-1"}

func TestGoldenNarInfosRoundTripAndVerify(t *testing.T) {
	secs, pubs := testKeys(t)
	files, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.narinfo"))
	if len(files) < 5 {
		t.Fatalf("only %d golden files", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in := readFile(t, f)
			n, err := nix.ParseNarInfo(in)
			if err != nil {
				t.Fatal(err)
			}
			if out := n.Bytes(); !bytes.Equal(out, in) {
				t.Fatalf("Parse→Bytes changed the file:\n--- Nix\n%s--- ours\n%s", in, out)
			}
			if n.URL != "nar/"+n.FileHash.Nix32()+".nar"+nix.NarExtension(n.Compression) {
				t.Errorf("URL %q is not nar/<FileHash>.nar<ext> = %q", n.URL, "nar/"+n.FileHash.Nix32()+".nar"+nix.NarExtension(n.Compression))
			}
			// Every signature by one of our test keys verifies, and re-signing
			// reproduces it byte for byte.
			for i, sk := range secs {
				var mine []string
				for _, s := range n.Sigs {
					if strings.HasPrefix(s, sk.Name+":") {
						mine = append(mine, s)
					}
				}
				if len(mine) == 0 {
					continue
				}
				if staleSigs[filepath.Base(f)] == sk.Name {
					// The file's references were edited after this signature was made.
					if n.Verify(pubs[i : i+1]) {
						t.Errorf("stale signature by %s verifies", sk.Name)
					}
					continue
				}
				if !n.Verify(pubs[i : i+1]) {
					t.Errorf("signature by %s does not verify", sk.Name)
				}
				c := *n
				c.Sigs = nil
				if err := c.Sign(sk); err != nil {
					t.Fatal(err)
				}
				if c.Sigs[0] != mine[0] {
					t.Errorf("our signature %q differs from Nix's %q", c.Sigs[0], mine[0])
				}
			}
		})
	}
}

func TestGoldenNormalizeMatchesNix(t *testing.T) {
	secs, _ := testKeys(t)
	files, _ := filepath.Glob(filepath.Join("testdata", "normalize", "*.in"))
	if len(files) == 0 {
		t.Fatal("no normalize cases")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			n, err := nix.ParseNarInfo(readFile(t, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Sign(secs[1]); err != nil {
				t.Fatal(err)
			}
			want := readFile(t, strings.TrimSuffix(f, ".in")+".nix-out")
			if got := n.Bytes(); !bytes.Equal(got, want) {
				t.Errorf("ours:\n%s\nNix's:\n%s", got, want)
			}
		})
	}
}

func TestGoldenCacheInfoRoundTrips(t *testing.T) {
	in := readFile(t, filepath.Join("testdata", "golden", "nix-cache-info"))
	c, err := nix.ParseCacheInfo(in)
	if err != nil {
		t.Fatal(err)
	}
	if c != (nix.CacheInfo{StoreDir: nix.StoreDir}) || !bytes.Equal(c.Bytes(), in) {
		t.Errorf("%+v → %q", c, c.Bytes())
	}
}
