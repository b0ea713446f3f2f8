package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/spf13/cobra"
)

func (a *app) sshKeyCmd() *cobra.Command {
	add := &cobra.Command{
		Use:     "add FILE|-",
		Short:   "Add an SSH public key (a .pub file, or one line on stdin): your clusters' nodes accept it",
		Example: `  iog account ssh-key add ~/.ssh/id_ed25519.pub`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := a.readSSHKey(args[0])
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			k, err := c.AddSSHKey(cmd.Context(), key)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "added %s %s\n", k.Fingerprint, k.Comment)
			return nil
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List your SSH public keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ks, err := c.SSHKeys(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FINGERPRINT\tCOMMENT\tADDED")
			for _, k := range ks {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", k.Fingerprint, k.Comment, k.CreatedAt.UTC().Format("2006-01-02"))
			}
			return tw.Flush()
		},
	}
	remove := &cobra.Command{
		Use:   "remove FINGERPRINT",
		Short: "Remove an SSH public key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.RemoveSSHKey(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "removed %s\n", args[0])
			return nil
		},
	}
	return group("ssh-key", "Your SSH public keys, for plain ssh, scp and VS Code to your nodes", add, list, remove)
}

func (a *app) clusterSSHProxyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ssh-proxy CLUSTER:NODE",
		Short: "Carry an SSH connection to a node on stdin and stdout (OpenSSH's ProxyCommand)",
		Long: `Connect stdin and stdout to the SSH server end that the node's worker runs for this
connection, through the coordinator. OpenSSH runs it as the ProxyCommand of the entries
"iog cluster ssh-config" writes; there is no sshd in the node and no port open on the
supplier's machine. The node accepts the keys on your account (iog account ssh-key add).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, rank, err := parseNodeRef(args[0], 0)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			conn, err := c.OpenSSH(cmd.Context(), id, rank)
			if err != nil {
				return err
			}
			defer conn.Close()
			go func() {
				_, _ = io.Copy(conn, a.stdin)
				if cw, ok := conn.(interface{ CloseWrite() error }); ok {
					_ = cw.CloseWrite()
				}
			}()
			_, err = io.Copy(a.term, conn) // SSH's bytes, unchanged
			return err
		},
	}
}

func (a *app) clusterSSHConfigCmd() *cobra.Command {
	var (
		write bool
		iog   string
	)
	cmd := &cobra.Command{
		Use:   "ssh-config CLUSTER",
		Short: "Print (or write) OpenSSH config entries for a cluster's nodes: plain ssh, scp, rsync and VS Code",
		Long: `Print a "Host iog-<cluster>-<rank>" entry per node (also iog-<name>-<rank> for a cluster
created with --name, while no other open cluster of yours has the name), whose ProxyCommand is
"iog cluster ssh-proxy": plain ssh, scp (scp -O where the node has no sftp-server),
rsync (where the node has rsync) and VS Code's Remote-SSH then reach the node's sandbox or
container with the keys on your account (iog account ssh-key add, or cluster create
--ssh-key). With --write, the
entries go to ~/.ssh/iog/<cluster>.conf, "Include ~/.ssh/iog/*.conf" (as an absolute
path) is put at the top of ~/.ssh/config once, and the files of your clusters that have ended are removed. Host keys
are not checked for these hosts: the connection is the coordinator's authenticated session
to the node's worker, and each worker makes a new host key when it starts.`,
		Example: `  iog account ssh-key add ~/.ssh/id_ed25519.pub
  iog cluster ssh-config cl_123 --write
  ssh iog-cl_123-0 nvidia-smi`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			cl, err := c.Cluster(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if iog == "" {
				if iog, err = os.Executable(); err != nil {
					return err
				}
			}
			// A named cluster's nodes are also iog-<name>-<rank>, while no other cluster of yours
			// that is still open has the name (ssh would take the first entry it finds).
			alias := sshAlias(cl.Spec.Name)
			if alias != "" && !ended(cl.State) {
				all, err := c.Clusters(cmd.Context())
				if err != nil {
					return err
				}
				for _, o := range all {
					if o.ID != cl.ID && o.Spec.Name == cl.Spec.Name && !ended(o.State) {
						alias = ""
						fmt.Fprintf(a.stderr, "iog: cluster %s is also called %q: its entries are by id only\n", o.ID, cl.Spec.Name)
						break
					}
				}
			}
			var b strings.Builder
			fmt.Fprintf(&b, "# iog cluster %s (written by iog cluster ssh-config)\n", cl.ID)
			for _, n := range cl.Nodes {
				if alias != "" {
					fmt.Fprintf(&b, "Host iog-%s-%d iog-%s-%d\n", cl.ID, n.Rank, alias, n.Rank)
				} else {
					fmt.Fprintf(&b, "Host iog-%s-%d\n", cl.ID, n.Rank)
				}
				fmt.Fprintf(&b, "  HostName %s-%d.iog\n  User iog\n", cl.ID, n.Rank)
				fmt.Fprintf(&b, "  ProxyCommand %s --addr %s cluster ssh-proxy %s:%d\n", sshQuote(iog), sshQuote(a.base), cl.ID, n.Rank)
				b.WriteString("  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n")
			}
			if !write {
				_, err := io.WriteString(a.stdout, b.String())
				return err
			}
			home := a.getenv("HOME")
			if home == "" {
				return fmt.Errorf("--write needs HOME")
			}
			dir := filepath.Join(home, ".ssh", "iog")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, cl.ID+".conf"), []byte(b.String()), 0o600); err != nil {
				return err
			}
			if err := ensureInclude(filepath.Join(home, ".ssh", "config"), filepath.Join(dir, "*.conf")); err != nil {
				return err
			}
			// Entries of clusters that have ended go.
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				id, ok := strings.CutSuffix(e.Name(), ".conf")
				if !ok || id == cl.ID {
					continue
				}
				if other, err := c.Cluster(cmd.Context(), id); err == nil && ended(other.State) {
					_ = os.Remove(filepath.Join(dir, e.Name()))
				}
			}
			if ended(cl.State) {
				_ = os.Remove(filepath.Join(dir, cl.ID+".conf"))
				fmt.Fprintf(a.stdout, "cluster %s has ended: no entries\n", cl.ID)
				return nil
			}
			fmt.Fprintf(a.stdout, "wrote %s (%d hosts: iog-%s-0 ...)\n", filepath.Join(dir, cl.ID+".conf"), len(cl.Nodes), cl.ID)
			return nil
		},
	}
	cmd.Flags().BoolVar(&write, "write", false, "write the entries under ~/.ssh instead of printing them")
	cmd.Flags().StringVar(&iog, "iog", "", "the iog binary for ProxyCommand (default this one)")
	return cmd
}

