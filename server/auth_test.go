package server_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/server"
)

const (
	realisationA = "realisations/sha256:" + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" + "!out.doi"
	realisationB = "realisations/sha256:" + "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" + "!out.doi"
	realisationC = "realisations/sha256:" + "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc" + "!dev.doi"
)

// routeCase is one kind of object: one present after authFixture, one
// missing, and a valid upload.
type routeCase struct {
	kind    string
	present string
	missing string // "" when the kind is never missing
	putRel  string
	putBody []byte
}

func routeCases(t testing.TB) []routeCase {
	return []routeCase{
		{kind: "nix-cache-info", present: "nix-cache-info", putRel: "nix-cache-info", putBody: []byte("StoreDir: /nix/store\n")},
		{kind: "narinfo", present: dataHash + ".narinfo", missing: helloHash + ".narinfo",
			putRel: libHash + ".narinfo", putBody: sample(t, libHash+".narinfo")},
		{kind: "ls", present: dataHash + ".ls", missing: helloHash + ".ls",
			putRel: libHash + ".ls", putBody: []byte(`{"version":1,"root":{"type":"regular","size":5}}`)},
		{kind: "nar", present: dataNar, missing: helloNar, putRel: helloNar, putBody: sample(t, helloNar)},
		{kind: "log", present: "log/" + dataDrv, missing: "log/" + helloDrv,
			putRel: "log/" + libDrv, putBody: []byte("building greeting-lib\ndone\n")},
		{kind: "realisation", present: realisationA, missing: realisationB,
			putRel: realisationC, putBody: []byte(`{"dependentRealisations":{},"id":"sha256:cccc!dev","outPath":"` + libHash + `-greeting-lib-0.3","signatures":[]}`)},
	}
}

// authFixture fills repository r with: greeting-data (NAR, narinfo and the
// listing ingest writes), greeting-lib's NAR, a build log and a realisation.
func authFixture(t testing.TB, st *store.Store) {
	t.Helper()
	ctx := context.Background()
	c := st.Repo("r")
	for _, rel := range []string{dataNar, libNar} {
		if _, err := ingest.PutNar(ctx, c, rel, bytes.NewReader(sample(t, rel)), ingest.UploadOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ingest.PutNarInfo(ctx, c, dataHash, sample(t, dataHash+".narinfo"), repoKey, ingest.Limits{}); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, c.Key("log/"+dataDrv), []byte("built greeting-data\n"), nil); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, c.Key(realisationA), []byte(`{"id":"sha256:aaaa!out","outPath":"`+dataHash+`-greeting-data-2.1","signatures":[],"dependentRealisations":{}}`), nil); err != nil {
		t.Fatal(err)
	}
	if ok, _ := st.Exists(ctx, c.Key(dataHash+".ls")); !ok {
		t.Fatal("fixture: ingest wrote no listing for greeting-data")
	}
}

func expectedRead(public bool, c cred, present bool) int {
	found := http.StatusNotFound
	if present {
		found = http.StatusOK
	}
	switch c.name {
	case anonymous.name:
		if public {
			return found
		}
		return http.StatusUnauthorized
	case wrongPass.name:
		return http.StatusForbidden
	case reader.name, writer.name:
		return found
	case stranger.name:
		if public {
			return found
		}
		// A token that may not read a repository gets what it gets for
		// an unknown one (TestRepositoryNameOracle).
		return http.StatusNotFound
	}
	panic(c.name)
}

func expectedPut(public bool, c cred) int {
	switch c.name {
	case anonymous.name:
		return http.StatusUnauthorized
	case writer.name:
		return http.StatusOK
	case stranger.name:
		if !public {
			return http.StatusNotFound
		}
	}
	return http.StatusForbidden
}

func checkChallenge(t testing.TB, what string, r resp) {
	t.Helper()
	if r.status != http.StatusUnauthorized {
		if h := r.header.Get("WWW-Authenticate"); h != "" {
			t.Errorf("%s: %d with a challenge %q", what, r.status, h)
		}
		return
	}
	if got := r.header.Values("WWW-Authenticate"); len(got) != 1 || got[0] != `Basic realm="nixrepo"` {
		t.Errorf("%s: 401 with WWW-Authenticate %q, want exactly [Basic realm=\"nixrepo\"]", what, got)
	}
}

