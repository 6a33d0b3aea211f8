package edge

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	"starcite/fsm"
	"starcite/fsm/jsonc"
)

func TestDecodeFrame(t *testing.T) {
	good := []struct {
		in               string
		joinRef, ref     Ref
		topic, event, pl string
	}{
		{`[null,"1","phoenix","heartbeat",{}]`, Ref{}, RefOf("1"), "phoenix", "heartbeat", `{}`},
		{` ["3", "3" ,"tail:a","phx_join",{"cursor":1,"batch_size":2}] `, RefOf("3"), RefOf("3"), "tail:a", "phx_join", `{"batch_size":2,"cursor":1}`},
		{`["","","","",[]]`, RefOf(""), RefOf(""), "", "", `[]`},
		{`[null,null,"t","e",null]`, Ref{}, Ref{}, "t", "e", `null`},
		{`["a\u00e9","b","t\"x","e",{"k":[1,2.50]}]`, RefOf("aé"), RefOf("b"), `t"x`, "e", `{"k":[1,2.5]}`},
	}
	for _, tt := range good {
		f, err := DecodeFrame([]byte(tt.in))
		if err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if f.JoinRef != tt.joinRef || f.Ref != tt.ref || f.Topic != tt.topic || f.Event != tt.event ||
			string(f.Payload.Append(nil)) != tt.pl {
			t.Fatalf("%s decoded as %+v (payload %s)", tt.in, f, f.Payload.Append(nil))
		}
	}
	for _, in := range []string{
		``, `x`, `{}`, `[]`, `"a"`, `[null,"1","phoenix","heartbeat"]`, `[null,"1","phoenix","heartbeat",{},{}]`,
		`[1,"1","t","e",{}]`, `[null,1,"t","e",{}]`, `[null,"1",1,"e",{}]`, `[null,"1","t",null,{}]`,
		`[null,"1","t","e",{}] x`, `[null,"1","t","e",{}`, "[null,\"1\",\"t\xff\",\"e\",{}]", `[null,"\u0000","t","e",{}]`,
		`[false,"1","t","e",{}]`, `[null,["1"],"t","e",{}]`,
	} {
		if _, err := DecodeFrame([]byte(in)); err == nil {
			t.Fatalf("%q decoded", in)
		}
	}
}

func TestServerFrames(t *testing.T) {
	evs := []fsm.Event{{Seq: 1, JSON: []byte(`{"seq":1}`)}, {Seq: 2, JSON: []byte(`{"seq":2}`)}}
	tests := []struct{ got, want string }{
		{string(ReplyOK(Ref{}, RefOf("7"), "phoenix")), `[null,"7","phoenix","phx_reply",{"status":"ok","response":{}}]`},
		{string(ReplyError(RefOf("1"), RefOf("2"), "tail:a", "invalid_cursor")),
			`["1","2","tail:a","phx_reply",{"status":"error","response":{"reason":"invalid_cursor"}}]`},
		{string(ReplyError(Ref{}, RefOf("9"), "room:\"1\"", ReasonUnmatchedTopic)),
			`[null,"9","room:\"1\"","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`},
		{string(ChannelEnd(RefOf("4"), "tail:a", EventClose)), `["4","4","tail:a","phx_close",{}]`},
		{string(ChannelEnd(RefOf("4"), "tail:a", EventError)), `["4","4","tail:a","phx_error",{}]`},
		{string(EventsPush(RefOf("4"), "tail:a", evs)), `["4",null,"tail:a","events",{"events":[{"seq":1},{"seq":2}]}]`},
		{string(EventsPush(RefOf("4"), "tail:a", evs[1:])), `["4",null,"tail:a","events",{"events":[{"seq":2}]}]`},
		{string(GapPush(RefOf("4"), "tail:c", Gap{Reason: "resume_invalidated", From: 12, Next: 5, Committed: 0, EarliestCursor: 1})),
			`["4",null,"tail:c","gap",{"type":"gap","reason":"resume_invalidated","from_cursor":12,"next_cursor":5,"committed_cursor":0,"earliest_available_cursor":1}]`},
		{string(TokenExpiredPush(RefOf("1"), "tail:a")), `["1",null,"tail:a","token_expired",{"reason":"token_expired"}]`},
		{string(LifecyclePush(RefOf("10"), []byte(`{"kind":"session.archived"}`))),
			`["10",null,"lifecycle","lifecycle",{"event":{"kind":"session.archived"}}]`},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got  %s\nwant %s", tt.got, tt.want)
		}
	}
}

