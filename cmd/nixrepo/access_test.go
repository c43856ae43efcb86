package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// accessConfig: a private local repository nix-local, a public local one
// pub, a remote one and a virtual one over the locals, all in ./store.
const accessConfig = `version = 1
[store]
url = "file://./store"
[[repo]]
name = "nix-local"
type = "local"
signing_key_file = "keys/nix-local.sec"
generate_key = true
incoming = ["file://./in"]
keep_incoming = true
[[repo]]
name = "pub"
type = "local"
signing_key_file = "keys/pub.sec"
generate_key = true
public = true
[[repo]]
name = "up"
type = "remote"
[[repo]]
name = "all"
type = "virtual"
members = ["nix-local", "pub"]
`

func accessDir(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "nixrepo.toml"), []byte(accessConfig+extra), 0o644); err != nil {
		t.Fatal(err)
	}
	copyDir(t, filepath.Join("..", "..", "testdata", "sample-cache"), filepath.Join(dir, "in"))
	return dir
}

// stored lists the files under store/<repo>.
func stored(t *testing.T, dir, repo string) []string {
	t.Helper()
	var files []string
	filepath.Walk(filepath.Join(dir, "store", repo), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	return files
}

func TestIngestRefusesVirtualAndRemoteRepositories(t *testing.T) {
	dir := accessDir(t, "")
	for repo, want := range map[string]string{
		"all": "nixrepo: ingest: repository all is a virtual repository: ingest into a local repository",
		"up":  "nixrepo: ingest: repository up is a remote repository: ingest into a local repository",
	} {
		out, errs, code := nixrepo(t, dir, "ingest", "--repo", repo, "file://./in")
		if code != 2 || !strings.Contains(errs, want) {
			t.Errorf("ingest --repo %s: exit %d, stdout %q, stderr %q; want exit 2 and %q", repo, code, out, errs, want)
		}
		if files := stored(t, dir, repo); len(files) != 0 {
			t.Errorf("ingest --repo %s stored %v", repo, files)
		}
	}
	if out := mustRun(t, dir, "ingest", "--repo", "nix-local", "file://./in"); !strings.Contains(out, "3 accepted") {
		t.Errorf("ingest --repo nix-local:\n%s", out)
	}
}

func TestChannelPushRefusesVirtualRepository(t *testing.T) {
	dir := accessDir(t, "")
	tarball := filepath.Join(dir, "nixexprs.tar.xz")
	writeChannelTarball(t, tarball, "team", "hi")
	out, errs, code := nixrepo(t, dir, "channel", "push", "--repo", "all", "--channel", "team", "--snapshot", "1.0", tarball)
	want := "nixrepo: channel push: repository all is a virtual repository: push channels to a local repository"
	if code != 2 || !strings.Contains(errs, want) {
		t.Errorf("channel push --repo all: exit %d, stdout %q, stderr %q; want exit 2 and %q", code, out, errs, want)
	}
	if files := stored(t, dir, "all"); len(files) != 0 {
		t.Errorf("channel push --repo all stored %v", files)
	}
	mustRun(t, dir, "channel", "push", "--repo", "nix-local", "--channel", "team", "--snapshot", "1.0", tarball)
}

func TestSearchRefusesOversizedQuery(t *testing.T) {
	dir := accessDir(t, "")
	mustRun(t, dir, "run")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{strings.Repeat("a", 3000)}, "nixrepo: search: search query is 3000 characters long; the limit is 256 characters ([search] max_query_length)"},
		{strings.Fields(strings.Repeat("ab ", 17)), "nixrepo: search: search query has 17 words; the limit is 16 words ([search] max_terms)"},
	} {
		out, errs, code := nixrepo(t, dir, append([]string{"search"}, tc.args...)...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("search %.30q…: exit %d, stdout %.200q, stderr %.300q; want exit 2 and %q", strings.Join(tc.args, " "), code, out, errs, tc.want)
		}
	}
	mustRun(t, dir, "search", strings.Repeat("a", 256))

	// The limits are [search]'s.
	dir = accessDir(t, "[search]\nmax_query_length = 4\nmax_terms = 1\n")
	mustRun(t, dir, "run")
	for args, want := range map[string]string{"hello": "the limit is 4 characters ([search] max_query_length)", "a b": "the limit is 1 word ([search] max_terms)"} {
		if _, errs, code := nixrepo(t, dir, append([]string{"search"}, strings.Fields(args)...)...); code != 2 || !strings.Contains(errs, want) {
			t.Errorf("search %s with tight limits: exit %d, stderr %q; want exit 2 and %q", args, code, errs, want)
		}
	}
	mustRun(t, dir, "search", "hell")
}

// TestPublishedSiteShowsOnlyPublicRepositories: the sample cache ingested
// into the private nix-local is on no file of the published site (pages,
// search shards) unless [site] include_private says so.
func TestPublishedSiteShowsOnlyPublicRepositories(t *testing.T) {
	hashes := []string{"73jpyncq1iidbczv5idvcz9h35map68f", "8yhfprxp9fym8hjpsb3z3hzsfbrk1z42", "wp6h81bmqyf5awd57zi4icjq52bzb9kh"}
	siteText := func(dir string) string {
		var b strings.Builder
		filepath.Walk(filepath.Join(dir, "store", "_site"), func(p string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				data, _ := os.ReadFile(p)
				b.WriteString(p + "\n")
				b.Write(data)
			}
			return nil
		})
		return b.String()
	}
	dir := accessDir(t, "")
	mustRun(t, dir, "run")
	text := siteText(dir)
	if !strings.Contains(text, "index.html") {
		t.Fatal("no site was published")
	}
	for _, m := range append(hashes, "nix-local") {
		if strings.Contains(text, m) {
			t.Errorf("the site mentions %s of the private repository nix-local", m)
		}
	}
	// Explicitly included, nix-local is on the site: the grep can fail.
	dir = accessDir(t, "[site]\ninclude_private = true\n")
	mustRun(t, dir, "run")
	text = siteText(dir)
	for _, h := range hashes {
		if !strings.Contains(text, h) {
			t.Errorf("with include_private the site lacks %s", h)
		}
	}
}
