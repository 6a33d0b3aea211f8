package procrun

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func startSh(t *testing.T, script string) *Process {
	t.Helper()
	p, err := Start(Spec{Path: "/bin/sh", Args: []string{"-c", script}, Env: []string{"GREETING=hello"},
		LogPath: filepath.Join(t.TempDir(), "log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(syscall.SIGKILL, 10*time.Second) })
	return p
}

// waitLog waits until the process's log holds want.
func waitLog(t *testing.T, p *Process, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(LogTail(p.LogPath, 10), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log never showed %q: %q", want, LogTail(p.LogPath, 10))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStopReportsTheExit(t *testing.T) {
	clean := startSh(t, `trap 'echo bye; exit 0' TERM; echo "$GREETING"; while :; do sleep 0.05; done`)
	waitLog(t, clean, "hello")
	if err := clean.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Errorf("clean exit: %v", err)
	}
	if !clean.Exited() || !strings.HasSuffix(LogTail(clean.LogPath, 1), "bye") {
		t.Errorf("exited %v, log %q", clean.Exited(), LogTail(clean.LogPath, 5))
	}

	failing := startSh(t, `trap 'exit 3' TERM; echo up; while :; do sleep 0.05; done`)
	waitLog(t, failing, "up")
	if err := failing.Stop(syscall.SIGTERM, 10*time.Second); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("exit 3 reported as %v", err)
	}
}

func TestStopKillsAProcessThatDoesNotExit(t *testing.T) {
	stubborn := startSh(t, `trap '' TERM; echo up; while :; do sleep 0.05; done`)
	waitLog(t, stubborn, "up")
	err := stubborn.Stop(syscall.SIGTERM, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "did not exit") {
		t.Errorf("Stop: %v", err)
	}
	if !stubborn.Exited() {
		t.Error("still running after Stop")
	}
	if err := syscall.Kill(stubborn.Pid(), 0); err == nil {
		t.Error("the process id still names a process")
	}
}

func TestStopResumesAPausedProcess(t *testing.T) {
	p := startSh(t, `trap 'exit 0' TERM; echo up; while :; do sleep 0.05; done`)
	waitLog(t, p, "up")
	p.Signal(syscall.SIGSTOP)
	if err := p.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Errorf("paused process: %v", err)
	}
}

func TestLogTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	os.WriteFile(path, []byte("a\nb\nc\n"), 0o644)
	if got := LogTail(path, 2); got != "b\nc" {
		t.Errorf("LogTail 2: %q", got)
	}
	if got := LogTail(path, 10); got != "a\nb\nc" {
		t.Errorf("LogTail 10: %q", got)
	}
	if got := LogTail(filepath.Join(t.TempDir(), "none"), 2); got != "" {
		t.Errorf("missing log: %q", got)
	}
}

// TestFreePorts: distinct ports, each free on every host asked.
func TestFreePorts(t *testing.T) {
	hosts := []string{"127.0.0.1", "127.0.0.2"}
	ports, err := FreePorts(hosts, 3)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Errorf("port %d twice in %v", p, ports)
		}
		seen[p] = true
		for _, h := range hosts {
			ln, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(p)))
			if err != nil {
				t.Errorf("port %d not free on %s: %v", p, h, err)
				continue
			}
			ln.Close()
		}
	}
	if _, err := FreePorts(nil, 1); err == nil {
		t.Error("no host: no error")
	}
}
