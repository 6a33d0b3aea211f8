package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"ergo.services/ergo/gen"
)

// newLogger returns the process logger: text or JSON lines on w.
func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lvl slog.Level
	switch level {
	case "debug":
		lvl = slog.LevelDebug
	case "warn":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// ergoLogger sends Ergo's log messages to slog, naming the actor that
// logged. Ergo calls it synchronously; slog handlers only format and
// write a line.
type ergoLogger struct{ l *slog.Logger }

func (b ergoLogger) Log(m gen.MessageLog) {
	lvl := slog.LevelInfo
	switch {
	case m.Level <= gen.LogLevelDebug:
		lvl = slog.LevelDebug
	case m.Level == gen.LogLevelWarning:
		lvl = slog.LevelWarn
	case m.Level >= gen.LogLevelError:
		lvl = slog.LevelError
	}
	var attrs []any
	switch s := m.Source.(type) {
	case gen.MessageLogProcess:
		name := string(s.Name)
		if name == "" {
			name = s.Behavior
		}
		attrs = append(attrs, "actor", name, "pid", s.PID.String())
	case gen.MessageLogMeta:
		attrs = append(attrs, "meta", s.Meta.String())
	case gen.MessageLogNetwork:
		attrs = append(attrs, "peer", string(s.Peer))
	}
	if lvl == slog.LevelInfo && chattyConnectionLog(m.Format) {
		lvl = slog.LevelDebug
	}
	if !b.l.Enabled(context.Background(), lvl) {
		return
	}
	for _, f := range m.Fields {
		attrs = append(attrs, f.Name, f.Value)
	}
	b.l.Log(context.Background(), lvl, fmt.Sprintf(m.Format, m.Args...), attrs...)
}

func (b ergoLogger) Terminate() {}

// chattyConnectionLog reports Ergo's per-connection lines: every `starcite
// ops` or shell call opens and closes one, and the observer already logs
// what matters about peers.
func chattyConnectionLog(format string) bool {
	return strings.HasPrefix(format, "new connection with") || strings.HasPrefix(format, "connection with")
}
