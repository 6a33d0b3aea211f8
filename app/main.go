// Command starcite is the Starcite server and its operator tools, one
// binary per node:
//
//	starcite [server]   run a node, configured by environment variables
//	starcite version    print the version
package main

import (
	"fmt"
	"os"
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
  version   print the version`

func serve() int {
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