func TestCheckTailJoin(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	reader := Principal{TenantID: "acme", ID: "u1", Type: "user", Scopes: ScopeRead, Expires: now.Unix() + 60}
	tests := []struct {
		name   string
		p      Principal
		topic  string
		params string
		want   TailJoin
		reason string
	}{
		{"defaults", reader, "tail:a", `{}`, TailJoin{SessionID: "a", BatchSize: 1}, ""},
		{"values", reader, "tail:a:b", `{"cursor":7,"batch_size":1000,"x":null}`, TailJoin{SessionID: "a:b", Cursor: 7, BatchSize: 1000}, ""},
		{"empty id first", Principal{Expires: 1}, "tail:", `{"cursor":-1}`, TailJoin{}, ReasonUnauthorized},
		{"array params", reader, "tail:a", `[]`, TailJoin{}, ReasonUnauthorized},
		{"expiry before params", withExp(reader, now.Unix()), "tail:a", `{"cursor":-1}`, TailJoin{}, ReasonTokenExpired},
		{"expired a second ago", withExp(reader, now.Unix()-1), "tail:a", `{}`, TailJoin{}, ReasonTokenExpired},
		{"cursor -0 is 0", reader, "tail:a", `{"cursor":-0}`, TailJoin{SessionID: "a", BatchSize: 1}, ""},
		{"cursor 1e2", reader, "tail:a", `{"cursor":1e2}`, TailJoin{}, ReasonInvalidCursor},
		{"cursor max", reader, "tail:a", `{"cursor":9223372036854775807}`, TailJoin{SessionID: "a", Cursor: math.MaxInt64, BatchSize: 1}, ""},
		{"cursor before batch", reader, "tail:a", `{"cursor":"1","batch_size":0}`, TailJoin{}, ReasonInvalidCursor},
		{"batch 0", reader, "tail:a", `{"batch_size":0}`, TailJoin{}, ReasonInvalidBatchSize},
		{"params before scope", Principal{Type: "user", Scopes: ScopeAppend}, "tail:a", `{"batch_size":"2"}`, TailJoin{}, ReasonInvalidBatchSize},
		{"scope", Principal{Type: "user", Scopes: ScopeAppend}, "tail:a", `{}`, TailJoin{}, ReasonForbiddenScope},
		{"scope before lock", Principal{Type: "user", Scopes: ScopeAppend, SessionID: "b"}, "tail:a", `{}`, TailJoin{}, ReasonForbiddenScope},
		{"lock", Principal{Type: "user", Scopes: ScopeRead, SessionID: "b"}, "tail:a", `{}`, TailJoin{}, ReasonForbiddenSession},
		{"own lock", Principal{Type: "user", Scopes: ScopeRead, SessionID: "a"}, "tail:a", `{}`, TailJoin{SessionID: "a", BatchSize: 1}, ""},
		{"none mode", nonePrincipal, "tail:a", `{}`, TailJoin{SessionID: "a", BatchSize: 1}, ""},
	}
	for _, tt := range tests {
		v, err := jsonc.Parse([]byte(tt.params))
		if err != nil {
			t.Fatal(err)
		}
		got, reason := CheckTailJoin(&tt.p, tt.topic, v, now)
		if got != tt.want || reason != tt.reason {
			t.Errorf("%s: got %+v %q, want %+v %q", tt.name, got, reason, tt.want, tt.reason)
		}
	}
}

func withExp(p Principal, exp int64) Principal { p.Expires = exp; return p }

