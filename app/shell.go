package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"ergo.services/ergo/act"
	"ergo.services/ergo/app/system/inspect"
	"ergo.services/ergo/gen"

	"starcite/actors"
)

const shellUsage = `usage: starcite shell [--node NAME] [-c "command"]

An interactive shell into the actors of a running node (one command per
line; -c runs one and exits). The node is reached as by starcite ops.`

const shellHelp = `commands:
  processes [filter]         processes: pid, name, behaviour, mailbox, uptime, state
  tree                       the supervision tree
  inspect <name|pid>         what one actor reports (a tail's session and cursor, a
                             channel socket's principal and channels, the router's
                             leader hints, the archiver's progress, the observer's
                             node table, ...)
  sessions <group> [limit]   sessions of a local group: last_seq, archived_seq, hot events
  log [seconds]              stream the node's actor log (default 10 s)
  status, ready-nodes, node-status [node], drain-status [node], drain [node],
  undrain [node], group-replicas <id>, wait-ready [ms], wait-drained [ms]
                             the commands of starcite ops
  help                       this list
  quit                       leave (also exit, Ctrl-D)`

// logDefault is how long `log` streams without an argument.
const logDefault = 10 * time.Second

func shellMain(args []string) int {
	fs := flag.NewFlagSet("shell", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	node := fs.String("node", "", "target node (default NODE_NAME)")
	command := fs.String("c", "", "run one command and exit")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		if err != nil {
			fmt.Fprintf(os.Stderr, "starcite shell: %s\n\n", err)
		}
		fmt.Fprintln(os.Stderr, shellUsage)
		return exitUsage
	}
	target, err := opsTarget(*node)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starcite shell:", err)
		return exitUsage
	}
	c, err := dialOps(target)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitUnreachable
	}
	defer c.close()
	sh := &shell{c: c, out: os.Stdout, errOut: os.Stderr}
	if *command != "" {
		return sh.run(*command)
	}
	return sh.repl(os.Stdin)
}

type shell struct {
	c           *opsClient
	out, errOut io.Writer
}

// repl reads commands until quit or the end of input. Errors are shown
// and the session goes on.
func (sh *shell) repl(in *os.File) int {
	interactive := false
	if st, err := in.Stat(); err == nil {
		interactive = st.Mode()&os.ModeCharDevice != 0
	}
	if interactive {
		fmt.Fprintf(sh.out, "connected to %s; help lists the commands\n", string(sh.c.target))
	}
	scan := bufio.NewScanner(in)
	for {
		if interactive {
			fmt.Fprintf(sh.out, "%s> ", string(sh.c.target))
		}
		if !scan.Scan() {
			return exitOK
		}
		line := strings.TrimSpace(scan.Text())
		if line == "quit" || line == "exit" {
			return exitOK
		}
		sh.run(line)
	}
}

// run executes one command line and returns its exit code.
func (sh *shell) run(line string) int {
	f := strings.Fields(line)
	if len(f) == 0 {
		return exitOK
	}
	switch f[0] {
	case "help", "?":
		fmt.Fprintln(sh.out, shellHelp)
		return exitOK
	case "quit", "exit":
		return exitOK
	case "log":
		return sh.log(f[1:])
	}
	timeout := opsCallTimeout
	if f[0] == "wait-ready" || f[0] == "wait-drained" {
		d, err := actors.ParseTimeout(f[1:])
		if err != nil {
			fmt.Fprintln(sh.errOut, err)
			return exitFailed
		}
		timeout = d + 5*time.Second
	}
	reply, err := sh.c.call(actors.OpsRequest{Command: f[0], Args: f[1:]}, timeout)
	if err != nil {
		fmt.Fprintln(sh.errOut, err)
		return exitUnreachable
	}
	if reply.Err != "" {
		fmt.Fprintln(sh.errOut, reply.Err)
		return exitFailed
	}
	fmt.Fprintln(sh.out, reply.Text)
	return exitOK
}

