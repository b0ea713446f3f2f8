// Command iog is the whole network in one binary: coordinator, worker agent, local devnet
// (`iog up`) and the CLI.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/iognet/iog/internal/cli"
)

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// IOG_CPU_PROFILE=FILE writes a CPU profile of the whole run (until the command ends, or
	// SIGINT/SIGTERM), for `go tool pprof`: how the scale figures of docs/SCALE.md were read.
	if f := os.Getenv("IOG_CPU_PROFILE"); f != "" {
		out, err := os.Create(f)
		if err == nil {
			err = pprof.StartCPUProfile(out)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "iog: IOG_CPU_PROFILE: %v\n", err)
			return 1
		}
		defer out.Close()
		defer pprof.StopCPUProfile()
	}
	// IOG_HEAP_PROFILE=FILE writes a heap profile (what is live, after a collection) each time
	// the process gets SIGUSR1: how docs/SCALE.md's memory per device was read.
	if f := os.Getenv("IOG_HEAP_PROFILE"); f != "" {
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() {
			for range usr1 {
				runtime.GC()
				out, err := os.Create(f)
				if err == nil {
					err = pprof.WriteHeapProfile(out)
					out.Close()
				}
				if err != nil {
					fmt.Fprintf(os.Stderr, "iog: IOG_HEAP_PROFILE: %v\n", err)
				}
			}
		}()
	}
	return cli.Run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr, services(os.Getenv))
}
