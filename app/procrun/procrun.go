// Package procrun runs the child processes of the tools and tests that
// drive starcite as a black box — `starcite bench` (package bench) and
// the test harness (test/harness): output appended to a log file, each
// process in its own process group, its exit watched — and finds free
// TCP ports for them to listen on. The server itself never uses it.
package procrun

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spec is a process to start.
type Spec struct {
	Path    string   // the program
	Args    []string // its arguments, without the program
	Env     []string // its whole environment, NAME=value; the last value of a name wins
	LogPath string   // stdout and stderr are appended to this file
	// DieWithParent has the kernel kill the process when the thread that
	// started it exits (Linux's parent-death signal), so that a tool
	// killed without cleaning up leaves no server behind.
	DieWithParent bool
}

// Process is a started child process.
type Process struct {
	LogPath string

	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	err  error // how it exited, once done is closed
}

// Start starts s.
func Start(s Spec) (*Process, error) {
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(s.Path, s.Args...)
	cmd.Env = s.Env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.DieWithParent {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &Process{LogPath: s.LogPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process (SIGSTOP and SIGCONT pause and resume
// it); a process that has exited is left alone.
func (p *Process) Signal(sig syscall.Signal) {
	if !p.Exited() {
		p.cmd.Process.Signal(sig)
	}
}

// Stop sends sig and waits up to wait for the process to exit; a process
// still running then is killed, and Stop says so. A paused process is
// resumed first, so that it can handle sig. Unless sig is SIGKILL, Stop
// returns how the process exited: nil for exit status 0.
func (p *Process) Stop(sig syscall.Signal, wait time.Duration) error {
	p.Signal(syscall.SIGCONT)
	p.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(wait):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("did not exit within %s after %s", wait, sig)
	}
	if sig == syscall.SIGKILL {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// LogTail returns the last lines of the log file at path ("" when it
// cannot be read).
func LogTail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// FreePort returns a TCP port that was free on host a moment ago.
func FreePort(host string) (int, error) {
	ports, err := FreePorts([]string{host}, 1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// FreePorts returns count distinct TCP ports, each of which was free on
// every one of hosts a moment ago (the nodes of a local cluster, one per
// loopback address, share their port numbers).
func FreePorts(hosts []string, count int) ([]int, error) {
	if len(hosts) == 0 {
		return nil, errors.New("free ports: no host")
	}
	var ports []int
	seen := map[int]bool{}
	for attempt := 0; len(ports) < count; attempt++ {
		if attempt > 200 {
			return nil, fmt.Errorf("no free port common to %s", strings.Join(hosts, ", "))
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(hosts[0], "0"))
		if err != nil {
			return nil, fmt.Errorf("free port on %s: %w", hosts[0], err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ok := !seen[port]
		var others []net.Listener
		for _, h := range hosts[1:] {
			if !ok {
				break
			}
			l, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			others = append(others, l)
		}
		for _, l := range others {
			l.Close()
		}
		ln.Close()
		if ok {
			seen[port] = true
			ports = append(ports, port)
		}
	}
	return ports, nil
}
