// Command iog is the whole network in one binary: coordinator, worker agent, local devnet
// (`iog up`) and the CLI.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/iognet/iog/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr, services(os.Getenv))
	stop()
	os.Exit(code)
}
