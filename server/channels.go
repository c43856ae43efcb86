package server

import (
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/ingest/channel"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// Channel routes under /api/nix/<repo>/channels/:
//
//	NAME                         302 → NAME/FLAVOR/SNAPSHOT (nix-channel --add URL), Link rel="immutable"
//	NAME/nixexprs.tar.xz         302 → the current snapshot's tarball, Link rel="immutable"
//	NAME/channel.json            the channel's state (snapshots, sha256s)
//	NAME/FLAVOR/SNAPSHOT         200 release page; PUT = publish nixexprs.tar.xz as this snapshot
//	NAME/FLAVOR/SNAPSHOT/FILE    the snapshot's files (immutable); PUT nixexprs.tar.xz or metadata
func (s *Server) serveChannel(w http.ResponseWriter, r *http.Request, repo *repoState, rel string) {
	parts := strings.Split(strings.TrimPrefix(rel, store.ChannelsDir), "/")
	for _, p := range parts {
		if !nix.ValidChannelName(p) {
			s.channelError(w, r, http.StatusBadRequest, http.StatusNotFound, fmt.Sprintf("%q is not a valid channel path segment", p))
			return
		}
	}
	name := parts[0]
	if r.Method == http.MethodPut {
		s.putChannel(w, r, repo, parts)
		return
	}
	ch, err := repo.cache.ReadChannel(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		httpError(w, http.StatusNotFound, "no channel "+name)
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	cur, ok := ch.Current()
	if !ok {
		httpError(w, http.StatusNotFound, "channel "+name+" has no snapshot")
		return
	}
	base := s.opts.PublicURL + "/api/nix/" + repo.Name // path-absolute without a public URL
	h := w.Header()
	switch {
	case len(parts) == 1, len(parts) == 2 && parts[1] == store.ChannelTarball:
		// The mutable channel URL: redirect to the current snapshot, with
		// Nix ≥ 2.17's lockable tarball Link and an ETag. The Location is
		// relative to the request (".../channels/NAME" → "NAME/FLAVOR/ID",
		// ".../NAME/nixexprs.tar.xz" → "FLAVOR/ID/nixexprs.tar.xz"); Nix
		// records the Link's URL as it is, so it is absolute, and only
		// sent when the server knows its public URL.
		target := fmt.Sprintf("%s/%s/%s", name, cur.Flavor, cur.ID)
		if len(parts) == 2 {
			target = fmt.Sprintf("%s/%s/%s", cur.Flavor, cur.ID, store.ChannelTarball)
		}
		if s.opts.PublicURL != "" {
			h.Set("Link", fmt.Sprintf(`<%s/%s>; rel="immutable"`, base, store.SnapshotFileRel(name, cur.Flavor, cur.ID, store.ChannelTarball)))
		}
		h.Set("ETag", `"`+cur.ID+`"`)
		h.Set("Cache-Control", "no-cache")
		h.Set("Location", target)
		w.WriteHeader(http.StatusFound)
	case len(parts) == 2 && parts[1] == store.ChannelStateFile:
		h.Set("Content-Type", store.ContentTypeJSON)
		h.Set("Cache-Control", "no-cache")
		s.serveObject(w, r, repo, store.ChannelStateRel(name))
	case len(parts) == 3:
		snap, ok := ch.Snapshot(parts[2])
		if !ok || snap.Flavor != parts[1] {
			httpError(w, http.StatusNotFound, "no snapshot "+parts[2]+" of channel "+name)
			return
		}
		// nix-channel stores this body; any 200 will do. Make it useful.
		h.Set("Content-Type", "text/html; charset=utf-8")
		releasePage.Execute(w, map[string]any{"Channel": name, "Snapshot": snap,
			"Tarball": base + "/" + store.SnapshotFileRel(name, snap.Flavor, snap.ID, store.ChannelTarball)})
	case len(parts) == 4:
		snap, ok := ch.Snapshot(parts[2])
		if !ok || snap.Flavor != parts[1] || !slices.Contains(snap.Files, parts[3]) {
			httpError(w, http.StatusNotFound, "not found")
			return
		}
		// Immutable: an ETag that never changes lets Nix revalidate a
		// fetchTarball whose tarball-ttl expired with a 304 instead of
		// downloading it again. The tarball's is its sha256; a snapshot's
		// other files never change either, so its ID and the name do.
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		h.Set("ETag", `"`+snap.ID+"/"+parts[3]+`"`)
		if parts[3] == store.ChannelTarball {
			h.Set("Content-Type", "application/x-xz")
			h.Set("ETag", `"sha256-`+snap.FileHash+`"`)
		}
		s.serveObject(w, r, repo, store.SnapshotFileRel(name, snap.Flavor, snap.ID, parts[3]))
	default:
		httpError(w, http.StatusNotFound, "not found")
	}
}

var releasePage = template.Must(template.New("release").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Channel}} {{.Snapshot.ID}}</title></head>
<body><h1>Channel {{.Channel}}, snapshot {{.Snapshot.ID}}</h1>
<p><a href="{{.Tarball}}">nixexprs.tar.xz</a> ({{.Snapshot.Size}} bytes, uploaded {{.Snapshot.Uploaded.Format "2006-01-02 15:04:05 UTC"}}{{if .Snapshot.GitRevision}}, git revision {{.Snapshot.GitRevision}}{{end}})</p>
<pre>builtins.fetchTarball {
  url = "{{.Tarball}}";
  sha256 = "{{.Snapshot.NarHash}}";
}</pre>
</body></html>
`))

// channelError answers a bad path: 4xx for uploads, 404 for reads.
func (s *Server) channelError(w http.ResponseWriter, r *http.Request, putStatus, getStatus int, msg string) {
	if r.Method == http.MethodPut {
		httpError(w, putStatus, msg)
		return
	}
	httpError(w, getStatus, msg)
}

// putChannel publishes a snapshot (PUT NAME/FLAVOR/SNAPSHOT or
// NAME/FLAVOR/SNAPSHOT/nixexprs.tar.xz) or adds a metadata file to one.
func (s *Server) putChannel(w http.ResponseWriter, r *http.Request, repo *repoState, parts []string) {
	if repo.members != nil {
		s.metrics.upload(kindChannel, "refused")
		w.Header().Set("Allow", "GET, HEAD")
		httpError(w, http.StatusMethodNotAllowed, "repository "+repo.Name+" is a virtual repository: push channels to a local repository")
		return
	}
	if len(parts) != 3 && len(parts) != 4 {
		httpError(w, http.StatusBadRequest, "upload a channel snapshot to channels/NAME/FLAVOR/SNAPSHOT (the body is nixexprs.tar.xz)")
		return
	}
	file := store.ChannelTarball
	if len(parts) == 4 {
		file = parts[3]
	}
	if file == store.ChannelTarball && r.ContentLength > s.opts.ChannelTarball.MaxSize && r.ContentLength <= s.opts.MaxObjectSize {
		s.metrics.upload(kindChannel, "refused")
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("upload of %d bytes exceeds the limit of %d bytes ([channels] max_tarball_size)", r.ContentLength, s.opts.ChannelTarball.MaxSize))
		return
	}
	body, release, ok := s.beginUpload(w, r, kindChannel, repo)
	if !ok {
		return
	}
	defer release()
	defer func() { s.metrics.received(kindChannel, body.n) }()
	var err error
	if file == store.ChannelTarball {
		var res *channel.PushResult
		res, err = channel.Push(r.Context(), repo.cache, &exactReader{r: body, want: r.ContentLength}, channel.PushOptions{
			Channel: parts[0], Flavor: parts[1], Snapshot: parts[2], MaxSize: s.opts.MaxObjectSize,
			Keep: repo.ChannelKeep, Pins: repo.ChannelPins, Tarball: s.opts.ChannelTarball,
			AdmitUnpack: s.admitUnpack(s.uploader(r), repo.Name),
		})
		if err == nil {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusOK)
			fmt.Fprintf(w, "snapshot %s of channel %s: sha256 %s; current snapshot %s\n", res.Snapshot.ID, parts[0], res.Snapshot.NarHash, res.Latest)
			s.metrics.upload(kindChannel, "accepted")
			return
		}
	} else {
		var data []byte
		data, err = s.readBody(r, body, maxSmallObject)
		if err == nil {
			err = channel.AddSnapshotFile(r.Context(), repo.cache, parts[0], parts[1], parts[2], file, data)
		}
	}
	if err != nil {
		s.uploadFailed(w, r, repo, kindChannel, body, err)
		return
	}
	s.metrics.upload(kindChannel, "accepted")
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// exactReader fails when the body ends before Content-Length bytes (a
// truncated upload must never be published).
type exactReader struct {
	r    io.Reader
	want int64
	n    int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	e.n += int64(n)
	if err == io.EOF && e.want >= 0 && e.n != e.want {
		return n, fmt.Errorf("%w: body ended after %d of %d bytes", ingest.ErrInvalid, e.n, e.want)
	}
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("%w: reading the upload: %v", ingest.ErrInvalid, err)
	}
	return n, err
}
