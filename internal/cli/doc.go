// Package cli is the iog command line: the cobra command tree behind the one `iog` binary.
//
// Commands that talk to a coordinator go only through api.Client; the long-running modes
// (up, coordinator, worker, bench) live in other packages and are handed in as Services by
// cmd/iog, so that this package never imports the coordinator, the worker, the devnet or the
// store. Run builds a fresh command tree on every call and never touches os.Args, os.Getenv or
// os.Exit, which keeps every command testable in-process.
package cli