// TestAuthStatusForEveryPrincipalMethodAndKind: every principal × GET/HEAD/PUT × every object kind, on a
// private and on a public repository, with exact statuses; denied PUTs
// write nothing.
func TestAuthStatusForEveryPrincipalMethodAndKind(t *testing.T) {
	principals := []cred{anonymous, reader, writer, stranger, wrongPass}
	for _, public := range []bool{false, true} {
		name := "private"
		if public {
			name = "public"
		}
		t.Run(name, func(t *testing.T) {
			newOpts := func() *server.Options {
				o := defaultOptions()
				o.Repos[0].Public = public
				return o
			}
			// Reads share one server; they must not change the bucket.
			t.Run("read", func(t *testing.T) {
				e := newEnv(t, nil, newOpts())
				authFixture(t, e.st)
				before := snapshot(t, e.st)
				for _, p := range principals {
					for _, method := range []string{http.MethodGet, http.MethodHead} {
						for _, rc := range routeCases(t) {
							variants := []struct {
								rel     string
								present bool
							}{{rc.present, true}}
							if rc.missing != "" {
								variants = append(variants, struct {
									rel     string
									present bool
								}{rc.missing, false})
							}
							for _, v := range variants {
								what := name + " " + p.name + " " + method + " " + v.rel
								r := e.do(method, "/api/nix/r/"+v.rel, p, nil, nil)
								want := expectedRead(public, p, v.present)
								if r.status != want {
									t.Errorf("%s: got %s, want %d", what, r, want)
									continue
								}
								checkChallenge(t, what, r)
								if method == http.MethodHead && len(r.body) != 0 {
									t.Errorf("%s: HEAD answered with a body", what)
								}
								if want == http.StatusOK && method == http.MethodGet && rc.kind != "nix-cache-info" {
									stored, err := e.st.Get(context.Background(), "r/"+v.rel)
									if err != nil || !bytes.Equal(stored, r.body) {
										t.Errorf("%s: body is not the stored object (%v)", what, err)
									}
								}
								if want >= 400 && method == http.MethodGet && len(bytes.TrimSpace(r.body)) == 0 {
									t.Errorf("%s: %d without a reason", what, r.status)
								}
							}
						}
					}
				}
				sameSnapshot(t, "reads", before, snapshot(t, e.st))
			})
			// Each upload gets a fresh server and bucket.
			t.Run("put", func(t *testing.T) {
				for _, p := range principals {
					for _, rc := range routeCases(t) {
						what := name + " " + p.name + " PUT " + rc.putRel
						e := newEnv(t, nil, newOpts())
						authFixture(t, e.st)
						before := snapshot(t, e.st)
						r := e.put("/api/nix/r/"+rc.putRel, p, rc.putBody)
						want := expectedPut(public, p)
						if r.status != want {
							t.Errorf("%s: got %s, want %d", what, r, want)
						}
						checkChallenge(t, what, r)
						after := snapshot(t, e.st)
						if want != http.StatusOK {
							if len(bytes.TrimSpace(r.body)) == 0 {
								t.Errorf("%s: %d without a reason", what, r.status)
							}
							sameSnapshot(t, what, before, after)
							continue
						}
						if rc.kind == "nix-cache-info" {
							// The server owns nix-cache-info: an agreeing
							// upload is acknowledged and nothing is written.
							sameSnapshot(t, what, before, after)
							continue
						}
						if _, ok := after["r/"+rc.putRel]; !ok {
							t.Errorf("%s: answered 200 but r/%s was not written", what, rc.putRel)
						}
						for k := range after {
							if _, old := before[k]; !old && !strings.HasPrefix(k, "r/") && !strings.HasPrefix(k, store.Reserved) {
								t.Errorf("%s: wrote %s outside the repository", what, k)
							}
						}
					}
				}
			})
		})
	}
}

// TestAuthAcceptsAnyUserName: the token is the password; any user name works,
// including an empty one (Cachix-style netrc).
func TestAuthAcceptsAnyUserName(t *testing.T) {
	e := newEnv(t, nil, nil)
	authFixture(t, e.st)
	for _, user := range []string{"", "nix", "alice", "ü-ser", strings.Repeat("x", 300)} {
		r := e.get("/api/nix/r/"+dataHash+".narinfo", cred{name: "u", user: user, pass: readSecret})
		wantStatus(t, "read as "+user, r, http.StatusOK)
		r = e.get("/api/nix/r/"+dataHash+".narinfo", cred{name: "u", user: user, pass: writeSecret})
		wantStatus(t, "read with the write token as "+user, r, http.StatusOK)
		r = e.put("/api/nix/r/nix-cache-info", cred{name: "u", user: user, pass: writeSecret}, []byte("StoreDir: /nix/store\n"))
		wantStatus(t, "upload as "+user, r, http.StatusOK)
		r = e.put("/api/nix/r/nix-cache-info", cred{name: "u", user: user, pass: readSecret}, []byte("StoreDir: /nix/store\n"))
		wantStatus(t, "upload with the read token as "+user, r, http.StatusForbidden)
	}
	// A real upload with an empty user name.
	empty := cred{name: "empty", user: "", pass: writeSecret}
	if r := e.put("/api/nix/r/"+helloNar, empty, sample(t, helloNar)); r.status != 200 {
		t.Errorf("NAR upload with an empty user name: %s", r)
	}
}

// TestAuthBearerIs401WithBasicChallenge: Nix only speaks Basic; a Bearer header (even carrying a
// valid token) is 401 with a Basic challenge, on private and public
// repositories, and writes nothing.
func TestAuthBearerIs401WithBasicChallenge(t *testing.T) {
	for _, public := range []bool{false, true} {
		o := defaultOptions()
		o.Repos[0].Public = public
		e := newEnv(t, nil, o)
		authFixture(t, e.st)
		before := snapshot(t, e.st)
		for _, tok := range []string{writeSecret, readSecret, wrongSecret} {
			b := cred{name: "bearer", raw: "Bearer " + tok}
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				r := e.do(method, "/api/nix/r/"+dataHash+".narinfo", b, nil, nil)
				if r.status != http.StatusUnauthorized {
					t.Errorf("public=%v %s with Bearer: got %s, want 401", public, method, r)
				}
				checkChallenge(t, "Bearer "+method, r)
			}
			r := e.put("/api/nix/r/"+helloNar, b, sample(t, helloNar))
			if r.status != http.StatusUnauthorized {
				t.Errorf("public=%v PUT with Bearer: got %s, want 401", public, r)
			}
			checkChallenge(t, "Bearer PUT", r)
		}
		sameSnapshot(t, "Bearer requests", before, snapshot(t, e.st))
	}
}
