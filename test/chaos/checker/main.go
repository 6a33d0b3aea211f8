// Command checker judges a chaos-run history (package history) on its
// own: it reads nothing but the history file, prints what it counted and
// every violation it found, and exits 1 when there is any (2 when the
// history cannot be read).
//
//	go run ./test/chaos/checker [-porcupine=10s] HISTORY
//
// What it checks, per session, against the logs every node served at the
// end of the run:
//
//   - every node serves the same log, seqs contiguous from 1;
//   - every acknowledged append is in the log exactly once, at the seq it
//     was acknowledged with, with the content that was sent; a retry or a
//     deliberate resend came back deduped with the original seq;
//   - no event that nobody sent, no second copy of any producer_seq;
//   - an append answered 503 raft_unavailable never became an event; an
//     ambiguous one (timeout, transport error, other 5xx) at most once;
//   - every 409 is one a retrying client can explain from what it did;
//   - answers respect real time: an append that starts after another
//     returned never sees an older log, and a new write gets a seq above
//     every seq already acknowledged;
//   - every tail connection received strictly ascending seqs starting at
//     its cursor + 1, without gap or duplicate, with the bytes of the
//     final log; no close code 1000; every tailer caught up at the end;
//   - and, with -porcupine, that each session's history of appends and
//     final reads is linearizable against a model of the producer rules
//     (github.com/anishathalye/porcupine).
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"starcite/test/chaos/history"
)

func main() {
	porcupineTimeout := flag.Duration("porcupine", 10*time.Second,
		"time budget of the linearizability check per session (0 = skip it)")
	maxShown := flag.Int("show", 50, "violations to print in full")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: checker [-porcupine=10s] [-show=50] HISTORY")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	recs, err := history.ReadFile(flag.Arg(0))
	if err != nil {
		fmt.Fprintf(os.Stderr, "checker: %v\n", err)
		os.Exit(2)
	}
	rep := Check(recs, Options{Porcupine: *porcupineTimeout})
	rep.Print(os.Stdout, flag.Arg(0), *maxShown)
	if len(rep.Violations) > 0 {
		os.Exit(1)
	}
}
