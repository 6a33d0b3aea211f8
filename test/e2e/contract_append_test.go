package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"starcite/test/harness"
)

// TestContractAppend: POST /v1/sessions/{id}/append in none mode
// (docs/api.md#append, docs/api.md#producer-sequencing,
// docs/api.md#expected-seq, docs/decisions.md#d1 to docs/decisions.md#d4).
func TestContractAppend(t *testing.T) {
	n := harness.StartNode(t, harness.Options{})
	for _, id := range []string{"ap", "v", "ps", "pr", "ex", "d4", "eq", "md", "fields", "ct", "ord", "lim"} {
		createOK(t, n, fmt.Sprintf(`{"id":%q}`, id))
	}

	t.Run("success shape and stored event", func(t *testing.T) {
		wantAppend(t, appendReq(t, n, "ap", `{"type":"msg","payload":{},"producer_id":"p1","producer_seq":1}`), 1, 1, false)
		wantAppend(t, appendReq(t, n, "ap", `{"type":"msg","payload":{"a":[1,2.5,"x",null,true,{}]},"producer_id":"p1","producer_seq":2}`), 2, 2, false)
		wantAppend(t, appendReq(t, n, "ap", `{"type":"other","payload":{"b":1},"producer_id":"p2","producer_seq":1}`), 3, 3, false)
		wantAppend(t, appendReq(t, n, "ap", `{"type":"nums","payload":{"i":1,"f":1.0,"e":1E2,"big":123456789012345678901234567890,"neg":-0.5,"tiny":1e-7},"producer_id":"p2","producer_seq":2}`), 4, 4, false)
		wantJSON(t, "payload 4", eventAt(t, n, "ap", 4)["payload"], `{"i":1,"f":1.0,"e":100.0,"big":123456789012345678901234567890,"neg":-0.5,"tiny":0.0000001}`)
		ev := eventAt(t, n, "ap", 1)
		wantJSON(t, "event 1", ev, fmt.Sprintf(`{"seq":1,"cursor":1,"type":"msg","payload":{},"actor":"service:service","producer_id":"p1","producer_seq":1,
			"metadata":{"starcite_principal":%s},"refs":{},"idempotency_key":null,"inserted_at":%q,"tenant_id":"service"}`,
			servicePrincipal, ev["inserted_at"]))
		wantTimestamp(t, "inserted_at", ev["inserted_at"])
		wantJSON(t, "payload 2", eventAt(t, n, "ap", 2)["payload"], `{"a":[1,2.5,"x",null,true,{}]}`)
		wantJSON(t, "event 3 producer", eventAt(t, n, "ap", 3)["producer_id"], `"p2"`)
		if got := lastSeq(t, n, "ap"); got != 4 {
			t.Errorf("last_seq %d, want 4", got)
		}
	})

	t.Run("type and producer_id at their limit", func(t *testing.T) {
		// 256 bytes of UTF-8 each (docs/api.md#limits); one more is in
		// the validation cases below.
		typ, producer := strings.Repeat("t", 254)+"é", strings.Repeat("p", 254)+"é"
		body := fmt.Sprintf(`{"type":%q,"payload":{},"producer_id":%q,"producer_seq":1}`, typ, producer)
		wantAppend(t, appendReq(t, n, "lim", body), 1, 1, false)
		if ev := eventAt(t, n, "lim", 1); ev["type"] != typ || ev["producer_id"] != producer {
			t.Errorf("not stored as sent: %v %v", ev["type"], ev["producer_id"])
		}
	})

	t.Run("validation", func(t *testing.T) {
		type tc struct {
			name string
			over map[string]string
			code string
		}
		ev, md, rf := "invalid_event", "invalid_metadata", "invalid_refs"
		cases := []tc{
			// type and payload
			{"type missing", map[string]string{"type": omit}, ev},
			{"type empty", map[string]string{"type": `""`}, ev},
			{"type null", map[string]string{"type": `null`}, ev},
			{"type number", map[string]string{"type": `1`}, ev},
			{"type object", map[string]string{"type": `{}`}, ev},
			{"type array", map[string]string{"type": `["msg"]`}, ev},
			{"type bool", map[string]string{"type": `true`}, ev},
			{"type one byte over 256", map[string]string{"type": `"` + strings.Repeat("t", 255) + `é"`}, ev},
			{"producer_id one byte over 256", map[string]string{"producer_id": `"` + strings.Repeat("p", 255) + `é"`}, ev},
			{"payload missing", map[string]string{"payload": omit}, ev},
			{"payload array", map[string]string{"payload": `[]`}, ev},
			{"payload array of object", map[string]string{"payload": `[{"k":"v"}]`}, ev},
			{"payload string", map[string]string{"payload": `"x"`}, ev},
			{"payload JSON text in a string", map[string]string{"payload": `"{}"`}, ev},
			{"payload null", map[string]string{"payload": `null`}, ev},
			{"payload number", map[string]string{"payload": `1`}, ev},
			{"payload bool", map[string]string{"payload": `false`}, ev},
			// producer_id and producer_seq presence and shape
			{"producer_id missing", map[string]string{"producer_id": omit}, ev},
			{"producer_seq missing", map[string]string{"producer_seq": omit}, ev},
			{"both producer fields missing", map[string]string{"producer_id": omit, "producer_seq": omit}, ev},
			{"producer_id null", map[string]string{"producer_id": `null`}, ev},
			{"producer_id number", map[string]string{"producer_id": `1`}, ev},
			{"producer_id object", map[string]string{"producer_id": `{}`}, ev},
			{"producer_id empty", map[string]string{"producer_id": `""`}, ev},
			{"producer_seq null", map[string]string{"producer_seq": `null`}, ev},
			{"producer_seq 0", map[string]string{"producer_seq": `0`}, ev},
			{"producer_seq -1", map[string]string{"producer_seq": `-1`}, ev},
			{"producer_seq 1.0", map[string]string{"producer_seq": `1.0`}, ev},
			{"producer_seq 1e0", map[string]string{"producer_seq": `1e0`}, ev},
			{"producer_seq 1.5", map[string]string{"producer_seq": `1.5`}, ev},
			{`producer_seq "1.5"`, map[string]string{"producer_seq": `"1.5"`}, ev},
			{`producer_seq "abc"`, map[string]string{"producer_seq": `"abc"`}, ev},
			{`producer_seq ""`, map[string]string{"producer_seq": `""`}, ev},
			{`producer_seq "0"`, map[string]string{"producer_seq": `"0"`}, ev},
			{`producer_seq "-1"`, map[string]string{"producer_seq": `"-1"`}, ev},
			{`producer_seq " 1"`, map[string]string{"producer_seq": `" 1"`}, ev},
			{`producer_seq "1 "`, map[string]string{"producer_seq": `"1 "`}, ev},
			{`producer_seq "1x"`, map[string]string{"producer_seq": `"1x"`}, ev},
			{"producer_seq 2^63", map[string]string{"producer_seq": `9223372036854775808`}, ev},
			{`producer_seq "2^63"`, map[string]string{"producer_seq": `"9223372036854775808"`}, ev},
			{"producer_seq 2^64", map[string]string{"producer_seq": `18446744073709551616`}, ev},
			{"producer_seq bool", map[string]string{"producer_seq": `true`}, ev},
			{"producer_seq array", map[string]string{"producer_seq": `[1]`}, ev},
			{"producer_seq object", map[string]string{"producer_seq": `{}`}, ev},
			// actor
			{"actor empty", map[string]string{"actor": `""`}, ev},
			{"actor other service", map[string]string{"actor": `"service:other"`}, ev},
			{"actor user", map[string]string{"actor": `"user:service"`}, ev},
			{"actor svc alias", map[string]string{"actor": `"svc:service"`}, ev},
			{"actor case", map[string]string{"actor": `"Service:service"`}, ev},
			{"actor padded", map[string]string{"actor": `" service:service"`}, ev},
			{"actor number", map[string]string{"actor": `1`}, ev},
			{"actor object", map[string]string{"actor": `{}`}, ev},
			// source
			{"source empty", map[string]string{"source": `""`}, ev},
			{"source number", map[string]string{"source": `1`}, ev},
			{"source object", map[string]string{"source": `{}`}, ev},
			{"source bool", map[string]string{"source": `false`}, ev},
			// metadata
			{"metadata string", map[string]string{"metadata": `"x"`}, md},
			{"metadata array", map[string]string{"metadata": `[]`}, md},
			{"metadata number", map[string]string{"metadata": `1`}, md},
			{"metadata bool", map[string]string{"metadata": `true`}, md},
			// refs
			{"refs string", map[string]string{"refs": `"x"`}, rf},
			{"refs array", map[string]string{"refs": `[]`}, rf},
			{"refs number", map[string]string{"refs": `1`}, rf},
			{"refs bool", map[string]string{"refs": `true`}, rf},
			{"refs.to_seq -1", map[string]string{"refs": `{"to_seq":-1}`}, ev},
			{"refs.to_seq 1.5", map[string]string{"refs": `{"to_seq":1.5}`}, ev},
			{"refs.to_seq 1.0", map[string]string{"refs": `{"to_seq":1.0}`}, ev},
			{`refs.to_seq "abc"`, map[string]string{"refs": `{"to_seq":"abc"}`}, ev},
			{`refs.to_seq "-1"`, map[string]string{"refs": `{"to_seq":"-1"}`}, ev},
			{`refs.to_seq ""`, map[string]string{"refs": `{"to_seq":""}`}, ev},
			{"refs.to_seq 2^63", map[string]string{"refs": `{"to_seq":9223372036854775808}`}, ev},
			{"refs.to_seq bool", map[string]string{"refs": `{"to_seq":true}`}, ev},
			{"refs.to_seq object", map[string]string{"refs": `{"to_seq":{}}`}, ev},
			{"refs.step -1", map[string]string{"refs": `{"step":-1}`}, ev},
			{`refs.step "x"`, map[string]string{"refs": `{"step":"x"}`}, ev},
			{"refs.step 2.0", map[string]string{"refs": `{"step":2.0}`}, ev},
			{"refs.step 2^63", map[string]string{"refs": `{"step":9223372036854775808}`}, ev},
			{"refs.step array", map[string]string{"refs": `{"step":[1]}`}, ev},
			{"refs.request_id number", map[string]string{"refs": `{"request_id":1}`}, ev},
			{"refs.request_id object", map[string]string{"refs": `{"request_id":{}}`}, ev},
			{"refs.request_id bool", map[string]string{"refs": `{"request_id":false}`}, ev},
			{"refs.sequence_id number", map[string]string{"refs": `{"sequence_id":1}`}, ev},
			{"refs.sequence_id array", map[string]string{"refs": `{"sequence_id":["a"]}`}, ev},
			{"refs good and bad", map[string]string{"refs": `{"to_seq":1,"step":0,"request_id":"r","sequence_id":5}`}, ev},
			// idempotency_key
			{"idempotency_key empty", map[string]string{"idempotency_key": `""`}, ev},
			{"idempotency_key number", map[string]string{"idempotency_key": `1`}, ev},
			{"idempotency_key object", map[string]string{"idempotency_key": `{}`}, ev},
			// expected_seq
			{"expected_seq -1", map[string]string{"expected_seq": `-1`}, ev},
			{"expected_seq 1.5", map[string]string{"expected_seq": `1.5`}, ev},
			{"expected_seq 0.0", map[string]string{"expected_seq": `0.0`}, ev},
			{`expected_seq "abc"`, map[string]string{"expected_seq": `"abc"`}, ev},
			{`expected_seq ""`, map[string]string{"expected_seq": `""`}, ev},
			{`expected_seq "-1"`, map[string]string{"expected_seq": `"-1"`}, ev},
			{"expected_seq 2^63", map[string]string{"expected_seq": `9223372036854775808`}, ev},
			{`expected_seq "2^63"`, map[string]string{"expected_seq": `"9223372036854775808"`}, ev},
			{"expected_seq bool", map[string]string{"expected_seq": `true`}, ev},
			{"expected_seq object", map[string]string{"expected_seq": `{}`}, ev},
			// first failure wins (docs/api.md#append order)
			{"type before metadata", map[string]string{"type": `""`, "metadata": `"x"`}, ev},
			{"payload before refs", map[string]string{"payload": `[]`, "refs": `"x"`}, ev},
			{"producer presence before metadata", map[string]string{"producer_id": omit, "metadata": `1`}, ev},
			{"producer_id before refs", map[string]string{"producer_id": `""`, "refs": `[]`}, ev},
			{"producer_seq before metadata", map[string]string{"producer_seq": `0`, "metadata": `[]`}, ev},
			{"actor before metadata", map[string]string{"actor": `"user:x"`, "metadata": `"x"`}, ev},
			{"actor before refs", map[string]string{"actor": `""`, "refs": `1`}, ev},
			{"source before metadata", map[string]string{"source": `""`, "metadata": `"x"`}, ev},
			{"source before refs", map[string]string{"source": `""`, "refs": `"x"`}, ev},
			{"metadata before refs", map[string]string{"metadata": `"x"`, "refs": `"x"`}, md},
			{"metadata before bad refs member", map[string]string{"metadata": `[]`, "refs": `{"to_seq":-1}`}, md},
			{"metadata before idempotency_key", map[string]string{"metadata": `1`, "idempotency_key": `""`}, md},
			{"metadata before expected_seq", map[string]string{"metadata": `1`, "expected_seq": `-1`}, md},
			{"refs before idempotency_key", map[string]string{"refs": `"x"`, "idempotency_key": `""`}, rf},
			{"refs before expected_seq", map[string]string{"refs": `[]`, "expected_seq": `1.5`}, rf},
			{"everything bad", map[string]string{"type": `1`, "payload": `1`, "producer_id": `1`, "producer_seq": `0`, "actor": `""`,
				"source": `""`, "metadata": `1`, "refs": `1`, "idempotency_key": `""`, "expected_seq": `-1`}, ev},
			{"all but type valid then metadata", map[string]string{"actor": `"service:service"`, "source": `"s"`,
				"metadata": `"m"`, "refs": `"r"`, "idempotency_key": `""`, "expected_seq": `"x"`}, md},
		}
		msgs := map[string]string{ev: msgInvalidEvent, md: msgInvalidMetadata, rf: msgInvalidRefs}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				wantErr(t, appendReq(t, n, "v", evBody(c.over)), 400, c.code, msgs[c.code])
			})
		}
		t.Run("malformed or non-object JSON", func(t *testing.T) {
			for _, body := range []string{
				``, ` `, `{`, `{"type":"msg",}`, `{"type":"msg","payload":{},"producer_id":"pv","producer_seq":1`,
				evBody(nil) + ` x`, evBody(nil) + `{}`, `{'type':'msg'}`,
				`[]`, `[` + evBody(nil) + `]`, `"x"`, `1`, `null`, `true`,
			} {
				wantErr(t, appendReq(t, n, "v", body), 400, "invalid_event", msgInvalidEvent)
			}
		})
		t.Run("nothing was appended", func(t *testing.T) {
			if got := lastSeq(t, n, "v"); got != 0 {
				t.Fatalf("last_seq %d after only invalid appends", got)
			}
			// The producer is still unknown: its first append must be seq 1.
			wantAppend(t, appendReq(t, n, "v", evBody(nil)), 1, 1, false)
		})
	})

	t.Run("optional fields accepted", func(t *testing.T) {
		// Each append is valid; producer pf advances by one each time.
		cases := []struct {
			over              map[string]string
			actor, source     string // raw JSON as stored
			idem, refs, meta  string
			expectedSeqSuffix string
		}{
			{over: nil, actor: `"service:service"`, source: `null`, idem: `null`, refs: `{}`, meta: `{}`},
			{over: map[string]string{"actor": `"service:service"`}, actor: `"service:service"`, source: `null`, idem: `null`, refs: `{}`, meta: `{}`},
			{over: map[string]string{"actor": `null`, "source": `null`, "metadata": `null`, "refs": `null`, "idempotency_key": `null`, "expected_seq": `null`},
				actor: `"service:service"`, source: `null`, idem: `null`, refs: `{}`, meta: `{}`},
			{over: map[string]string{"source": `"agent"`, "idempotency_key": `"run_1-step_8"`}, actor: `"service:service"`, source: `"agent"`,
				idem: `"run_1-step_8"`, refs: `{}`, meta: `{}`},
			{over: map[string]string{"refs": `{"to_seq":"5","step":0,"request_id":"req_1","sequence_id":"s","other":[1,{"x":null}],"to":-1}`},
				actor: `"service:service"`, source: `null`, idem: `null`,
				refs: `{"to_seq":"5","step":0,"request_id":"req_1","sequence_id":"s","other":[1,{"x":null}],"to":-1}`, meta: `{}`},
			{over: map[string]string{"refs": `{"to_seq":4,"step":"007","request_id":null,"sequence_id":null}`},
				actor: `"service:service"`, source: `null`, idem: `null`,
				refs: `{"to_seq":4,"step":"007","request_id":null,"sequence_id":null}`, meta: `{}`},
			{over: map[string]string{"refs": `{"to_seq":9223372036854775807,"step":"+3"}`},
				actor: `"service:service"`, source: `null`, idem: `null`, refs: `{"to_seq":9223372036854775807,"step":"+3"}`, meta: `{}`},
			{over: map[string]string{"refs": `{}`, "metadata": `{}`}, actor: `"service:service"`, source: `null`, idem: `null`, refs: `{}`, meta: `{}`},
			{over: map[string]string{"metadata": `{"role":"worker","n":1.5}`}, actor: `"service:service"`, source: `null`, idem: `null`,
				refs: `{}`, meta: `{"role":"worker","n":1.5}`},
		}
		for i, c := range cases {
			seq := int64(i + 1)
			over := map[string]string{"producer_id": `"pf"`, "producer_seq": fmt.Sprint(seq)}
			for k, v := range c.over {
				over[k] = v
			}
			body := evBody(over)
			wantAppend(t, appendReq(t, n, "fields", body), seq, seq, false)
			ev := eventAt(t, n, "fields", seq)
			what := fmt.Sprintf("%s -> event %d", body, seq)
			wantJSON(t, what+" actor", ev["actor"], c.actor)
			if src, present := ev["source"]; c.source == `null` && present {
				t.Errorf("%s: source %#v, want the key absent", what, src)
			}
			wantJSON(t, what+" source", ev["source"], c.source)
			wantJSON(t, what+" idempotency_key", ev["idempotency_key"], c.idem)
			wantJSON(t, what+" refs", ev["refs"], c.refs)
			meta := strings.TrimSuffix(c.meta, "}")
			if meta != "{" {
				meta += ","
			}
			wantJSON(t, what+" metadata", ev["metadata"], meta+`"starcite_principal":`+servicePrincipal+`}`)
			wantJSON(t, what+" producer_seq", ev["producer_seq"], fmt.Sprint(seq))
		}
		t.Run("expected_seq forms", func(t *testing.T) {
			next := int64(len(cases)) + 1
			for _, e := range []string{fmt.Sprint(next - 1), fmt.Sprintf(`"%d"`, next), fmt.Sprintf(`"+%d"`, next+1), fmt.Sprintf(`"00%d"`, next+2)} {
				wantAppend(t, appendReq(t, n, "fields", evBody(map[string]string{"producer_id": `"pf"`,
					"producer_seq": fmt.Sprint(next), "expected_seq": e})), next, next, false)
				next++
			}
		})
	})

	t.Run("numeric string producer_seq", func(t *testing.T) {
		body := func(seq string) string {
			return evBody(map[string]string{"producer_id": `"q"`, "producer_seq": seq})
		}
		wantAppend(t, appendReq(t, n, "ps", body(`1`)), 1, 1, false)
		wantAppend(t, appendReq(t, n, "ps", body(`2`)), 2, 2, false)
		wantAppend(t, appendReq(t, n, "ps", body(`"3"`)), 3, 3, false)
		wantAppend(t, appendReq(t, n, "ps", body(`3`)), 3, 3, true) // same event: "3" was converted to 3
		wantAppend(t, appendReq(t, n, "ps", body(`"+3"`)), 3, 3, true)
		wantAppend(t, appendReq(t, n, "ps", body(`"003"`)), 3, 3, true)
		wantAppend(t, appendReq(t, n, "ps", body(`"+4"`)), 4, 4, false)
		wantAppend(t, appendReq(t, n, "ps", body(`"005"`)), 5, 5, false)
		wantErr(t, appendReq(t, n, "ps", body(`"007"`)), 409, "producer_seq_conflict", fmt.Sprintf(producerConflictFmt, "q", 6, 7))
		for seq, ev := range map[int64]map[string]any{3: eventAt(t, n, "ps", 3), 4: eventAt(t, n, "ps", 4), 5: eventAt(t, n, "ps", 5)} {
			wantJSON(t, fmt.Sprintf("stored producer_seq of event %d", seq), ev["producer_seq"], fmt.Sprint(seq))
		}
	})

	t.Run("producer rules", func(t *testing.T) {
		p := func(producer string, seq int, payload string) string {
			return fmt.Sprintf(`{"type":"msg","payload":%s,"producer_id":%q,"producer_seq":%d}`, payload, producer, seq)
		}
		seqConflict := func(t *testing.T, r resp, producer string, want, got int) {
			t.Helper()
			wantErr(t, r, 409, "producer_seq_conflict", fmt.Sprintf(producerConflictFmt, producer, want, got))
		}
		seqConflict(t, appendReq(t, n, "pr", p("A", 2, `{}`)), "A", 1, 2)
		seqConflict(t, appendReq(t, n, "pr", p("A", 100, `{}`)), "A", 1, 100)
		wantAppend(t, appendReq(t, n, "pr", p("A", 1, `{"n":1}`)), 1, 1, false)
		wantAppend(t, appendReq(t, n, "pr", p("B", 1, `{"n":1}`)), 2, 2, false) // producers are independent
		wantAppend(t, appendReq(t, n, "pr", p("A", 1, `{"n":1}`)), 1, 2, true)  // dedupe: original seq, current last_seq
		wantErr(t, appendReq(t, n, "pr", p("A", 1, `{"n":2}`)), 409, "producer_replay_conflict", msgProducerReplay)
		seqConflict(t, appendReq(t, n, "pr", p("A", 3, `{}`)), "A", 2, 3)
		wantAppend(t, appendReq(t, n, "pr", p("A", 2, `{"n":2}`)), 3, 3, false)
		seqConflict(t, appendReq(t, n, "pr", p("A", 1, `{"n":1}`)), "A", 3, 1) // only the last producer_seq dedupes
		seqConflict(t, appendReq(t, n, "pr", p("A", 1, `{"n":9}`)), "A", 3, 1)
		wantAppend(t, appendReq(t, n, "pr", p("A", 2, `{"n":2}`)), 3, 3, true)
		wantAppend(t, appendReq(t, n, "pr", p("B", 1, `{"n":1}`)), 2, 3, true)
		wantErr(t, appendReq(t, n, "pr", p("B", 1, `{"n":1,"x":0}`)), 409, "producer_replay_conflict", msgProducerReplay)
		seqConflict(t, appendReq(t, n, "pr", p("B", 3, `{}`)), "B", 2, 3)
		seqConflict(t, appendReq(t, n, "pr", p("B", 9223372036854775807, `{}`)), "B", 2, 9223372036854775807)
		// Producer ids are quoted verbatim in the message.
		seqConflict(t, appendReq(t, n, "pr", p("w:1 é/\"x\"", 5, `{}`)), "w:1 é/\"x\"", 1, 5)
		wantAppend(t, appendReq(t, n, "pr", p("w:1 é/\"x\"", 1, `{}`)), 4, 4, false)
		// A new producer starts at 1 whatever the session seq.
		seqConflict(t, appendReq(t, n, "pr", p("C", 5, `{}`)), "C", 1, 5)
		wantAppend(t, appendReq(t, n, "pr", p("C", 1, `{}`)), 5, 5, false)
		// Failed appends changed nothing; deduped ones wrote nothing.
		if got := lastSeq(t, n, "pr"); got != 5 {
			t.Errorf("last_seq %d, want 5", got)
		}
		evs, _, _ := eventsOf(t, n, "pr", "")
		var got []string
		for _, e := range evs {
			got = append(got, fmt.Sprintf("%v#%v", e["producer_id"], e["producer_seq"]))
		}
		if want := `A#1 B#1 A#2 w:1 é/"x"#1 C#1`; strings.Join(got, " ") != want {
			t.Errorf("log %q, want %q", strings.Join(got, " "), want)
		}
	})

	t.Run("concurrent retries", func(t *testing.T) {
		// The same append sent 20 times at once: one write, 19 dedupes of
		// it, all with the same seq.
		createOK(t, n, `{"id":"race"}`)
		body := `{"type":"msg","payload":{"same":true},"producer_id":"R","producer_seq":1}`
		const k = 20
		results := make(chan resp, k)
		var wg sync.WaitGroup
		for i := 0; i < k; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := tryDo(n, "POST", "/v1/sessions/race/append", body, nil)
				if err != nil {
					t.Error(err)
					return
				}
				results <- r
			}()
		}
		wg.Wait()
		close(results)
		fresh := 0
		for r := range results {
			m := wantStatus(t, r, 201)
			wantJSON(t, r.String(), m["seq"], `1`)
			wantJSON(t, r.String(), m["last_seq"], `1`)
			if m["deduped"] == false {
				fresh++
			}
		}
		if fresh != 1 {
			t.Fatalf("%d appends were not deduped, want exactly 1", fresh)
		}
		if got := lastSeq(t, n, "race"); got != 1 {
			t.Fatalf("last_seq %d, want 1", got)
		}
	})

	t.Run("expected_seq", func(t *testing.T) {
		b := func(producer string, seq int, expected string) string {
			return evBody(map[string]string{"producer_id": fmt.Sprintf("%q", producer), "producer_seq": fmt.Sprint(seq), "expected_seq": expected})
		}
		conflict := func(t *testing.T, r resp, e, c int64) {
			t.Helper()
			wantErr(t, r, 409, "expected_seq_conflict", fmt.Sprintf(expectedConflictFmt, e, c))
		}
		conflict(t, appendReq(t, n, "ex", b("E", 1, `1`)), 1, 0)
		wantAppend(t, appendReq(t, n, "ex", b("E", 1, `0`)), 1, 1, false) // 0: session must be empty
		conflict(t, appendReq(t, n, "ex", b("E", 2, `0`)), 0, 1)
		conflict(t, appendReq(t, n, "ex", b("E", 2, `5`)), 5, 1)
		conflict(t, appendReq(t, n, "ex", b("E", 2, `"7"`)), 7, 1)
		conflict(t, appendReq(t, n, "ex", b("E", 2, `9223372036854775807`)), 9223372036854775807, 1)
		wantAppend(t, appendReq(t, n, "ex", b("E", 2, `"1"`)), 2, 2, false)
		// expected_seq is checked before the producer rules
		// (docs/api.md#expected-seq).
		conflict(t, appendReq(t, n, "ex", b("F", 7, `99`)), 99, 2)
		conflict(t, appendReq(t, n, "ex", b("E", 9, `1`)), 1, 2)
		conflict(t, appendReq(t, n, "ex", `{"type":"msg","payload":{"other":1},"producer_id":"E","producer_seq":2,"expected_seq":0}`), 0, 2)
		if got := lastSeq(t, n, "ex"); got != 2 {
			t.Errorf("last_seq %d, want 2", got)
		}
	})

	t.Run("dedupe before expected_seq (D4)", func(t *testing.T) {
		x1 := `{"type":"msg","payload":{"n":1},"producer_id":"X","producer_seq":1%s}`
		with := func(body, extra string) string { return fmt.Sprintf(body, extra) }
		wantAppend(t, appendReq(t, n, "d4", with(x1, `,"expected_seq":0`)), 1, 1, false)
		wantAppend(t, appendReq(t, n, "d4", `{"type":"msg","payload":{},"producer_id":"Y","producer_seq":1}`), 2, 2, false)
		// Exact retries of X's last append: deduped whatever expected_seq.
		wantAppend(t, appendReq(t, n, "d4", with(x1, `,"expected_seq":0`)), 1, 2, true)
		wantAppend(t, appendReq(t, n, "d4", with(x1, `,"expected_seq":"0"`)), 1, 2, true)
		wantAppend(t, appendReq(t, n, "d4", with(x1, `,"expected_seq":5`)), 1, 2, true)
		wantAppend(t, appendReq(t, n, "d4", with(x1, `,"expected_seq":2`)), 1, 2, true)
		wantAppend(t, appendReq(t, n, "d4", with(x1, ``)), 1, 2, true)
		wantAppend(t, appendReq(t, n, "d4", `{"type":"msg","payload":{},"producer_id":"Y","producer_seq":1,"expected_seq":1}`), 2, 2, true)
		// Different content under the same producer_seq: expected_seq first.
		x1b := `{"type":"msg","payload":{"n":2},"producer_id":"X","producer_seq":1%s}`
		wantErr(t, appendReq(t, n, "d4", with(x1b, `,"expected_seq":0`)), 409, "expected_seq_conflict", fmt.Sprintf(expectedConflictFmt, 0, 2))
		wantErr(t, appendReq(t, n, "d4", with(x1b, `,"expected_seq":2`)), 409, "producer_replay_conflict", msgProducerReplay)
		wantErr(t, appendReq(t, n, "d4", with(x1b, ``)), 409, "producer_replay_conflict", msgProducerReplay)
		// A new append with a stale expected_seq is a conflict.
		x2 := `{"type":"msg","payload":{"n":2},"producer_id":"X","producer_seq":2%s}`
		wantErr(t, appendReq(t, n, "d4", with(x2, `,"expected_seq":1`)), 409, "expected_seq_conflict", fmt.Sprintf(expectedConflictFmt, 1, 2))
		wantAppend(t, appendReq(t, n, "d4", with(x2, `,"expected_seq":2`)), 3, 3, false)
		// X's first append is no longer its last: no dedupe, the other
		// rules stand (expected_seq before producer rules).
		wantErr(t, appendReq(t, n, "d4", with(x1, `,"expected_seq":0`)), 409, "expected_seq_conflict", fmt.Sprintf(expectedConflictFmt, 0, 3))
		wantErr(t, appendReq(t, n, "d4", with(x1, ``)), 409, "producer_seq_conflict", fmt.Sprintf(producerConflictFmt, "X", 3, 1))
		wantAppend(t, appendReq(t, n, "d4", with(x2, `,"expected_seq":1`)), 3, 3, true)
		if got := lastSeq(t, n, "d4"); got != 3 {
			t.Errorf("last_seq %d, want 3", got)
		}
	})

	t.Run("content equality is structural", func(t *testing.T) {
		a1 := `{"type":"msg","payload":{"a":1,"b":[1,2],"c":{"x":"y","z":null},"f":1.5},"producer_id":"A","producer_seq":1,` +
			`"metadata":{"m":1,"n":2},"refs":{"to_seq":0,"k":"v"},"source":"src","idempotency_key":"ik"}`
		wantAppend(t, appendReq(t, n, "eq", a1), 1, 1, false)
		same := []string{
			a1,
			"{\n  \"idempotency_key\" : \"ik\" ,\"source\":\"src\", \"refs\":{\"k\":\"v\",\"to_seq\":0},\r\n\t\"metadata\":{\"n\":2,\"m\":1}," +
				"\"producer_seq\":1,\"producer_id\":\"A\",\"payload\":{\"f\":1.5,\"c\":{\"z\":null,\"x\":\"y\"},\"b\":[ 1 , 2 ],\"a\":1},\"type\":\"msg\"}\n",
			strings.Replace(a1, `"producer_seq":1`, `"producer_seq":"1"`, 1),
			strings.Replace(a1, `"producer_seq":1`, `"producer_seq":"+1"`, 1),
			strings.Replace(a1, `"x":"y"`, `"x":"\u0079"`, 1),
			strings.Replace(a1, `"x":"y"`, `"\u0078":"y"`, 1),
			strings.Replace(a1, `"f":1.5`, `"f":1.50`, 1),
			strings.Replace(a1, `"f":1.5`, `"f":15e-1`, 1),
			strings.Replace(a1, `"type":"msg"`, `"type":"msg","actor":"service:service"`, 1),
			strings.Replace(a1, `"type":"msg"`, `"type":"msg","expected_seq":1`, 1),
			strings.Replace(a1, `"type":"msg"`, `"type":"msg","expected_seq":0`, 1),
			strings.Replace(a1, `"type":"msg"`, `"type":"msg","unknown_field":[1,2,3]`, 1),
			strings.Replace(a1, `{"m":1,"n":2}`, `{"m":1,"n":2,"starcite_principal":`+servicePrincipal+`}`, 1),
			strings.Replace(a1, `{"m":1,"n":2}`, `{"m":1,"n":2,"starcite_principal":"anything"}`, 1),
			strings.Replace(a1, `{"m":1,"n":2}`, `{"m":1,"n":2,"starcite_principal":{"actor":"user:x"}}`, 1),
		}
		for i, body := range same {
			t.Run(fmt.Sprintf("same %d", i), func(t *testing.T) {
				wantAppend(t, appendReq(t, n, "eq", body), 1, 1, true)
			})
		}
		different := []string{
			strings.Replace(a1, `"a":1`, `"a":1.0`, 1),
			strings.Replace(a1, `"a":1`, `"a":"1"`, 1),
			strings.Replace(a1, `"a":1`, `"a":true`, 1),
			strings.Replace(a1, `"f":1.5`, `"f":"1.5"`, 1),
			strings.Replace(a1, `"b":[1,2]`, `"b":[2,1]`, 1),
			strings.Replace(a1, `"b":[1,2]`, `"b":[1,2,null]`, 1),
			strings.Replace(a1, `,"z":null`, ``, 1),
			strings.Replace(a1, `"x":"y"`, `"x":"Y"`, 1),
			strings.Replace(a1, `"x":"y"`, `"x":"y "`, 1),
			strings.Replace(a1, `"type":"msg"`, `"type":"msg2"`, 1),
			strings.Replace(a1, `"to_seq":0`, `"to_seq":"0"`, 1),
			strings.Replace(a1, `,"k":"v"`, ``, 1),
			strings.Replace(a1, `"source":"src"`, `"source":null`, 1),
			strings.Replace(a1, `"idempotency_key":"ik"`, `"idempotency_key":"ik2"`, 1),
			strings.Replace(a1, `"idempotency_key":"ik"`, `"idempotency_key":null`, 1),
			strings.Replace(a1, `{"m":1,"n":2}`, `{"m":1}`, 1),
			strings.Replace(a1, `{"m":1,"n":2}`, `{"m":1,"n":2.0}`, 1),
			strings.Replace(a1, `{"m":1,"n":2}`, `{"m":1,"n":2,"starcite_principal":{"extra":1}}`, 1),
		}
		for i, body := range different {
			t.Run(fmt.Sprintf("different %d", i), func(t *testing.T) {
				wantErr(t, appendReq(t, n, "eq", body), 409, "producer_replay_conflict", msgProducerReplay)
			})
		}
		t.Run("5 and \"5\"", func(t *testing.T) {
			b := `{"type":"msg","payload":{"v":"5"},"producer_id":"S","producer_seq":1}`
			wantAppend(t, appendReq(t, n, "eq", b), 2, 2, false)
			wantErr(t, appendReq(t, n, "eq", strings.Replace(b, `"5"`, `5`, 1)), 409, "producer_replay_conflict", msgProducerReplay)
			wantAppend(t, appendReq(t, n, "eq", b), 2, 2, true)
		})
		t.Run("defaults equal explicit nulls", func(t *testing.T) {
			b := `{"type":"msg","payload":{},"producer_id":"N","producer_seq":1}`
			wantAppend(t, appendReq(t, n, "eq", b), 3, 3, false)
			for _, body := range []string{
				`{"type":"msg","payload":{},"producer_id":"N","producer_seq":1,"actor":null,"source":null,"metadata":null,"refs":null,"idempotency_key":null,"expected_seq":null}`,
				`{"type":"msg","payload":{},"producer_id":"N","producer_seq":1,"metadata":{},"refs":{}}`,
			} {
				wantAppend(t, appendReq(t, n, "eq", body), 3, 3, true)
			}
		})
		if got := lastSeq(t, n, "eq"); got != 3 {
			t.Errorf("last_seq %d, want 3", got)
		}
	})

	t.Run("starcite_principal injection", func(t *testing.T) {
		sp := servicePrincipal
		spExtra := strings.TrimSuffix(sp, "}")
		for i, c := range []struct{ meta, want string }{
			{``, `{"starcite_principal":` + sp + `}`},
			{`,"metadata":null`, `{"starcite_principal":` + sp + `}`},
			{`,"metadata":{}`, `{"starcite_principal":` + sp + `}`},
			{`,"metadata":{"role":"w"}`, `{"role":"w","starcite_principal":` + sp + `}`},
			{`,"metadata":{"starcite_principal":{"tenant_id":"evil","actor":"user:x","principal_type":"user","principal_id":"p","extra":1,"nested":{"a":[1]}}}`,
				`{"starcite_principal":` + spExtra + `,"extra":1,"nested":{"a":[1]}}}`},
			{`,"metadata":{"starcite_principal":{"tenant_id":null}}`, `{"starcite_principal":` + sp + `}`},
			{`,"metadata":{"starcite_principal":{}}`, `{"starcite_principal":` + sp + `}`},
			{`,"metadata":{"starcite_principal":"str","z":1}`, `{"z":1,"starcite_principal":` + sp + `}`},
			{`,"metadata":{"starcite_principal":[1,2]}`, `{"starcite_principal":` + sp + `}`},
			{`,"metadata":{"starcite_principal":null}`, `{"starcite_principal":` + sp + `}`},
			{`,"metadata":{"starcite_principal":7}`, `{"starcite_principal":` + sp + `}`},
			{`,"metadata":{"a":{"starcite_principal":"x"}}`, `{"a":{"starcite_principal":"x"},"starcite_principal":` + sp + `}`},
		} {
			seq := int64(i + 1)
			body := fmt.Sprintf(`{"type":"msg","payload":{},"producer_id":"M","producer_seq":%d%s}`, seq, c.meta)
			wantAppend(t, appendReq(t, n, "md", body), seq, seq, false)
			wantJSON(t, body+" metadata", eventAt(t, n, "md", seq)["metadata"], c.want)
		}
	})

	t.Run("unknown session", func(t *testing.T) {
		for _, c := range []struct {
			name, body string
			h          harness.Header
		}{
			{"valid body", evBody(nil), nil},
			{"malformed JSON", `{`, nil},
			{"empty body", ``, nil},
			{"array", `[]`, nil},
			{"invalid fields", evBody(map[string]string{"type": `""`, "metadata": `1`, "refs": `1`}), nil},
			{"text/plain", evBody(nil), harness.Header{"Content-Type": "text/plain"}},
			{"form", `type=msg`, harness.Header{"Content-Type": "application/x-www-form-urlencoded"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				for _, id := range []string{"nope", "AP", "ap ", "a/p", "é"} {
					r := do(t, n, "POST", "/v1/sessions/"+pathEscape(id)+"/append", c.body, c.h)
					wantErr(t, r, 404, "session_not_found", msgSessionNotFound)
				}
			})
		}
		wantErr(t, do(t, n, "GET", "/v1/sessions/nope", nil, nil), 404, "session_not_found", msgSessionNotFound)
	})

	t.Run("content type", func(t *testing.T) {
		seq := int64(0)
		for _, ct := range []string{"application/json", "application/json; charset=utf-8", "application/vnd.api+json", "application/problem+json", ""} {
			seq++
			r := do(t, n, "POST", "/v1/sessions/ct/append", evBody(map[string]string{"producer_id": `"c"`, "producer_seq": fmt.Sprint(seq)}),
				harness.Header{"Content-Type": ct})
			wantAppend(t, r, seq, seq, false)
		}
		for _, ct := range []string{"text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded",
			"multipart/form-data", "text/json", "application/xml", "application/octet-stream"} {
			t.Run("refused "+ct, func(t *testing.T) {
				r := do(t, n, "POST", "/v1/sessions/ct/append", evBody(map[string]string{"producer_id": `"c"`, "producer_seq": fmt.Sprint(seq + 1)}),
					harness.Header{"Content-Type": ct})
				wantErr(t, r, 415, "unsupported_media_type", anyMessage)
				r = do(t, n, "POST", "/v1/sessions/ct/append", `{`, harness.Header{"Content-Type": ct})
				wantErr(t, r, 415, "unsupported_media_type", anyMessage)
			})
		}
		t.Run("refused multipart with boundary", func(t *testing.T) {
			body := "--xyz\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\nmsg\r\n--xyz--\r\n"
			r := do(t, n, "POST", "/v1/sessions/ct/append", body, harness.Header{"Content-Type": "multipart/form-data; boundary=xyz"})
			wantErr(t, r, 415, "unsupported_media_type", anyMessage)
			r = do(t, n, "POST", "/v1/sessions/ct/append", evBody(nil), harness.Header{"Content-Type": "multipart/form-data; boundary=xyz"})
			wantErr(t, r, 415, "unsupported_media_type", anyMessage)
		})
		t.Run("no query-string fallback", func(t *testing.T) {
			r := do(t, n, "POST", "/v1/sessions/ct/append?type=msg&producer_id=c&producer_seq=99", `{"payload":{}}`, nil)
			wantErr(t, r, 400, "invalid_event", msgInvalidEvent)
		})
		t.Run("body size", func(t *testing.T) {
			big := func(size int, pseq int64) []byte {
				head := fmt.Sprintf(`{"type":"msg","producer_id":"c","producer_seq":%d,"payload":{"s":"`, pseq)
				return []byte(head + strings.Repeat("x", size-len(head)-3) + `"}}`)
			}
			b := big(maxBody+1, seq+1)
			if len(b) != maxBody+1 {
				t.Fatalf("body of %d bytes", len(b))
			}
			wantErr(t, rawPost(t, n, "/v1/sessions/ct/append", "application/json", b), 413, "payload_too_large", anyMessage)
			b = big(maxBody, seq+1)
			if len(b) != maxBody {
				t.Fatalf("body of %d bytes", len(b))
			}
			wantAppend(t, do(t, n, "POST", "/v1/sessions/ct/append", b, nil), seq+1, seq+1, false)
			seq++
		})
		if got := lastSeq(t, n, "ct"); got != seq {
			t.Errorf("last_seq %d, want %d", got, seq)
		}
	})
}
