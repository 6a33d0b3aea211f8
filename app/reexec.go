package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// dragonboatSoftSettings shrinks the queues Dragonboat pre-allocates for
// every replica (defaults: 2x1024 messages, 2x2048 proposals, 2x4096 read
// indexes, ~0.9 MB per replica, ~250 MB of heap for 256 groups). Group
// commit keeps at most one append proposal per group in flight, so short
// queues lose nothing (the same throughput was measured with these
// values; docs/decisions.md#d30).
const dragonboatSoftSettings = `{"ReceiveQueueLength":64,"IncomingProposalQueueLength":256,"IncomingReadIndexQueueLength":256}` + "\n"

// execStageEnv marks the process image that already runs in the data
// directory.
const execStageEnv = "STARCITE_EXEC_STAGE"

// reexecInDataDir applies dragonboatSoftSettings. Dragonboat reads them
// only from dragonboat-soft-settings.json in the working directory, once,
// while its packages initialise — before main runs. So the server writes
// the file into its data directory, makes the path variables absolute,
// changes into that directory and re-executes itself (same PID, same
// arguments). It returns only when the re-exec is not needed or failed.
func reexecInDataDir() error {
	if os.Getenv(execStageEnv) == "1" {
		return nil
	}
	dir := os.Getenv("STARCITE_RAFT_DATA_DIR")
	if dir == "" {
		dir = "./data"
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("STARCITE_RAFT_DATA_DIR: %w", err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return fmt.Errorf("STARCITE_RAFT_DATA_DIR: %w", err)
	}
	if err := os.WriteFile(filepath.Join(abs, "dragonboat-soft-settings.json"), []byte(dragonboatSoftSettings), 0o640); err != nil {
		return fmt.Errorf("STARCITE_RAFT_DATA_DIR: %w", err)
	}
	env := setEnv(os.Environ(), execStageEnv, "1")
	env = setEnv(env, "STARCITE_RAFT_DATA_DIR", abs)
	if d := os.Getenv("STARCITE_ARCHIVE_DIR"); d != "" && !filepath.IsAbs(d) {
		if a, err := filepath.Abs(d); err == nil {
			env = setEnv(env, "STARCITE_ARCHIVE_DIR", a)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.Chdir(abs); err != nil {
		return err
	}
	return syscall.Exec(exe, os.Args, env)
}

// setEnv replaces (or adds) key in an environment list; duplicates would
// not override, the first entry of a key wins.
func setEnv(env []string, key, value string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}
