package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iognet/iog/api"
)

// parsePorts reads --port values: PORT or PORT:public.
func parsePorts(vals []string) ([]api.PortSpec, error) {
	var out []api.PortSpec
	seen := map[int]bool{}
	for _, v := range vals {
		num, mode, _ := strings.Cut(v, ":")
		p, err := strconv.Atoi(num)
		if err != nil || p < 1 || p > 65535 || (mode != "" && mode != "public") {
			return nil, usageErrorf("--port %q: want PORT or PORT:public, PORT from 1 to 65535", v)
		}
		if seen[p] {
			return nil, usageErrorf("--port %d given twice", p)
		}
		seen[p] = true
		out = append(out, api.PortSpec{Port: p, Public: mode == "public"})
	}
	if len(out) > 32 {
		return nil, usageErrorf("at most 32 --port")
	}
	return out, nil
}

// printLinks prints the links of a cluster's exposed ports, or why there are none.
func printLinks(w io.Writer, cl api.Cluster) {
	if len(cl.Links) == 0 {
		return
	}
	fmt.Fprintln(w, "\nports (open one with iog cluster open "+cl.ID+" --port PORT [--node K]; a link needs that one-time login unless public):")
	for _, l := range cl.Links {
		pub := ""
		if l.Public {
			pub = "  (public)"
		}
		fmt.Fprintf(w, "  node %d port %-5d %s%s\n", l.Rank, l.Port, cleanLine(l.URL), pub)
	}
}

// cleanLine strips control characters from text another party chose.
func cleanLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

func (a *app) clusterOpenCmd() *cobra.Command {
	var (
		port, node int
		print      bool
	)
	cmd := &cobra.Command{
		Use:   "open CLUSTER[:NODE] --port PORT [--node K] [--print]",
		Short: "Open a node's port in your browser, through a one-time login link",
		Long: `Ask the coordinator for a one-time login link to a node's port (it works once, within a
minute) and open it in your browser (--print: print it). The link logs this browser in to that
port's own origin, http(s)://CLUSTER-RANK-PORT.<ports domain>/, with a cookie for that origin
only; the API key never goes into a URL. Only the cluster's owner can; every login is in the
cluster's events (iog cluster events).`,
		Example: `  iog cluster open cl_123 --port 8888
  iog cluster open cl_123:1 --port 6006 --print`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, rank, err := parseNodeRef(args[0], node)
			if err != nil {
				return err
			}
			if port < 1 || port > 65535 {
				return usageErrorf("--port PORT is required (1 to 65535)")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			l, err := c.PortLogin(cmd.Context(), id, rank, port)
			if err != nil {
				return err
			}
			link := cleanLine(l.LoginURL)
			if print {
				fmt.Fprintln(a.stdout, link)
				return nil
			}
			if err := openBrowser(cmd.Context(), a.getenv, link); err != nil {
				fmt.Fprintf(a.stderr, "could not start a browser (%v); open this link within a minute:\n", err)
				fmt.Fprintln(a.stdout, link)
				return nil
			}
			fmt.Fprintf(a.stderr, "opened %s in your browser (the login link works once, within a minute)\n", cleanLine(l.URL))
			return nil
		},
	}
	cmd.Flags().IntVar(&port, "port", 0, "the node's TCP port")
	cmd.Flags().IntVar(&node, "node", 0, "node rank (default 0, or CLUSTER:NODE)")
	cmd.Flags().BoolVar(&print, "print", false, "print the login link instead of opening a browser")
	return cmd
}

// openBrowser opens url in the desktop's browser.
func openBrowser(ctx context.Context, getenv func(string) string, url string) error {
	name, args := "xdg-open", []string{url}
	if runtime.GOOS == "linux" && getenv("DISPLAY") == "" && getenv("WAYLAND_DISPLAY") == "" {
		return errors.New("no graphical display")
	}
	switch runtime.GOOS {
	case "darwin":
		name = "open"
	case "windows":
		name, args = "rundll32", []string{"url.dll,FileProtocolHandler", url}
	}
	return exec.CommandContext(ctx, name, args...).Start()
}
