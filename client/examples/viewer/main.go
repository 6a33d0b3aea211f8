// Command viewer prints a session's token stream as it is written and
// keeps its cursor in a file: stopped and started again, it resumes after
// the last token it printed, with nothing repeated or missed, whichever
// node it reconnects to.
//
//	go run ./examples/viewer --session demo --url http://127.0.0.1:4000,http://127.0.0.2:4000
//
// Run it from the client module (client/); see docs/client.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"

	"starcite/client"
	"starcite/client/examples/savedseq"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:4000", "node URL(s), comma-separated")
	session := flag.String("session", "demo", "session id")
	cursorFile := flag.String("cursor", "viewer.cursor", "file that keeps the last seq printed")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	urls := strings.Split(*url, ",")
	c, err := client.New(urls[0], client.WithNodes(urls[1:]...), client.WithToken(os.Getenv("STARCITE_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}

	cursor, err := savedseq.Load(*cursorFile)
	if err != nil {
		log.Fatal(err)
	}
	for e, err := range c.Tail(ctx, *session, cursor, client.BatchSize(100)) {
		if errors.Is(err, context.Canceled) {
			fmt.Println()
			return
		}
		if err != nil {
			log.Fatalf("tail: %v (resume later from seq %d)", err, cursor)
		}
		var token struct{ Text string }
		json.Unmarshal(e.Payload, &token)
		fmt.Print(token.Text)
		cursor = e.Seq
		if err := savedseq.Save(*cursorFile, cursor); err != nil {
			log.Fatal(err)
		}
	}
}
