// Command producer streams tokens into a session, as a language model
// would: one event per word of its input, appended with safe retries.
// Its producer_seq is saved after each append, so a producer that was
// killed resumes where it stopped and a resent event is deduplicated.
//
//	echo "the quick brown fox" | go run ./examples/producer --session demo
//
// Run it from the client module (client/); see docs/client.md.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"time"

	"starcite/client"
	"starcite/client/examples/savedseq"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:4000", "node URL(s), comma-separated")
	session := flag.String("session", "demo", "session id (created when missing)")
	producer := flag.String("producer", "producer-example", "producer id")
	state := flag.String("state", "producer.seq", "file that keeps the last producer_seq")
	delay := flag.Duration("delay", 50*time.Millisecond, "pause between tokens")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	urls := strings.Split(*url, ",")
	c, err := client.New(urls[0], client.WithNodes(urls[1:]...), client.WithToken(os.Getenv("STARCITE_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.CreateSession(ctx, client.NewSession{ID: *session, Title: "token stream"})
	if err != nil && !errors.Is(err, client.ErrSessionExists) {
		log.Fatal(err)
	}

	last, err := savedseq.Load(*state)
	if err != nil {
		log.Fatal(err)
	}
	p := c.Producer(*session, *producer, client.ResumeAfter(last))
	words := bufio.NewScanner(os.Stdin)
	words.Split(bufio.ScanWords)
	for words.Scan() {
		r, err := p.Append(ctx, "token", map[string]string{"text": words.Text() + " "})
		if err != nil {
			log.Fatalf("append: %v (producer_seq %d is saved; rerun to resume)", err, p.LastSeq())
		}
		if err := savedseq.Save(*state, p.LastSeq()); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("seq %d (producer_seq %d, deduped %v)\n", r.Seq, r.ProducerSeq, r.Deduped)
		time.Sleep(*delay)
	}
}
