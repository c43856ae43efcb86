package store

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/nixrepo/nixrepo/internal/nix"
)

// NarMeta is what verifying a stored NAR file established, kept at
// _nixrepo/repos/R/nar-meta/<FileHash>.json so that a narinfo uploaded
// after its NAR is checked without reading the NAR again. Listing is the
// NAR's .ls document, embedded; ListingSkipped records that the listing
// was larger than the writer keeps, so none is.
type NarMeta struct {
	FileHash       nix.Hash        `json:"fileHash"`
	FileSize       uint64          `json:"fileSize"`
	NarHash        nix.Hash        `json:"narHash"`
	NarSize        uint64          `json:"narSize"`
	Listing        json.RawMessage `json:"listing,omitempty"`
	ListingSkipped bool            `json:"listingSkipped,omitempty"`
	// Compression is set when the file's name does not tell it: "gzip"
	// for a gzip NAR file named ".nar", as Nix names them.
	Compression string `json:"compression,omitempty"`
}

// narMetaSlack is what a nar-meta object holds besides its listing.
const narMetaSlack = 4 << 10

// NarMetaKey is where the measurement of the cache's NAR file with the given
// FileHash (nix32) is recorded: under the reserved prefix, so static hosting
// never serves it as part of the cache.
func (c *Cache) NarMetaKey(fileHashNix32 string) string {
	return reposDir + c.prefix + "nar-meta/" + fileHashNix32 + ".json"
}

// PutNarMeta records the measurement of a NAR file of the cache.
func (c *Cache) PutNarMeta(ctx context.Context, m *NarMeta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return c.st.Put(ctx, c.NarMetaKey(m.FileHash.Nix32()), b, &WriteOptions{ContentType: ContentTypeJSON})
}

// ReadNarMeta reads the recorded measurement of the NAR file with the given
// FileHash (nix32). It returns nil when there is no usable record: none,
// one that does not decode, or one larger than a listing of maxListing
// bytes can make (earlier versions embedded listings of any size), which
// is never read whole. err is only a failure of the store.
func (c *Cache) ReadNarMeta(ctx context.Context, fileHashNix32 string, maxListing int) (*NarMeta, error) {
	b, err := c.st.GetLimit(ctx, c.NarMetaKey(fileHashNix32), int64(maxListing)+narMetaSlack)
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrTooLarge) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m NarMeta
	if json.Unmarshal(b, &m) != nil || m.NarHash.IsZero() {
		return nil, nil
	}
	return &m, nil
}
