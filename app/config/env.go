package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Env reads configuration variables by the rules of
// docs/operations.md#configuration: Load reads a node's whole
// configuration with it, the operator commands (`starcite ops`,
// `starcite healthcheck`) the few variables they share with the server.
// The first invalid value is kept, so boot can stop with one line naming
// the variable.
type Env struct {
	lookup func(string) (string, bool)
	err    error
}

// NewEnv reads variables through lookup (os.LookupEnv in a process).
func NewEnv(lookup func(string) (string, bool)) *Env { return &Env{lookup: lookup} }

// Err is the first invalid value read, as an error naming the variable.
func (e *Env) Err() error { return e.err }

func (e *Env) fail(name, value, want string) {
	if e.err == nil {
		e.err = fmt.Errorf("%s: invalid value %q (%s)", name, value, want)
	}
}

// raw returns the trimmed value of a variable; blank counts as unset.
func (e *Env) raw(name string) (string, bool) {
	v, ok := e.lookup(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// Str reads a string; blank counts as unset.
func (e *Env) Str(name, def string) string {
	if v, ok := e.raw(name); ok {
		return v
	}
	return def
}

// posInt reads a positive integer.
func (e *Env) posInt(name string, def int) int {
	v, ok := e.raw(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		e.fail(name, v, "expected a positive integer")
		return def
	}
	return n
}

// nonNegInt reads an integer >= 0.
func (e *Env) nonNegInt(name string, def int) int {
	v, ok := e.raw(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		e.fail(name, v, "expected an integer >= 0")
		return def
	}
	return n
}

// Port reads a port number, 1..65535.
func (e *Env) Port(name string, def int) int {
	p := e.posInt(name, def)
	if p > 65535 {
		e.fail(name, strconv.Itoa(p), "expected a port number 1..65535")
		return def
	}
	return p
}

// millis reads a positive number of milliseconds.
func (e *Env) millis(name string, def time.Duration) time.Duration {
	return time.Duration(e.posInt(name, int(def/time.Millisecond))) * time.Millisecond
}

// boolean reads 1/true/yes/on or 0/false/no/off, any case.
func (e *Env) boolean(name string, def bool) bool {
	v, ok := e.raw(name)
	if !ok {
		return def
	}
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true
	case "0", "false", "no", "off":
		return false
	}
	e.fail(name, v, "expected one of 1, true, yes, on, 0, false, no, off")
	return def
}

// size reads a byte size: digits and an optional unit (B, K, KB, KiB, M,
// MB, MiB, G, GB, GiB, T, TB, TiB; 1024-based, any case). No unit means
// MiB; zero is invalid (docs/operations.md#configuration).
func (e *Env) size(name string, def int64) int64 {
	v, ok := e.raw(name)
	if !ok {
		return def
	}
	n, err := parseSize(v)
	if err != nil {
		e.fail(name, v, "expected a size such as 512M, 2G or 1024KiB")
		return def
	}
	return n
}

func parseSize(v string) (int64, error) {
	i := 0
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		i++
	}
	n, err := strconv.ParseInt(v[:i], 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", v)
	}
	var shift uint
	switch strings.ToLower(strings.TrimSpace(v[i:])) {
	case "b":
		shift = 0
	case "k", "kb", "kib":
		shift = 10
	case "", "m", "mb", "mib":
		shift = 20
	case "g", "gb", "gib":
		shift = 30
	case "t", "tb", "tib":
		shift = 40
	default:
		return 0, fmt.Errorf("bad size unit in %q", v)
	}
	if n > (1<<62)>>shift {
		return 0, fmt.Errorf("size %q too large", v)
	}
	return n << shift, nil
}

// list reads a comma-separated list: items trimmed, blanks dropped,
// duplicates removed, order kept.
func (e *Env) list(name string) []string {
	v, ok := e.raw(name)
	if !ok {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item != "" && !seen[item] {
			seen[item] = true
			out = append(out, item)
		}
	}
	return out
}
