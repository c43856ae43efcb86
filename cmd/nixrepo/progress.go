package main

import (
	"os"
	"sync"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/nixrepo/nixrepo/ingest"
)

// progressBar returns a callback drawing a byte progress bar on stderr, or
// nil when stderr is not a terminal, in CI, or with --quiet.
func (a *app) progressBar(desc string) (func(ingest.Progress), func()) {
	f, ok := a.stderr.(*os.File)
	if a.quiet || !ok || !term.IsTerminal(int(f.Fd())) || os.Getenv("CI") != "" {
		return nil, func() {}
	}
	var (
		mu  sync.Mutex
		bar *progressbar.ProgressBar
	)
	update := func(p ingest.Progress) {
		mu.Lock()
		defer mu.Unlock()
		total := p.TotalBytes
		if total <= 0 {
			total = int64(p.TotalPaths)
		}
		if bar == nil {
			bar = progressbar.NewOptions64(total,
				progressbar.OptionSetWriter(f),
				progressbar.OptionSetDescription(desc),
				progressbar.OptionShowBytes(p.TotalBytes > 0),
				progressbar.OptionShowCount(),
				progressbar.OptionThrottle(100_000_000),
				progressbar.OptionClearOnFinish(),
			)
		}
		if p.TotalBytes > 0 {
			_ = bar.Set64(p.Bytes)
		} else {
			_ = bar.Set64(int64(p.Paths))
		}
	}
	finish := func() {
		mu.Lock()
		defer mu.Unlock()
		if bar != nil {
			_ = bar.Finish()
		}
	}
	return update, finish
}
