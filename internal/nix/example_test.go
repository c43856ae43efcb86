package nix_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	"github.com/nixrepo/nixrepo/internal/nix"
)

func ExampleParseNarInfo() {
	text := `StorePath: /nix/store/alcx7vv9abqs6x2j5dr9z1j7cw64k127-y-1.0
URL: nar/1c0swkdm98crlpd6zcc7c8vl4wvzwfi7yz4wky5s59y2qc2nrfnx.nar.xz
Compression: xz
FileHash: sha256:1c0swkdm98crlpd6zcc7c8vl4wvzwfi7yz4wky5s59y2qc2nrfnx
FileSize: 176
NarHash: sha256:1yw1zp9ziqyxh8vfnppk8fygrb121r4ylfgx82516yny2mkzqhda
NarSize: 168
References: y9v4w1kf41c10q7fdxlbz10s0adiximd-dep-1.0
Deriver: kfcyapsaayf3m618y3xhmiqv51cpqdgn-y-1.0.drv
Sig: test-1:u+wHyY8Kytn2G0XtsyqW/qSU73mvdNcTuqg5GBd9B1GDHD2xG74nTJeOJfsokQm7IYzWiz90e7Kee/AX94q1DQ==
`
	n, err := nix.ParseNarInfo([]byte(text))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(n.StorePath.Name(), n.StorePath.HashPart())
	fmt.Println(n.NarHash.SRI(), n.NarSize)
	fmt.Println(n.References[0].Absolute())

	pub, _ := nix.ParsePublicKey("test-1:510Ie1jzsM6awimN1obR/GlxYAqVtuIs+AigMwIPPi4=")
	fmt.Println("trusted:", n.Verify([]nix.PublicKey{pub}))
	fmt.Println("unchanged:", bytes.Equal(n.Bytes(), []byte(text)))

	_, err = nix.ParseNarInfo([]byte("StorePath: /nix/store/alcx7vv9abqs6x2j5dr9z1j7cw64k127-y-1.0\r\n"))
	fmt.Println(err)
	// Output:
	// y-1.0 alcx7vv9abqs6x2j5dr9z1j7cw64k127
	// sha256-qkH8ZxXeehOKQP056kkOIqz8vEPzXus2gt3j+NP9gfs= 168
	// /nix/store/y9v4w1kf41c10q7fdxlbz10s0adiximd-dep-1.0
	// trusted: true
	// unchanged: true
	// narinfo line 1 (StorePath): value contains a carriage return '\r' (CRLF line endings? Nix requires "\n" only)
}

func ExampleNarInfo_Sign() {
	// Deterministic key for the example; use GenerateKey(name, nil) for real keys.
	key, _ := nix.GenerateKey("cache.example.org-1", bytes.NewReader(make([]byte, 32)))

	nar := []byte("…the uncompressed NAR…")
	sum := sha256.Sum256(nar)
	n := &nix.NarInfo{
		StorePath:   nix.MustParseStorePath("/nix/store/alcx7vv9abqs6x2j5dr9z1j7cw64k127-y-1.0"),
		Compression: "none",
		References:  []nix.StorePath{nix.MustParseStorePath("/nix/store/y9v4w1kf41c10q7fdxlbz10s0adiximd-dep-1.0")},
		FileHash:    nix.SHA256(sum[:]),
		FileSize:    uint64(len(nar)),
		NarHash:     nix.SHA256(sum[:]),
		NarSize:     uint64(len(nar)),
	}
	n.URL = "nar/" + n.FileHash.Nix32() + ".nar" + nix.NarExtension(n.Compression)
	if err := n.Sign(key); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(n.Bytes()))
	fmt.Println(key.Public())
	// Output:
	// StorePath: /nix/store/alcx7vv9abqs6x2j5dr9z1j7cw64k127-y-1.0
	// URL: nar/1gr7w98icb6cizdcqg3hxz09b6ph9mvswalc7ryq6wsqadg8yb7j.nar
	// Compression: none
	// FileHash: sha256:1gr7w98icb6cizdcqg3hxz09b6ph9mvswalc7ryq6wsqadg8yb7j
	// FileSize: 26
	// NarHash: sha256:1gr7w98icb6cizdcqg3hxz09b6ph9mvswalc7ryq6wsqadg8yb7j
	// NarSize: 26
	// References: y9v4w1kf41c10q7fdxlbz10s0adiximd-dep-1.0
	// Sig: cache.example.org-1:IWwqb6d+KT26KohOY6PD66+k1692eovN+otO2MzR4vC74gdSqAjqvu0vpjYCl7X80nPSjQlMj7U9Up6i5vIoCA==
	// cache.example.org-1:O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=
}

func ExampleParseStorePath() {
	p, err := nix.ParseStorePath("/nix/store/y9v4w1kf41c10q7fdxlbz10s0adiximd-openssl-3.0.8-dev")
	fmt.Println(p.HashPart(), p.Name(), err)
	_, err = nix.ParseStorePath("/nix/store/y9v4w1kf41c10q7fdxlbz10s0adiximd-..")
	fmt.Println(err)
	// Output:
	// y9v4w1kf41c10q7fdxlbz10s0adiximd openssl-3.0.8-dev <nil>
	// invalid store path "/nix/store/y9v4w1kf41c10q7fdxlbz10s0adiximd-..": name ".." is not allowed (".", ".." and names starting ".-" or "..-" are reserved)
}
