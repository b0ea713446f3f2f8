package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/iognet/iog/api"
)

// portForward is one [HOST:]LOCALPORT:PORT.
type portForward struct {
	local string
	port  int
}

func parsePortForward(s string) (portForward, error) {
	parts := strings.Split(s, ":")
	host := "127.0.0.1"
	if len(parts) == 3 {
		host, parts = parts[0], parts[1:]
	}
	if len(parts) != 2 {
		return portForward{}, usageErrorf("%q: want [HOST:]LOCALPORT:PORT, like 8888:8888", s)
	}
	lp, err1 := strconv.Atoi(parts[0])
	p, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || lp < 0 || lp > 65535 || p < 1 || p > 65535 {
		return portForward{}, usageErrorf("%q: want [HOST:]LOCALPORT:PORT with port numbers, like 8888:8888", s)
	}
	return portForward{local: net.JoinHostPort(host, parts[0]), port: p}, nil
}

func (a *app) clusterForwardCmd() *cobra.Command {
	var node int
	cmd := &cobra.Command{
		Use:   "forward CLUSTER[:NODE] [HOST:]LOCALPORT:PORT ...",
		Short: "Forward local TCP ports to ports of a node, through the coordinator (no mesh needed)",
		Long: `Listen on local ports and connect each connection to a port of a running node of your
cluster, as its workload sees it (a sandboxed node: a socket one of its processes listens
on; a container: its own network). Works through NAT and on the devnet: the node's worker
connects out to the coordinator for each connection. Open Jupyter, TensorBoard or a Ray
dashboard at http://127.0.0.1:LOCALPORT/; WebSockets and streaming work, since the bytes
pass unchanged. Each connection is recorded in the cluster's events. Runs until
interrupted.`,
		Example: `  iog cluster forward cl_123 8888:8888
  iog cluster forward cl_123:1 6006:6006 8265:8265`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, rank, err := parseNodeRef(args[0], node)
			if err != nil {
				return err
			}
			var fs []portForward
			for _, s := range args[1:] {
				f, err := parsePortForward(s)
				if err != nil {
					return err
				}
				fs = append(fs, f)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var lns []net.Listener
			defer func() {
				for _, l := range lns {
					l.Close()
				}
			}()
			for _, f := range fs {
				l, err := net.Listen("tcp", f.local)
				if err != nil {
					return err
				}
				lns = append(lns, l)
				fmt.Fprintf(a.stdout, "forwarding %s -> node %d port %d\n", l.Addr(), rank, f.port)
			}
			var wg sync.WaitGroup
			for i, l := range lns {
				wg.Go(func() { a.forwardFrom(ctx, c, id, rank, fs[i].port, l) })
			}
			<-ctx.Done()
			for _, l := range lns {
				l.Close()
			}
			wg.Wait()
			return nil
		},
	}
	cmd.Flags().IntVar(&node, "node", 0, "the node's rank")
	return cmd
}

func (a *app) forwardFrom(ctx context.Context, c *api.Client, id string, rank, port int, l net.Listener) {
	var mu sync.Mutex
	for {
		lc, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer lc.Close()
			rc, err := c.OpenPort(ctx, id, rank, port)
			if err != nil {
				mu.Lock()
				fmt.Fprintf(a.stderr, "iog: node %d port %d: %s\n", rank, port, a.message(err))
				mu.Unlock()
				return
			}
			defer rc.Close()
			go func() {
				// The stream has no half-close: the local side's end ends the connection.
				_, _ = io.Copy(rc, lc)
				rc.Close()
			}()
			stop := context.AfterFunc(ctx, func() { rc.Close(); lc.Close() })
			defer stop()
			_, _ = io.Copy(lc, rc)
		}()
	}
}
