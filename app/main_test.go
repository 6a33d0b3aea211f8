package main

import (
	"regexp"
	"testing"
)

// TestUsageNamesEveryCommand: a command that `starcite` dispatches but
// `starcite help` does not list is one an operator cannot find.
func TestUsageNamesEveryCommand(t *testing.T) {
	for name := range commands {
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(name) + ` +\S`).MatchString(usage) {
			t.Errorf("usage does not list command %q:\n%s", name, usage)
		}
	}
	for alias, cmd := range aliases {
		if _, ok := commands[cmd]; !ok {
			t.Errorf("alias %q names no command (%q)", alias, cmd)
		}
	}
}

func TestUnknownCommandIsAUsageError(t *testing.T) {
	if code := run("no-such-command", nil); code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
}
