package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newConfigCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect the configuration",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageError{fmt.Errorf("config: name a subcommand (check)")}
		},
	}
	var offline bool
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration and report where it is",
		Long: `check loads the configuration strictly (unknown keys and bad values are errors
naming the key and line; a store URL of a scheme nixrepo has no driver for is
one), checks that each repository's signing key file exists and parses,
reaches the bucket (reads its layout version; --offline skips this) and
prints a summary.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			reach := "not tried (--offline)"
			if !offline {
				// Opening reads the bucket's layout version: the bucket
				// answered, with a layout this nixrepo knows.
				st, err := a.openStoreToRead(cmd.Context())
				if err != nil {
					return fmt.Errorf("store %s: %w", cfg.Store.URL, err)
				}
				st.Close()
				reach = "reachable"
			}
			type repoSummary struct {
				Name      string   `json:"name"`
				Type      string   `json:"type"`
				Priority  int      `json:"priority"`
				PublicKey string   `json:"publicKey,omitempty"`
				KeyStatus string   `json:"keyStatus"`
				Incoming  []string `json:"incoming"`
			}
			var repos []repoSummary
			for i := range cfg.Repos {
				r := &cfg.Repos[i]
				s := repoSummary{Name: r.Name, Type: r.Type, Priority: r.Priority, Incoming: r.Incoming}
				if r.SigningKeyFile == "" {
					s.KeyStatus = "none (" + r.Type + " repository)"
				} else if pub, err := publicKeyOf(cfg, r); err == nil {
					s.PublicKey, s.KeyStatus = pub.String(), "ok"
				} else if r.GenerateKey {
					s.KeyStatus = "will be created on first use"
				} else {
					return err
				}
				repos = append(repos, s)
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"source": cfg.Source, "store": cfg.Store.URL, "storeStatus": reach, "repos": repos})
			}
			fmt.Fprintf(a.stdout, "%s: ok\nstore: %s (%s)\n", cfg.Source, cfg.Store.URL, reach)
			for _, r := range repos {
				fmt.Fprintf(a.stdout, "repo %s (%s, priority %d): key %s %s\n", r.Name, r.Type, r.Priority, r.KeyStatus, r.PublicKey)
			}
			return nil
		},
	}
	check.Flags().BoolVar(&offline, "offline", false, "do not try to reach the bucket")
	cmd.AddCommand(check)
	return cmd
}