// log streams the node's log through Ergo's remote inspector
// (system_inspect): the lines its actors log, as the
// node's own log has them.
func (sh *shell) log(args []string) int {
	d := logDefault
	if len(args) > 1 {
		fmt.Fprintln(sh.errOut, "usage: log [seconds]")
		return exitFailed
	}
	if len(args) == 1 {
		n, err := strconv.Atoi(args[0])
		if err != nil || n <= 0 {
			fmt.Fprintf(sh.errOut, "invalid duration %q (expected positive integer seconds)\n", args[0])
			return exitFailed
		}
		d = time.Duration(n) * time.Second
	}
	lines := make(chan string, 1024)
	ready := make(chan error, 1)
	pid, err := sh.c.node.Spawn(func() gen.ProcessBehavior { return &logTail{} }, gen.ProcessOptions{},
		sh.c.target, lines, ready)
	if err != nil {
		fmt.Fprintln(sh.errOut, "log:", err)
		return exitFailed
	}
	defer sh.c.node.Kill(pid)
	if err := <-ready; err != nil {
		fmt.Fprintln(sh.errOut, sh.c.explain(err, 5*time.Second))
		return exitUnreachable
	}
	fmt.Fprintf(sh.out, "streaming the log of %s for %s\n", string(sh.c.target), d)
	if f, ok := sh.out.(*os.File); ok {
		f.Sync() // a reader waiting for that line gets it now
	}
	end := time.After(d)
	for {
		select {
		case l := <-lines:
			fmt.Fprintln(sh.out, l)
		case <-end:
			return exitOK
		}
	}
}

type startLog struct{}

// logTail subscribes to the target's log event and hands each line to
// the shell. It runs on the shell's hidden node.
type logTail struct {
	act.Actor
	target gen.Atom
	lines  chan<- string
	ready  chan<- error
}

func (l *logTail) Init(args ...any) error {
	l.target, l.lines, l.ready = args[0].(gen.Atom), args[1].(chan string), args[2].(chan error)
	return l.Send(l.PID(), startLog{})
}

func (l *logTail) HandleMessage(from gen.PID, message any) error {
	if _, ok := message.(startLog); !ok {
		return nil
	}
	levels := []gen.LogLevel{gen.LogLevelInfo, gen.LogLevelWarning, gen.LogLevelError, gen.LogLevelPanic}
	v, err := l.CallWithTimeout(gen.ProcessID{Name: "system_inspect", Node: l.target},
		inspect.RequestInspectLog{Levels: levels}, 5)
	if err == nil {
		resp, ok := v.(inspect.ResponseInspectLog)
		if !ok {
			err = fmt.Errorf("system_inspect answered %T", v)
		} else {
			_, err = l.MonitorEvent(resp.Event)
		}
	}
	l.ready <- err
	if err != nil {
		return gen.TerminateReasonNormal
	}
	return nil
}

func (l *logTail) HandleEvent(ev gen.MessageEvent) error {
	var line string
	switch m := ev.Message.(type) {
	case inspect.MessageInspectLogProcess:
		src := string(m.Name)
		if src == "" {
			src = m.PID.String()
		}
		line = logLine(m.Timestamp, m.Level, src, m.Message)
	case inspect.MessageInspectLogNode:
		line = logLine(m.Timestamp, m.Level, string(m.Node), m.Message)
	case inspect.MessageInspectLogNetwork:
		line = logLine(m.Timestamp, m.Level, "network "+string(m.Peer), m.Message)
	case inspect.MessageInspectLogMeta:
		line = logLine(m.Timestamp, m.Level, m.Meta.String(), m.Message)
	default:
		return nil
	}
	select {
	case l.lines <- line:
	default: // the shell is not reading: drop rather than block
	}
	return nil
}

func logLine(ts int64, level gen.LogLevel, src, msg string) string {
	return fmt.Sprintf("%s %-7s %s: %s", time.Unix(0, ts).UTC().Format("15:04:05.000"),
		strings.Trim(level.String(), `"`), src, msg)
}
