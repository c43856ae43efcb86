// Command nixrepo publishes Nix binary caches, channels and a package catalog
// from an object-storage bucket. Run `nixrepo --help` for the commands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "nixrepo:", oneLine(err))
		os.Exit(exitCode(err))
	}
}