func TestCheckLifecycleJoin(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	svc := Principal{TenantID: "acme", ID: "ops", Type: "service", Scopes: ScopeRead}
	tests := []struct {
		name           string
		p              Principal
		tenant, reason string
	}{
		{"service with read", svc, "acme", ""},
		{"none mode", nonePrincipal, "service", ""},
		{"expired first", Principal{Type: "user", SessionID: "x", Expires: now.Unix()}, "", ReasonTokenExpired},
		{"service without read", Principal{TenantID: "acme", Type: "service", Scopes: ScopeCreate | ScopeAppend}, "", ReasonForbiddenScope},
		{"session-locked service", Principal{TenantID: "acme", Type: "service", Scopes: ScopeRead, SessionID: "s"}, "", ReasonForbiddenSession},
		{"session-locked user", Principal{TenantID: "acme", Type: "user", SessionID: "s"}, "", ReasonForbiddenSession},
		{"user", Principal{TenantID: "acme", Type: "user", Scopes: ScopeRead}, "", ReasonForbidden},
		{"agent without scopes", Principal{TenantID: "acme", Type: "agent"}, "", ReasonForbidden},
	}
	for _, tt := range tests {
		tenant, reason := CheckLifecycleJoin(&tt.p, now)
		if tenant != tt.tenant || reason != tt.reason {
			t.Errorf("%s: got %q %q, want %q %q", tt.name, tenant, reason, tt.tenant, tt.reason)
		}
	}
}

var frameSeeds = []string{
	`[null,"1","phoenix","heartbeat",{}]`,
	`["1","1","tail:a","phx_join",{"cursor":1,"batch_size":2}]`,
	`["1","1","tail:a","phx_join",{"cursor":null,"batch_size":"2"}]`,
	`["1","1","tail:a","phx_join",{"cursor":{"epoch":0,"seq":0},"live_only":true}]`,
	`["1","1","tail:","phx_join",[]]`, `["1","2","tail:a","phx_leave",{}]`, `[null,null,"","",null]`,
	`["1","1","lifecycle","phx_join",{}]`, `[1,"1","t","e",{}]`, `[null,"1","t","e"]`, `{}`, `x`,
	`["1","1","tail:a","phx_join",{"cursor":1.0,"batch_size":1e3}]`, `["1","1","tail:a","phx_join",{"cursor":-0}]`,
}

// FuzzDecodeFrame checks the frame decoder against encoding/json's reading
// of the same bytes, re-encodes what it decoded, and runs the tail join
// checks over the payload against a model of the join parameters.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range frameSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeFrame(b)
		_, strictErr := jsonc.Parse(b)
		var elems []json.RawMessage
		stdOK := json.Unmarshal(b, &elems) == nil && len(elems) == 5
		var refs [2]*string
		var topic, event string
		stdOK = stdOK && json.Unmarshal(elems[0], &refs[0]) == nil && json.Unmarshal(elems[1], &refs[1]) == nil &&
			isRawString(elems[2]) && isRawString(elems[3]) &&
			json.Unmarshal(elems[2], &topic) == nil && json.Unmarshal(elems[3], &event) == nil
		if err != nil {
			if stdOK && strictErr == nil {
				t.Fatalf("%q refused (%v), yet it is a well-formed frame", b, err)
			}
			return
		}
		if !stdOK {
			t.Fatalf("%q decoded as %+v, yet encoding/json does not read a frame in it", b, fr)
		}
		for i, r := range []Ref{fr.JoinRef, fr.Ref} {
			if r.Valid != (refs[i] != nil) || refs[i] != nil && r.S != *refs[i] {
				t.Fatalf("%q: ref %d decoded as %+v", b, i, r)
			}
		}
		if fr.Topic != topic || fr.Event != event {
			t.Fatalf("%q: topic/event %q %q", b, fr.Topic, fr.Event)
		}
		again, err := DecodeFrame(AppendFrame(nil, fr.JoinRef, fr.Ref, fr.Topic, fr.Event, fr.Payload.Append(nil)))
		if err != nil || again.JoinRef != fr.JoinRef || again.Ref != fr.Ref || again.Topic != fr.Topic ||
			again.Event != fr.Event || !bytes.Equal(again.Payload.Append(nil), fr.Payload.Append(nil)) {
			t.Fatalf("%q: round trip gave %+v, %v", b, again, err)
		}
		checkJoinModel(t, fr, elems[4])
	})
}

