package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/mesh"
)

// forward is one -L LOCAL:NODE:PORT.
type forward struct {
	local string // host:port to listen on here
	node  int
	port  int
}

// parseForward reads [HOST:]LOCALPORT:NODE:PORT.
func parseForward(s string) (forward, error) {
	parts := strings.Split(s, ":")
	host := "127.0.0.1"
	if len(parts) == 4 {
		host, parts = parts[0], parts[1:]
	}
	if len(parts) != 3 {
		return forward{}, usageErrorf("-L %q: want [HOST:]LOCALPORT:NODE:PORT, like 8265:0:8265", s)
	}
	lp, err1 := strconv.Atoi(parts[0])
	node, err2 := strconv.Atoi(parts[1])
	port, err3 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || lp < 0 || lp > 65535 || node < 0 || port < 1 || port > 65535 {
		return forward{}, usageErrorf("-L %q: want [HOST:]LOCALPORT:NODE:PORT with numbers, like 8265:0:8265", s)
	}
	return forward{local: net.JoinHostPort(host, parts[0]), node: node, port: port}, nil
}

func (a *app) clusterConnectCmd() *cobra.Command {
	var fwd []string
	cmd := &cobra.Command{
		Use:   "connect CLUSTER [-L [HOST:]LOCALPORT:NODE:PORT ...]",
		Short: "Join this machine to a cluster's mesh (no root) and forward local ports to its nodes",
		Long: `Join this machine to the cluster's encrypted mesh as a userspace WireGuard peer (no root,
no network interface) and forward local TCP ports to services on the nodes, for example the
Ray dashboard (-L 8265:0:8265), Jupyter (-L 8888:0:8888) or SSH (-L 2222:1:22). NODE is the
node's rank. Runs until interrupted; the coordinator forgets this peer on exit.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var fs []forward
			for _, s := range fwd {
				f, err := parseForward(s)
				if err != nil {
					return err
				}
				fs = append(fs, f)
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			return a.connect(cmd.Context(), cl, args[0], fs)
		},
	}
	cmd.Flags().StringArrayVarP(&fwd, "forward", "L", nil, "forward [HOST:]LOCALPORT to PORT on node NODE (repeatable)")
	return cmd
}

func (a *app) connect(ctx context.Context, cl *api.Client, id string, fs []forward) error {
	host := ""
	if u, err := url.Parse(cl.Base); err == nil {
		host = u.Hostname()
	}
	s, err := mesh.Connect(ctx, mesh.Remote{
		Join: func(ctx context.Context, r api.MeshJoinRequest) (api.MeshJoinResponse, error) {
			return cl.MeshConnect(ctx, id, r)
		},
		View: func(ctx context.Context, member, known string, wait time.Duration) (api.Mesh, error) {
			return cl.MeshView(ctx, id, member, known, wait)
		},
		Leave:   func(ctx context.Context, member string) error { return cl.MeshLeave(ctx, id, member) },
		APIHost: host,
	}, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(a.stdout, "connected to cluster %s's mesh as %s\n", id, s.Address())
	var wg sync.WaitGroup
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
		wg.Wait()
	}()
	for _, f := range fs {
		ln, err := net.Listen("tcp", f.local)
		if err != nil {
			return fmt.Errorf("-L %s: %w", f.local, err)
		}
		lns = append(lns, ln)
		addr, _ := s.NodeAddr(f.node)
		fmt.Fprintf(a.stdout, "forwarding %s -> node %d (%s) port %d\n", ln.Addr(), f.node, addr, f.port)
		wg.Go(func() { serveForward(ctx, ln, s, f) })
	}
	select {
	case <-ctx.Done():
		return nil
	case <-s.Done():
		return fmt.Errorf("cluster %s: %w", id, s.Err())
	}
}

// serveForward copies each local connection to the node's port over the mesh.
func serveForward(ctx context.Context, ln net.Listener, s *mesh.Session, f forward) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			r, err := s.DialNode(dctx, f.node, f.port)
			cancel()
			if err != nil {
				return
			}
			defer r.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(r, c); closeWrite(r); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, r); closeWrite(c); done <- struct{}{} }()
			<-done
			<-done
		}()
	}
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}
