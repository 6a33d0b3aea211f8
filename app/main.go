// Command starcite is the Starcite server and its operator tools, one
// binary per node:
//
//	starcite [server]     run a node, configured by environment variables
//	starcite ops ...      operator commands (status, drain, wait-ready, ...)
//	starcite shell        remote shell into a live node's actors
//	starcite healthcheck  probe the local node over HTTP (container HEALTHCHECK)
//	starcite cert ...     create certificates for the inter-node mutual TLS
//	starcite bench ...    benchmark a node or the local cluster
//	starcite session ...  create, list or get sessions over the API (app/cli)
//	starcite append ...   append events to a session
//	starcite tail ...     print or follow a session's events
//	starcite version      print the version
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"starcite/app/bench"
	"starcite/app/cli"
	"starcite/app/config"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	cmd := "server"
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	os.Exit(run(cmd, os.Args[min(2, len(os.Args)):]))
}

// commands are what `starcite <command>` dispatches to; usage names each
// of them (TestUsageNamesEveryCommand).
var commands = map[string]func(args []string) int{
	"server":      func([]string) int { return serve() },
	"ops":         opsMain,
	"shell":       shellMain,
	"healthcheck": healthcheck,
	"cert":        certMain,
	"bench":       func(args []string) int { return bench.Main(args, version) },
	"session":     clientCommand("session"),
	"append":      clientCommand("append"),
	"tail":        clientCommand("tail"),
	"version":     func([]string) int { fmt.Println("starcite", version); return 0 },
	"help":        func([]string) int { fmt.Println(usage); return 0 },
}

// aliases are the flag spellings of commands.
var aliases = map[string]string{"--version": "version", "-v": "version", "--help": "help", "-h": "help"}

// run dispatches one command and returns its exit code.
func run(cmd string, args []string) int {
	if a, ok := aliases[cmd]; ok {
		cmd = a
	}
	f, ok := commands[cmd]
	if !ok {
		fmt.Fprintf(os.Stderr, "starcite: unknown command %q\n\n%s\n", cmd, usage)
		return 2
	}
	return f(args)
}

const usage = `usage: starcite [command]

commands:
  server       run a node (default); configured by environment variables
  ops          operator commands against a running node (starcite ops help)
  shell        remote shell into a running node's actors (starcite shell -c help)
  healthcheck  probe this machine's node over HTTP, for a container HEALTHCHECK
  cert         create the CA and node certificates of the inter-node TLS (starcite cert help)
  bench        benchmark a node or the local cluster (starcite bench -h)
  session      create, list or get sessions (starcite session help)
  append       append events to a session (starcite append -h)
  tail         print a session's events, optionally following it (starcite tail -h)
  version      print the version
  help         print this text`

// clientCommand is a client command (app/cli); an interrupt ends a tail
// --follow cleanly.
func clientCommand(cmd string) func(args []string) int {
	return func(args []string) int {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return cli.Run(ctx, cmd, args, cli.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
	}
}

func serve() int {
	// Validate before re-executing in the data directory: the re-executed
	// image starts with a few lines of Dragonboat output, and a
	// configuration error must be exactly one line.
	if _, err := config.Load(config.NewEnv(os.LookupEnv)); err != nil {
		fmt.Fprintln(os.Stderr, "starcite: configuration error:", err)
		return 2
	}
	if err := reexecInDataDir(); err != nil {
		fmt.Fprintln(os.Stderr, "starcite: configuration error:", err)
		return 2
	}
	if os.Getenv("GOGC") == "" {
		// Most of a node's heap is long-lived Raft state; collecting at
		// +50% instead of +100% keeps an idle 256-group node near 130 MB
		// RSS instead of 180 MB for a little more GC work under load.
		debug.SetGCPercent(50)
	}
	cfg, err := config.Load(config.NewEnv(os.LookupEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "starcite: configuration error:", err)
		return 2
	}
	log := newLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	if err := runServer(cfg, log); err != nil {
		log.Error("starcite failed", "err", err)
		return 1
	}
	return 0
}
