// Package nixrepo turns an object-storage bucket into a Nix repository
// manager. This root package only carries the default configuration that the
// nixrepo command embeds; the work is done by the packages below it (see
// docs/design.md).
package nixrepo

import _ "embed"

// DefaultConfig is nixrepo.toml as shipped: file:// buckets under ./var and
// the sample binary cache in testdata/ as the incoming source.
//
//go:embed nixrepo.toml
var DefaultConfig []byte