// ensureInclude puts "Include <pattern>" at the top of ~/.ssh/config unless it is there (an
// Include after a Host line would belong to that host). The pattern is absolute: OpenSSH
// takes a relative one from the home directory of the passwd entry, not $HOME.
func ensureInclude(path, pattern string) error {
	line := "Include " + pattern
	if strings.ContainsAny(pattern, " \t\"") {
		line = "Include " + strconv.Quote(pattern)
	}
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == line {
			return nil
		}
	}
	return os.WriteFile(path, append([]byte(line+"\n\n"), b...), 0o600)
}

// sshQuote quotes a word for ssh_config's ProxyCommand (run by the shell).
func sshQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"'\\$`!*?[]{}();&|<>#~%") {
		return s
	}
	return strconv.Quote(s)
}

// readSSHKey reads one public key from a file, or from stdin for "-".
func (a *app) readSSHKey(path string) (string, error) {
	var r io.Reader = a.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return "", err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, 16<<10))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// ensureSSHKey puts a public key on the account unless it is there already (cluster create
// --ssh-key), and says which.
func (a *app) ensureSSHKey(ctx context.Context, c *api.Client, path string, quiet bool) error {
	key, err := a.readSSHKey(path)
	if err != nil {
		return fmt.Errorf("--ssh-key: %w", err)
	}
	k, err := c.AddSSHKey(ctx, key)
	var e *api.Error
	switch {
	case errors.As(err, &e) && e.Code == string(iog.ECONFLICT):
		return nil // already on the account
	case err != nil:
		return fmt.Errorf("--ssh-key %s: %w", path, err)
	}
	if !quiet {
		fmt.Fprintf(a.stdout, "added SSH key %s %s to your account\n", k.Fingerprint, k.Comment)
	}
	return nil
}

// sshAlias is a cluster name as an ssh host name part, or "" when it cannot be one (or could
// be mistaken for an id).
func sshAlias(name string) string {
	if name == "" || len(name) > 64 || strings.HasPrefix(name, "cl_") {
		return ""
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return ""
		}
	}
	return name
}
