package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nixrepo/nixrepo/server"
)

func newTokenCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage server tokens",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageError{fmt.Errorf("token: name a subcommand (new)")}
		},
	}
	var read, write []string
	newCmd := &cobra.Command{
		Use:   "new NAME",
		Short: "Print a fresh token and the [[token]] table to put in nixrepo.toml",
		Long: `new prints a fresh random URL-safe token (give it to the client, e.g. in a netrc
file as the password) and the [[token]] table for nixrepo.toml, which holds only
its SHA-256. The token itself is not stored anywhere: keep it secret.`,
		Example: `  nixrepo token new ci --write nix-local`,
		Args:    exactArgs(1, "one token NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, sum, err := server.NewToken()
			if err != nil {
				return err
			}
			if len(read) == 0 {
				read = []string{"*"}
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"name": args[0], "token": tok, "sha256": sum, "read": read, "write": write})
			}
			fmt.Fprintf(a.stdout, "token: %s\n\n# add to nixrepo.toml:\n[[token]]\nname = %q\nsha256 = %q\nread = %s\nwrite = %s\n",
				tok, args[0], sum, tomlList(read), tomlList(write))
			return nil
		},
	}
	newCmd.Flags().StringSliceVar(&read, "read", nil, "repositories the token may read (default *)")
	newCmd.Flags().StringSliceVar(&write, "write", nil, "repositories the token may upload to")
	cmd.AddCommand(newCmd)
	return cmd
}

func tomlList(xs []string) string {
	s := "["
	for i, x := range xs {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%q", x)
	}
	return s + "]"
}
