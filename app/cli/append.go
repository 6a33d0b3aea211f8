package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"starcite/client"
)

const appendUsage = `usage: starcite append ID --type T --payload JSON|@FILE|- [--lines] [--text]
                       [--producer-id P --producer-seq N]

Appends one event and prints {"seq":…,"last_seq":…,"deduped":…}.

  --payload JSON   the event's payload, a JSON object; @FILE reads it from a
                   file, - from standard input
  --lines          one event per input line (--payload - or @FILE), one
                   answer line each: a pipe of tokens becomes a stream
  --text           the payload is {"text": <input>} (each line with --lines)
  --producer-id P  the producer (default: a new random one)
  --producer-seq N the first event's producer_seq (default 1; +1 per line)

Each event is retried with the same producer_seq until the server answers,
so it is in the log once. Rerunning a command with the same --producer-id
and --producer-seq resends the same events: the server deduplicates the
last one a producer sent (deduped: true).`

// maxPayload is the largest payload read: the server's body limit.
const maxPayload = 8_000_000

func (r *runner) append(ctx context.Context, args []string) error {
	fs := r.flags("append")
	eventType := fs.String("type", "", "")
	payload := fs.String("payload", "", "")
	lines := fs.Bool("lines", false, "")
	asText := fs.Bool("text", false, "")
	producerID := fs.String("producer-id", "", "")
	producerSeq := fs.Uint64("producer-seq", 0, "")
	pos, err := parse(fs, appendUsage, args, 1)
	if err != nil {
		return err
	}
	switch {
	case *eventType == "":
		return usageErrorf("--type is required")
	case *payload == "":
		return usageErrorf("--payload is required")
	case *lines && *payload != "-" && !strings.HasPrefix(*payload, "@"):
		return usageErrorf("--lines reads --payload - or @FILE")
	case isSet(fs, "producer-seq") && *producerSeq == 0:
		return usageErrorf("--producer-seq starts at 1")
	case isSet(fs, "producer-seq") && *producerID == "":
		return usageErrorf("--producer-seq needs --producer-id")
	}
	if *producerID == "" {
		*producerID = randomProducer()
	}
	if *producerSeq == 0 {
		*producerSeq = 1
	}
	in, closeIn, err := r.payloadSource(*payload)
	if err != nil {
		return usageErrorf("--payload: %s", err)
	}
	defer closeIn()
	c, err := r.client()
	if err != nil {
		return err
	}
	p := c.Producer(pos[0], *producerID, client.ResumeAfter(*producerSeq-1))
	send := func(n int, raw []byte) error {
		body, err := payloadJSON(raw, *asText)
		if err != nil {
			if *lines {
				return usageErrorf("line %d: %s", n, err)
			}
			return usageErrorf("--payload: %s", err)
		}
		res, err := p.Append(ctx, *eventType, body)
		if err != nil {
			return err
		}
		out, _ := json.Marshal(res)
		return r.writeLine(out)
	}
	if !*lines {
		raw, err := io.ReadAll(io.LimitReader(in, maxPayload+1))
		if err != nil {
			return usageErrorf("--payload: %s", err)
		}
		if len(raw) > maxPayload {
			return usageErrorf("--payload: larger than %d bytes", maxPayload)
		}
		if *asText {
			raw = bytes.TrimSuffix(bytes.TrimSuffix(raw, []byte("\n")), []byte("\r"))
		} else {
			raw = bytes.TrimSpace(raw)
		}
		return send(1, raw)
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), maxPayload)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if !*asText && len(bytes.TrimSpace(line)) == 0 {
			continue // JSON Lines: blank lines carry nothing
		}
		if err := send(n, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return usageErrorf("--payload: %s", err)
	}
	return nil
}

// payloadSource opens the --payload argument: a literal, @FILE or -.
func (r *runner) payloadSource(arg string) (io.Reader, func(), error) {
	switch {
	case arg == "-":
		return r.io.Stdin, func() {}, nil
	case strings.HasPrefix(arg, "@"):
		f, err := os.Open(arg[1:])
		if err != nil {
			return nil, nil, err
		}
		return f, func() { f.Close() }, nil
	}
	return strings.NewReader(arg), func() {}, nil
}

// payloadJSON returns the payload to send: raw as {"text": raw} with
// --text, else raw itself, which must be JSON (the server checks that it
// is an object).
func payloadJSON(raw []byte, asText bool) (json.RawMessage, error) {
	if asText {
		b, err := json.Marshal(map[string]string{"text": string(raw)})
		return b, err
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("not valid JSON: %.40q", raw)
	}
	return raw, nil
}

// isSet reports whether the flag name was given.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// randomProducer names a producer for one run of the command.
func randomProducer() string {
	var b [6]byte
	rand.Read(b[:])
	return "cli-" + hex.EncodeToString(b[:])
}
