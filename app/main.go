// Command starcite is the Starcite server and its operator tools, one
// binary per node:
//
//	starcite [server]   run a node, configured by environment variables
//	starcite ops ...    operator commands (status, drain, wait-ready, ...)
//	starcite shell      remote shell into a live node's actors
//	starcite version    print the version
package main

import (
	"fmt"
	"os"
	"runtime/debug"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	cmd := "server"
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	switch cmd {
	case "server":
		os.Exit(serve())
	case "bench":
		os.Exit(runBench(os.Args[2:]))
	case "healthcheck":
		os.Exit(healthcheck(os.Args[2:]))
	case "ops":
		os.Exit(opsMain(os.Args[2:]))
	case "shell":
		os.Exit(shellMain(os.Args[2:]))
	case "version", "--version", "-v":
		fmt.Println("starcite", version)
	case "help", "--help", "-h":
		fmt.Println(usage)
	default:
		fmt.Fprintf(os.Stderr, "starcite: unknown command %q\n\n%s\n", cmd, usage)
		os.Exit(2)
	}
}

const usage = `usage: starcite [command]

commands:
  server    run a node (default); configured by environment variables
  ops       operator commands against a running node (starcite ops help)
  shell     remote shell into a running node's actors (starcite shell -c help)
  version   print the version`

func serve() int {
	// Validate before re-executing in the data directory: the re-executed
	// image starts with a few lines of Dragonboat output, and a
	// configuration error must be exactly one line.
	if _, err := loadConfig(newEnv()); err != nil {
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
	cfg, err := loadConfig(newEnv())
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
