// Package cli is the client side of the starcite binary: the session,
// append and tail commands, built on the Go client (module
// starcite/client, client/). Package main dispatches to Run; the
// commands talk to the HTTP and WebSocket API only, like any application
// (docs/client.md describes them).
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"starcite/client"
)

// Exit codes, the same as `starcite ops`.
const (
	exitOK          = 0
	exitRefused     = 1 // the server refused the request (its error body is printed)
	exitUsage       = 2
	exitUnreachable = 3
)

const globalFlags = `
every command takes:
  --url URL[,URL...]  the node(s) to talk to (default $STARCITE_URL or http://127.0.0.1:4000);
                      with several, a request or tail that cannot reach one moves on
  --token TOKEN       bearer token in jwt mode (default $STARCITE_TOKEN)

exit status: 0 done, 1 the server refused (its error body is printed on
stderr), 2 usage error or bad input, 3 no node could be reached`

// IO is what a command reads and writes, and its environment.
type IO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

// Run runs `starcite <cmd> args...` for cmd session, append or tail and
// returns the exit status. ctx ends a follow (tail --follow) cleanly.
func Run(ctx context.Context, cmd string, args []string, io IO) int {
	r := &runner{io: io}
	var err error
	switch cmd {
	case "session":
		err = r.session(ctx, args)
	case "append":
		err = r.append(ctx, args)
	case "tail":
		err = r.tail(ctx, args)
	default:
		err = usageErrorf("unknown command %q", cmd)
	}
	return r.exit(cmd, err)
}

// runner holds one command's streams and global flags.
type runner struct {
	io    IO
	url   string
	token string
}

// usageError is bad input: exit 2. help is the text to print after it.
type usageError struct {
	msg  string
	help string
}

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errHelp: the user asked for help, which is printed on stdout.
type errHelp struct{ text string }

func (e errHelp) Error() string { return "help" }

func (r *runner) exit(cmd string, err error) int {
	var help errHelp
	var usage *usageError
	var refused *client.APIError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &help):
		fmt.Fprintln(r.io.Stdout, help.text)
		return exitOK
	case errors.As(err, &usage) && usage.help != "":
		fmt.Fprintf(r.io.Stderr, "starcite %s: %s\n\n%s\n", cmd, usage.msg, usage.help)
		return exitUsage
	case errors.As(err, &usage):
		fmt.Fprintf(r.io.Stderr, "starcite %s: %s (see starcite %s -h)\n", cmd, usage.msg, cmd)
		return exitUsage
	case errors.As(err, &refused) && len(refused.Body) > 0:
		fmt.Fprintf(r.io.Stderr, "%s\n", strings.TrimSpace(string(refused.Body)))
		return exitRefused
	case errors.Is(err, client.ErrUnreachable):
		fmt.Fprintln(r.io.Stderr, err)
		return exitUnreachable
	}
	fmt.Fprintln(r.io.Stderr, err)
	return exitRefused
}

// flags returns a flag set with the global flags.
func (r *runner) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&r.url, "url", "", "")
	fs.StringVar(&r.token, "token", "", "")
	return fs
}

// parse parses args, flags and positional arguments in any order, and
// checks the count of positional arguments.
func parse(fs *flag.FlagSet, help string, args []string, positional int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp{help + "\n" + globalFlags}
			}
			return nil, &usageError{msg: err.Error(), help: help}
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != positional {
		return nil, &usageError{msg: fmt.Sprintf("want %d argument(s), got %d", positional, len(pos)), help: help}
	}
	return pos, nil
}

// cliRetry: a command gives up on unreachable nodes after a few seconds,
// rather than the library's twenty.
var cliRetry = client.RetryPolicy{Attempts: 6, MinBackoff: 200 * time.Millisecond, MaxBackoff: 3 * time.Second}

// client builds the client of the --url nodes with the --token.
func (r *runner) client() (*client.Client, error) {
	urls := r.url
	if urls == "" {
		urls = r.io.Getenv("STARCITE_URL")
	}
	if urls == "" {
		urls = "http://127.0.0.1:4000"
	}
	token := r.token
	if token == "" {
		token = r.io.Getenv("STARCITE_TOKEN")
	}
	list := strings.Split(urls, ",")
	c, err := client.New(list[0], client.WithNodes(list[1:]...), client.WithToken(token), client.WithRetry(cliRetry))
	if err != nil {
		return nil, usageErrorf("--url: %s", err)
	}
	return c, nil
}

// metaFlag collects repeated --meta k=v.
type metaFlag map[string]string

func (m metaFlag) String() string { return "" }

func (m metaFlag) Set(kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", kv)
	}
	m[k] = v
	return nil
}

// writeLine writes one JSON document and a newline.
func (r *runner) writeLine(b []byte) error {
	_, err := fmt.Fprintf(r.io.Stdout, "%s\n", b)
	return err
}
