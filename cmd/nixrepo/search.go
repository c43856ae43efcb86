package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/nixrepo/nixrepo/index"
	"github.com/nixrepo/nixrepo/internal/config"
	"github.com/nixrepo/nixrepo/search"
)

// searchLimits are the query limits of [search] (zero: the defaults).
func searchLimits(cfg *config.Config) search.Limits {
	return search.Limits{MaxQueryLength: cfg.Search.MaxQueryLength, MaxWords: cfg.Search.MaxTerms}
}

func newSearchCmd(a *app) *cobra.Command {
	var repo, dir string
	var limit int
	cmd := &cobra.Command{
		Use:   "search QUERY",
		Short: "Search the package catalog by name",
		Long: `search finds packages in the catalog "nixrepo index" maintains: the exact name
first (ignoring case), then names starting with QUERY (shortest first), then
names with a word that is or starts with each word of QUERY ("requests" finds
python3.11-requests), then, when there is no exact match, fuzzy matches (one
typo in words of 3–7 characters, two from 8), then descriptions. Each result
shows the latest version by Nix's version order, the number of versions and
the repositories.

--repo limits the results, their versions and their latest version to one
repository. A query may have at most [search] max_query_length characters
(default 256) and max_terms words (default 16); a longer one is refused with
exit status 2. The search index is opened from --index-dir (see "nixrepo index
--help"); when it is missing or behind the catalog it is rebuilt from the
bucket first.`,
		Example: `  nixrepo search hello
  nixrepo search openssl --repo nix-local --json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 || strings.TrimSpace(strings.Join(args, " ")) == "" {
				return usageError{fmt.Errorf("%s: expected QUERY (see %s --help)", cmdName(cmd), cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			query := strings.Join(args, " ")
			if limit < 1 || limit > 1000 {
				return usageError{fmt.Errorf("search: --limit must be from 1 to 1000, got %d", limit)}
			}
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			var opts search.Options
			opts.Limit = limit
			opts.Limits = searchLimits(cfg)
			if err := search.CheckQuery(query, opts.Limits); errors.Is(err, search.ErrQueryTooLarge) {
				return usageError{fmt.Errorf("search: %w", err)}
			}
			if repo != "" {
				if _, err := cfg.Repo(repo); err != nil {
					return usageError{err}
				}
				opts.Repos = []string{repo}
			}
			st, err := a.openStoreToRead(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			x, rebuilt, err := index.EnsureIndex(cmd.Context(), st, a.indexDir(cfg, dir))
			if errors.Is(err, index.ErrNoCatalog) {
				return errors.New("search: no package catalog yet: run nixrepo index first")
			}
			if err != nil {
				return fmt.Errorf("search: %w", err)
			}
			defer x.Close()
			if rebuilt && !a.quiet {
				fmt.Fprintln(a.stderr, "nixrepo: the search index was missing or behind the catalog; rebuilt it from the bucket")
			}
			res, err := search.Search(x, query, &opts)
			if errors.Is(err, search.ErrEmptyQuery) {
				return usageError{fmt.Errorf("search: %q has nothing to search for (letters or digits)", query)}
			}
			if err != nil {
				return fmt.Errorf("search: %w", err)
			}
			if a.jsonOut {
				return a.printJSON(search.Response{Query: query, Repo: repo, Results: res})
			}
			if len(res) == 0 {
				fmt.Fprintf(a.stdout, "no package matches %q\n", query)
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tLATEST\tVERSIONS\tREPOS")
			for _, r := range res {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", r.Name, r.Latest, r.NumVersions, strings.Join(r.Repos, ","))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&repo, "repo", "r", "", "only this repository")
	cmd.Flags().IntVar(&limit, "limit", 20, "maximum number of results (1–1000)")
	cmd.Flags().StringVar(&dir, "index-dir", "", "search index folder (default $"+indexDirEnv+", else var/index next to the config)")
	return cmd
}
