package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	// Bucket drivers nixrepo can open by URL.
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/memblob"
	_ "gocloud.dev/blob/s3blob"

	root "github.com/nixrepo/nixrepo"
	"github.com/nixrepo/nixrepo/internal/config"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/internal/tmpdir"
)

// app holds what every command shares: global flags and the loaded config.
type app struct {
	configPath string
	jsonOut    bool
	quiet      bool
	stdout     io.Writer
	stderr     io.Writer
	cfg        *config.Config
	tmp        *tmpdir.Dir // this process's temporary folder, from openStore on
	warned     bool        // the store's backend warning was printed
	demoNoted  bool        // the note that the built-in demo config is used was printed
}

// execute runs the command line args the way main does and releases what
// the run held: its temporary folder goes, TMPDIR is as before.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	a := &app{stdout: stdout, stderr: stderr}
	cmd := newRootCmd(a)
	cmd.SetArgs(args)
	defer func() { a.tmp.Close() }() // a.tmp is set during the run
	return cmd.ExecuteContext(ctx)
}

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "nixrepo",
		Short: "Nix binary caches, channels and a package catalog on any object-storage bucket",
		Long: `nixrepo turns an object-storage bucket (a folder, S3, GCS, Azure Blob) into a Nix
repository manager. Each repository is a prefix of the bucket in Nix's exact
binary-cache layout, so any static file server or CDN over the bucket is a
substituter for Nix.

The scheduled job is "nixrepo run": ingest every configured incoming binary
cache (verify, sign, store), then publish. Configuration comes from --config,
else ./nixrepo.toml; in nixrepo's source tree (beside testdata/sample-cache)
the built-in demo configuration (file:// buckets under ./var) is used, and
said so; anywhere else a configuration is required.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&a.configPath, "config", "c", "", "config file (default ./nixrepo.toml; in nixrepo's source tree, the built-in demo)")
	root.PersistentFlags().BoolVar(&a.jsonOut, "json", false, "print the report as JSON")
	root.PersistentFlags().BoolVarP(&a.quiet, "quiet", "q", false, "no progress bar")
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
	})
	root.AddCommand(
		newRunCmd(a),
		newIngestCmd(a),
		newPublishCmd(a),
		newVerifyCmd(a),
		newKeygenCmd(a),
		newSetmeupCmd(a),
		newConfigCmd(a),
		newServeCmd(a),
		newTokenCmd(a),
		newChannelCmd(a),
		newMirrorCmd(a),
		newIndexCmd(a),
		newSearchCmd(a),
	)
	return root
}

// loadConfig finds and loads the configuration once.
func (a *app) loadConfig() (*config.Config, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	var err error
	switch {
	case a.configPath != "":
		a.cfg, err = config.Load(a.configPath)
	default:
		if _, statErr := os.Stat("nixrepo.toml"); statErr == nil {
			a.cfg, err = config.Load("nixrepo.toml")
			break
		}
		// The built-in configuration is the source tree's demo: it ingests
		// the tree's sample cache and keeps its store and key under ./var.
		// Anywhere else it would create a store and a key in whatever
		// folder the command ran in.
		if fi, statErr := os.Stat(demoIncoming); statErr != nil || !fi.IsDir() {
			wd, _ := os.Getwd()
			return nil, usageError{fmt.Errorf("no nixrepo.toml in %s: pass --config FILE (the built-in demo configuration is only used in nixrepo's source tree, beside %s)", wd, demoIncoming)}
		}
		wd, _ := os.Getwd()
		if a.cfg, err = config.Parse(root.DefaultConfig, "built-in demo config", wd); err == nil && !a.demoNoted {
			a.demoNoted = true
			fmt.Fprintf(a.stderr, "nixrepo: no nixrepo.toml here: using the built-in demo configuration (store ./var/store, incoming %s); --config FILE to use another\n", demoIncoming)
		}
	}
	return a.cfg, err
}

// demoIncoming is the built-in demo configuration's incoming folder: where
// it is, the current folder is nixrepo's source tree.
const demoIncoming = "testdata/sample-cache"

// startTemp starts the process's temporary folder for cfg.
func startTemp(cfg *config.Config) (*tmpdir.Dir, error) {
	root, err := tmpdir.Root(cfg.Path(cfg.Store.TempDir), store.Folder(cfg.Store.URL, cfg.Dir))
	if err != nil {
		return nil, fmt.Errorf("%s: store.temp_dir: %w", cfg.Source, err)
	}
	return tmpdir.Start(root)
}

// openStore opens the repository store of the config for a command that
// writes it, first starting the process's temporary folder (every
// temporary file comes from working with the store), which clears what
// crashed processes left there. A bucket of a newer layout is refused; one
// that has not recorded its layout version gets it (store.CheckLayout).
func (a *app) openStore(ctx context.Context) (*store.Store, error) {
	return a.openStoreFor(ctx, true)
}

// openStoreToRead is openStore for a command that only reads the store:
// it records no layout version.
func (a *app) openStoreToRead(ctx context.Context) (*store.Store, error) {
	return a.openStoreFor(ctx, false)
}

func (a *app) openStoreFor(ctx context.Context, write bool) (*store.Store, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	if a.tmp == nil {
		if a.tmp, err = startTemp(cfg); err != nil {
			return nil, err
		}
	}
	st, err := store.Open(ctx, cfg.Store.URL, cfg.Dir, false)
	if err != nil {
		return nil, err
	}
	if err := st.CheckLayout(ctx, write); err != nil {
		st.Close()
		return nil, err
	}
	if w := st.Warning(); write && w != "" && !a.warned {
		// A backend without conditional writes: say so once, at start.
		a.warned = true
		fmt.Fprintf(a.stderr, "nixrepo: warning: %s\n", w)
	}
	return st, nil
}

// printJSON writes v as indented JSON.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// usageError marks a misuse of the command line (exit status 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// failedError marks a command that ran but found problems (exit status 1
// with the report already printed).
type failedError struct{ error }

func (e failedError) Unwrap() error { return e.error }

func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") ||
		strings.HasPrefix(err.Error(), "accepts ") || strings.HasPrefix(err.Error(), "requires ") {
		return 2
	}
	return 1
}

// oneLine folds a (possibly joined) error into one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s: expected %s (see %s --help)", cmd.CommandPath(), what, cmd.CommandPath())}
		}
		return nil
	}
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("%s takes no arguments, got %q (see %s --help)", cmd.CommandPath(), args[0], cmd.CommandPath())}
	}
	return nil
}

// absPath is for messages.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
