package cli

import (
	"context"
	"errors"

	"starcite/client"
)

const tailUsage = `usage: starcite tail ID [--cursor N] [--follow] [--batch-size N]

Prints the session's events with seq > N (default 0), one JSON object per
line. Without --follow it stops once it has printed the session's last_seq
as of the start; with --follow it goes on printing live events until
interrupted, reconnecting (to the next --url) after a drop without
repeating or skipping an event. --batch-size sets the frame size the
server sends (1..1000), not the output.`

func (r *runner) tail(ctx context.Context, args []string) error {
	fs := r.flags("tail")
	cursor := fs.Uint64("cursor", 0, "")
	follow := fs.Bool("follow", false, "")
	batch := fs.Int("batch-size", 1, "")
	pos, err := parse(fs, tailUsage, args, 1)
	if err != nil {
		return err
	}
	if *batch < 1 || *batch > 1000 {
		return &usageError{msg: "--batch-size must be 1..1000", help: tailUsage}
	}
	c, err := r.client()
	if err != nil {
		return err
	}
	var until uint64 // the last seq to print; 0: follow
	if !*follow {
		s, err := c.GetSession(ctx, pos[0])
		if err != nil {
			return err
		}
		if s.LastSeq <= *cursor {
			return nil
		}
		until = s.LastSeq
	}
	for e, err := range c.Tail(ctx, pos[0], *cursor, client.BatchSize(*batch)) {
		if err != nil {
			if *follow && errors.Is(err, context.Canceled) && ctx.Err() != nil {
				return nil // interrupted: the normal end of a follow
			}
			return err
		}
		if err := r.writeLine(e.Raw); err != nil {
			return err
		}
		if e.Seq == until {
			return nil
		}
	}
	return nil
}
