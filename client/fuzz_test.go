package client

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzDecodeFrame: any frame a server (or something posing as one) sends
// decodes into events or an error — never a panic — and each event keeps
// the exact JSON of its object, from which it decodes again the same.
func FuzzDecodeFrame(f *testing.F) {
	for _, seed := range []string{
		event(1), "[" + event(1) + "," + event(2) + "]", "", " ", "[]", "null", "[null]", "{}",
		`{"seq":-1}`, `{"seq":1.5}`, `{"seq":18446744073709551616}`, `{"seq":"1"}`, `[{"seq":1},7]`,
		`{"seq":1,"inserted_at":"2026-03-01T12:00:01"}`, `{"seq":1,"payload":[1,2]}`, "\xff", `[` + event(3),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		events, err := decodeFrame(frame)
		if err != nil {
			return
		}
		trimmed := bytes.TrimSpace(frame)
		if len(trimmed) == 0 || trimmed[0] != '[' {
			if len(events) != 1 || !bytes.Equal(events[0].Raw, trimmed) {
				t.Fatalf("single frame %q decoded into %d events", frame, len(events))
			}
		}
		for _, e := range events {
			if !json.Valid(e.Raw) {
				t.Fatalf("event raw %q is not JSON", e.Raw)
			}
			again, err := decodeEvent(e.Raw)
			if err != nil || again.Seq != e.Seq || again.Type != e.Type || !bytes.Equal(again.Payload, e.Payload) {
				t.Fatalf("event %q decodes differently again: %+v, %v", e.Raw, again, err)
			}
		}
	})
}

// FuzzDecodePhoenixFrame: any socket frame parses into its five parts or
// an error, never a panic; a parsed frame encodes back into one that
// parses the same.
func FuzzDecodePhoenixFrame(f *testing.F) {
	for _, seed := range []string{
		`["1",null,"tail:s","events",{"events":[` + event(1) + `]}]`, `[null,"2","phoenix","phx_reply",{"status":"ok","response":{}}]`,
		`["1","1","tail:s","phx_reply",{"status":"error","response":{"reason":"session_not_found"}}]`,
		`[]`, `[1,2,3,4,5]`, `["1","1","t","e"]`, `["1","1","t","e",{},6]`, `null`, `"x"`, `[null,null,null,null,null]`, "\xff",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := decodePhoenixFrame(b)
		if err != nil {
			return
		}
		var payload any
		if err := json.Unmarshal(fr.payload, &payload); err != nil {
			t.Fatalf("payload %q is not JSON: %v", fr.payload, err)
		}
		again, err := encodePhoenixFrame(fr.joinRef, fr.ref, fr.topic, fr.event, fr.payload)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodePhoenixFrame(again)
		if err != nil || back.topic != fr.topic || back.event != fr.event || (back.ref == nil) != (fr.ref == nil) ||
			(fr.ref != nil && *back.ref != *fr.ref) || (back.joinRef == nil) != (fr.joinRef == nil) {
			t.Fatalf("frame %q re-encoded as %q: %+v, %v", b, again, back, err)
		}
	})
}