func isRawString(raw json.RawMessage) bool {
	return len(bytes.TrimSpace(raw)) > 0 && bytes.TrimSpace(raw)[0] == '"'
}

// checkJoinModel runs CheckTailJoin (open principal) on a decoded frame's
// payload and compares with the parameter rules read from encoding/json.
func checkJoinModel(t *testing.T, fr Frame, payload json.RawMessage) {
	j, reason := CheckTailJoin(&nonePrincipal, "tail:s", fr.Payload, time.Now())
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	var m map[string]any
	if d.Decode(&m) != nil || m == nil {
		if reason != ReasonUnauthorized {
			t.Fatalf("payload %s: reason %q, want unauthorized", payload, reason)
		}
		return
	}
	want, wantReason := TailJoin{SessionID: "s", BatchSize: 1}, ""
	if v, ok := m["cursor"]; ok {
		n, isInt := v.(json.Number)
		c, ok := modelJSONInt(n, 0)
		if !isInt || !ok {
			wantReason = ReasonInvalidCursor
		}
		want.Cursor = uint64(c)
	}
	if v, ok := m["batch_size"]; ok && wantReason == "" {
		n, isInt := v.(json.Number)
		c, ok := modelJSONInt(n, 1)
		if !isInt || !ok || c > 1000 {
			wantReason = ReasonInvalidBatchSize
		}
		want.BatchSize = int(c)
	}
	if wantReason != "" {
		want = TailJoin{}
	}
	if reason != wantReason || j != want {
		t.Fatalf("payload %s: got %+v %q, want %+v %q", payload, j, reason, want, wantReason)
	}
}

func TestLifecycleEvents(t *testing.T) {
	title := "Draft"
	h := fsm.Header{ID: "ses_D", TenantID: "acme", Title: &title, Metadata: []byte(`{"workflow":"contract"}`),
		CreatedAt: 1_776_333_600_000_000, UpdatedAt: 1_776_333_607_123_456, Version: 1}
	untitled := h
	untitled.Title, untitled.Version = nil, 2
	tests := []struct {
		kind fsm.ChangeKind
		h    fsm.Header
		want []string
	}{
		{fsm.SessionCreated, h, []string{
			`{"kind":"session.activated","session_id":"ses_D","tenant_id":"acme"}`,
			`{"kind":"session.created","session_id":"ses_D","tenant_id":"acme","title":"Draft","metadata":{"workflow":"contract"},"created_at":"2026-04-16T10:00:00.000000Z","version":1}`,
		}},
		{fsm.SessionUpdated, untitled, []string{
			`{"kind":"session.updated","session_id":"ses_D","tenant_id":"acme","title":null,"metadata":{"workflow":"contract"},"updated_at":"2026-04-16T10:00:07.123456Z","version":2}`,
		}},
		{fsm.SessionArchived, h, []string{`{"kind":"session.archived","session_id":"ses_D","tenant_id":"acme","archived":true}`}},
		{fsm.SessionUnarchived, h, []string{`{"kind":"session.unarchived","session_id":"ses_D","tenant_id":"acme","archived":false}`}},
		{fsm.ChangeKind(99), h, nil},
	}
	for _, tt := range tests {
		got := LifecycleEvents(tt.kind, &tt.h)
		if len(got) != len(tt.want) {
			t.Fatalf("%v: %d events, want %d", tt.kind, len(got), len(tt.want))
		}
		for i := range got {
			if string(got[i]) != tt.want[i] {
				t.Errorf("%v:\n got %s\nwant %s", tt.kind, got[i], tt.want[i])
			}
		}
	}
}
