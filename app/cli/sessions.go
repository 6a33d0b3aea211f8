package cli

import (
	"context"
	"strings"

	"starcite/client"
)

const sessionUsage = `usage:
  starcite session create [--id ID] [--title T] [--meta k=v]...   print the new session
  starcite session list [--limit N] [--meta k=v]...               one session per line, by id
  starcite session get ID                                         the session with last_seq`

func (r *runner) session(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return &usageError{msg: "missing subcommand", help: sessionUsage}
	}
	switch args[0] {
	case "create":
		return r.sessionCreate(ctx, args[1:])
	case "list":
		return r.sessionList(ctx, args[1:])
	case "get":
		return r.sessionGet(ctx, args[1:])
	case "help", "-h", "--help":
		return errHelp{sessionUsage + "\n" + globalFlags}
	}
	return &usageError{msg: "unknown subcommand " + args[0], help: sessionUsage}
}

func (r *runner) sessionCreate(ctx context.Context, args []string) error {
	fs := r.flags("session create")
	var s client.NewSession
	meta := metaFlag{}
	fs.StringVar(&s.ID, "id", "", "")
	fs.StringVar(&s.Title, "title", "", "")
	fs.Var(meta, "meta", "")
	if _, err := parse(fs, sessionUsage, args, 0); err != nil {
		return err
	}
	if len(meta) > 0 {
		s.Metadata = map[string]any{}
		for k, v := range meta {
			s.Metadata[k] = v
		}
	}
	c, err := r.client()
	if err != nil {
		return err
	}
	created, err := c.CreateSession(ctx, s)
	if err != nil {
		return err
	}
	return r.writeLine(created.Raw)
}

func (r *runner) sessionList(ctx context.Context, args []string) error {
	fs := r.flags("session list")
	limit := fs.Int("limit", 0, "")
	meta := metaFlag{}
	fs.Var(meta, "meta", "")
	if _, err := parse(fs, sessionUsage, args, 0); err != nil {
		return err
	}
	if *limit < 0 {
		return &usageError{msg: "--limit must be positive", help: sessionUsage}
	}
	for k := range meta {
		if strings.ContainsAny(k, "[]") {
			return usageErrorf("--meta %s: a filter key cannot hold brackets", k)
		}
	}
	c, err := r.client()
	if err != nil {
		return err
	}
	// --limit bounds the sessions printed; pages are as large as allowed.
	page := 1000
	if *limit > 0 && *limit < page {
		page = *limit
	}
	printed := 0
	for p, err := range c.ListSessions(ctx, client.ListOptions{Limit: page, Metadata: meta}) {
		if err != nil {
			return err
		}
		for _, s := range p.Sessions {
			if err := r.writeLine(s.Raw); err != nil {
				return err
			}
			if printed++; printed == *limit {
				return nil
			}
		}
	}
	return nil
}

func (r *runner) sessionGet(ctx context.Context, args []string) error {
	fs := r.flags("session get")
	pos, err := parse(fs, sessionUsage, args, 1)
	if err != nil {
		return err
	}
	c, err := r.client()
	if err != nil {
		return err
	}
	s, err := c.GetSession(ctx, pos[0])
	if err != nil {
		return err
	}
	return r.writeLine(s.Raw)
}
