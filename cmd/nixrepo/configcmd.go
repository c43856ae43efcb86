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
	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Validate the configuration and report where it is",
		Long: `check loads the configuration strictly (unknown keys and bad values are errors
naming the key and line), checks that each repository's signing key file exists
and parses, and prints a summary.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
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
				return a.printJSON(map[string]any{"source": cfg.Source, "store": cfg.Store.URL, "repos": repos})
			}
			fmt.Fprintf(a.stdout, "%s: ok\nstore: %s\n", cfg.Source, cfg.Store.URL)
			for _, r := range repos {
				fmt.Fprintf(a.stdout, "repo %s (%s, priority %d): key %s %s\n", r.Name, r.Type, r.Priority, r.KeyStatus, r.PublicKey)
			}
			return nil
		},
	})
	return cmd
}
