package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"starcite/test/harness"
)

// TestContractRouting: the route table, framework 404s, trailing slashes,
// percent-decoded ids, HEAD and the health routes (docs/api.md#routes,
// docs/api.md#routing-and-paths, docs/api.md#liveness,
// docs/api.md#readiness).
func TestContractRouting(t *testing.T) {
	n := harness.StartNode(t, harness.Options{NoOps: true}) // health on the API port
	createOK(t, n, `{"id":"x"}`)

	t.Run("unknown routes and methods", func(t *testing.T) {
		for _, c := range []struct{ method, path string }{
			{"DELETE", "/v1/sessions/x"},
			{"PUT", "/v1/sessions/x"},
			{"POST", "/v1/sessions/x"},
			{"DELETE", "/v1/sessions"},
			{"PUT", "/v1/sessions"},
			{"PATCH", "/v1/sessions"},
			{"GET", "/v1/nope"},
			{"GET", "/v1"},
			{"GET", "/v1/"},
			{"GET", "/"},
			{"GET", "/nope"},
			{"GET", "/v2/sessions"},
			{"GET", "/V1/sessions"},
			{"GET", "/v1/Sessions"},
			{"GET", "/v1/sessions/x/append"},
			{"PUT", "/v1/sessions/x/append"},
			{"DELETE", "/v1/sessions/x/append"},
			{"POST", "/v1/sessions/x/events"},
			{"GET", "/v1/sessions/x/unknown"},
			{"GET", "/v1/sessions/x/append/extra"},
			{"POST", "/v1/sessions/x/append/extra"},
			{"GET", "/v1/sessions/x/events/1"},
			{"POST", "/v1/sessions/x/tail"},
			{"POST", "/health/live"},
			{"DELETE", "/health/ready"},
			{"GET", "/health"},
			{"GET", "/health/live/x"},
			{"GET", "/health/dead"},
			{"GET", "/metrics"},
			{"GET", "/debug/pprof/"},
			{"OPTIONS", "/v1/sessions"},
		} {
			t.Run(c.method+" "+c.path, func(t *testing.T) {
				var body any
				if c.method == "POST" || c.method == "PUT" || c.method == "PATCH" {
					body = evBody(nil)
				}
				wantNotFound(t, do(t, n, c.method, c.path, body, nil))
			})
		}
	})

	t.Run("trailing slash", func(t *testing.T) {
		r := do(t, n, "GET", "/v1/sessions/", nil, nil)
		m := wantStatus(t, r, 200)
		wantKeys(t, r.String(), m, listPageKeys)
		wantJSON(t, "next_cursor", m["next_cursor"], `null`)
		if items, _ := m["sessions"].([]any); len(items) != 1 {
			t.Errorf("%s: want the one session", r)
		}
		r = do(t, n, "POST", "/v1/sessions/", `{"id":"slash"}`, nil)
		wantKeys(t, r.String(), wantStatus(t, r, 201), createKeys)
		wantAppend(t, do(t, n, "POST", "/v1/sessions/slash/append/", evBody(nil), nil), 1, 1, false)
		wantKeys(t, "session", wantStatus(t, do(t, n, "GET", "/v1/sessions/slash/", nil, nil), 200), sessionKeys)
		wantKeys(t, "events", wantStatus(t, do(t, n, "GET", "/v1/sessions/slash/events/", nil, nil), 200), eventsPageKeys)
	})

	t.Run("empty segments are dropped", func(t *testing.T) {
		m := wantStatus(t, do(t, n, "GET", "//v1//sessions//", nil, nil), 200)
		wantKeys(t, "list", m, listPageKeys)
		wantKeys(t, "session", wantStatus(t, do(t, n, "GET", "/v1/sessions//x", nil, nil), 200), sessionKeys)
	})

	t.Run("sessions named like routes", func(t *testing.T) {
		for _, id := range []string{"append", "events", "tail", "v1", "sessions", "health"} {
			createOK(t, n, fmt.Sprintf(`{"id":%q}`, id))
			s := wantStatus(t, do(t, n, "GET", "/v1/sessions/"+id, nil, nil), 200)
			wantKeys(t, id, s, sessionKeys)
			wantJSON(t, "id", s["id"], strconv.Quote(id))
			wantAppend(t, do(t, n, "POST", "/v1/sessions/"+id+"/append", evBody(nil), nil), 1, 1, false)
			evs, _, last := eventsOf(t, n, id, "")
			if len(evs) != 1 || last != 1 {
				t.Errorf("events of %s: %d events, last_seq %d", id, len(evs), last)
			}
		}
	})

	t.Run("Accept and Authorization are ignored in none mode", func(t *testing.T) {
		// Accept is ignored (docs/decisions.md#d1); no token is read
		// (docs/api.md#auth-modes).
		for i, h := range []harness.Header{
			{"Accept": "text/html"},
			{"Accept": "application/xml;q=1, */*;q=0"},
			{"Authorization": "Bearer not-a-jwt"},
			{"Authorization": "Basic dXNlcjpwYXNz"},
			{"Authorization": "Bearer a b, Bearer c"},
		} {
			id := fmt.Sprintf("hdr-%d", i)
			r := do(t, n, "POST", "/v1/sessions?access_token=garbage", fmt.Sprintf(`{"id":%q}`, id), h)
			m := wantStatus(t, r, 201)
			wantJSON(t, "creator_principal", m["creator_principal"], serviceCreator)
			wantAppend(t, do(t, n, "POST", "/v1/sessions/"+id+"/append?access_token=x", evBody(nil), h), 1, 1, false)
			wantStatus(t, do(t, n, "GET", "/v1/sessions?access_token=x", nil, h), 200)
			wantStatus(t, do(t, n, "GET", "/v1/sessions/"+id, nil, h), 200)
			wantStatus(t, do(t, n, "GET", "/v1/sessions/"+id+"/events", nil, h), 200)
			if r.header.Get("Www-Authenticate") != "" {
				t.Errorf("%s: www-authenticate in none mode", r)
			}
		}
	})

	t.Run("long ids are addressable", func(t *testing.T) {
		// Ids have no length limit (docs/api.md#create): a session that can
		// be created can be addressed. 6,000 bytes keeps the request line
		// well under upstream's 10,000-byte limit.
		id := strings.Repeat("k", 6000)
		m := createOK(t, n, fmt.Sprintf(`{"id":%q}`, id))
		wantJSON(t, "id", m["id"], strconv.Quote(id))
		wantAppend(t, appendReq(t, n, id, evBody(nil)), 1, 1, false)
		wantJSON(t, "id", getSession(t, n, id)["id"], strconv.Quote(id))
		if evs, _, _ := eventsOf(t, n, id, ""); len(evs) != 1 {
			t.Errorf("%d events", len(evs))
		}
		r := do(t, n, "GET", "/v1/sessions?limit=1&cursor="+id[:len(id)-1], nil, nil)
		page := wantStatus(t, r, 200)
		if items, _ := page["sessions"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != id {
			t.Errorf("list after a long cursor: %s", r)
		}
	})

	t.Run("tail route exists", func(t *testing.T) {
		// GET without an Upgrade header: 400, not the framework 404
		// (docs/api.md#tail-upgrade).
		wantErr(t, do(t, n, "GET", "/v1/sessions/x/tail", nil, nil), 400, "invalid_websocket_upgrade", "WebSocket upgrade required")
	})

	t.Run("percent-encoded ids", func(t *testing.T) {
		for _, c := range []struct{ id, escaped string }{
			{"a/b", "a%2Fb"},
			{"a/b", "a%2fb"},
			{"sp ace", "sp%20ace"},
			{"é", "%C3%A9"},
			{"q?x#y", "q%3Fx%23y"},
			{"100%", "100%25"},
			{"plus+sign", "plus+sign"},
			{"plus+sign", "plus%2Bsign"},
			{"..", "%2E%2E"},
			{"a%2Fb", "a%252Fb"},
		} {
			t.Run(c.escaped, func(t *testing.T) {
				if r := do(t, n, "GET", "/v1/sessions/"+pathEscape(c.id), nil, nil); r.status == 404 {
					createOK(t, n, fmt.Sprintf(`{"id":%q}`, c.id))
				}
				before := lastSeq(t, n, c.id)
				r := do(t, n, "POST", "/v1/sessions/"+c.escaped+"/append",
					evBody(map[string]string{"producer_seq": fmt.Sprint(before + 1)}), nil)
				wantAppend(t, r, before+1, before+1, false)
				s := wantStatus(t, do(t, n, "GET", "/v1/sessions/"+c.escaped, nil, nil), 200)
				wantJSON(t, "id", s["id"], strconv.Quote(c.id))
				evs, _, last := eventsOf(t, n, c.id, "")
				if last != before+1 || len(evs) != int(before+1) {
					t.Errorf("events of %q: %d events, last_seq %d", c.id, len(evs), last)
				}
			})
		}
		// a%2Fb is one segment: the session "a/b", not a route a/b.
		wantErr(t, do(t, n, "GET", "/v1/sessions/no%2Fsuch", nil, nil), 404, "session_not_found", msgSessionNotFound)
	})

	t.Run("health", func(t *testing.T) {
		r := do(t, n, "GET", "/health/live", nil, nil)
		m := wantStatus(t, r, 200)
		if string(r.body) != healthLiveBody {
			wantJSON(t, "live", m, healthLiveBody)
		}
		wantKeys(t, "live", m, "status")
		r = do(t, n, "GET", "/health/ready", nil, nil)
		m = wantStatus(t, r, 200)
		wantKeys(t, "ready", m, "status mode")
		wantJSON(t, "ready", m, healthReadyBody)
		// Health routes never need a body and ignore query strings.
		wantJSON(t, "live?x", wantStatus(t, do(t, n, "GET", "/health/live?x=1", nil, nil), 200), healthLiveBody)
	})

	t.Run("HEAD", func(t *testing.T) {
		for _, path := range []string{"/health/live", "/health/ready", "/v1/sessions", "/v1/sessions/x", "/v1/sessions/x/events"} {
			t.Run(path, func(t *testing.T) {
				status, header, rest := rawHead(t, n, path)
				if status != 200 {
					t.Fatalf("HEAD %s: status %d", path, status)
				}
				if len(rest) != 0 {
					t.Errorf("HEAD %s: %d bytes after the header: %q", path, len(rest), rest)
				}
				if ct := header.Get("Content-Type"); ct != jsonCT {
					t.Errorf("HEAD %s: Content-Type %q", path, ct)
				}
				r := do(t, n, "HEAD", path, nil, nil)
				if r.status != 200 || len(r.body) != 0 {
					t.Errorf("%s: want 200 without a body", r)
				}
			})
		}
		status, _, rest := rawHead(t, n, "/v1/nope")
		if status != 404 || len(rest) != 0 {
			t.Errorf("HEAD /v1/nope: %d %q", status, rest)
		}
	})

	t.Run("error responses are JSON", func(t *testing.T) {
		// Every 4xx carries the JSON content type
		// (docs/api.md#conventions).
		for _, r := range []resp{
			do(t, n, "GET", "/nope", nil, nil),
			do(t, n, "GET", "/v1/sessions?limit=0", nil, nil),
			do(t, n, "POST", "/v1/sessions", `[`, nil),
			do(t, n, "POST", "/v1/sessions/x/append", `{}`, nil),
			do(t, n, "POST", "/v1/sessions/x/append", `{}`, harness.Header{"Content-Type": "text/plain"}),
		} {
			if r.ctype != jsonCT {
				t.Errorf("%s: Content-Type %q", r, r.ctype)
			}
		}
	})
}

// rawRequest sends a request line exactly as given (no client-side URL
// validation) over its own connection and reads the response.
func rawRequest(t *testing.T, n *harness.Node, method, path string, body []byte) resp {
	t.Helper()
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(n.Host, strconv.Itoa(n.Port)), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, path, n.Host)
	if body != nil {
		fmt.Fprintf(conn, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
	}
	fmt.Fprint(conn, "\r\n")
	conn.Write(body)
	res, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, trunc(path), err)
	}
	out, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return resp{status: res.StatusCode, ctype: res.Header.Get("Content-Type"), header: res.Header, body: out, method: method, path: path}
}

// rawHead sends a HEAD request over its own connection and returns the
// status, the headers and whatever bytes followed them before the server
// closed the connection (nothing, for a correct HEAD reply).
func rawHead(t *testing.T, n *harness.Node, path string) (int, http.Header, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(n.Host, strconv.Itoa(n.Port)), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "HEAD %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, n.Host)
	all, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("HEAD %s: %v", path, err)
	}
	i := bytes.Index(all, []byte("\r\n\r\n"))
	if i < 0 {
		t.Fatalf("HEAD %s: no header end in %q", path, all)
	}
	res, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(all[:i+4])), &http.Request{Method: "HEAD"})
	if err != nil {
		t.Fatalf("HEAD %s: %v", path, err)
	}
	return res.StatusCode, res.Header, all[i+4:]
}

// TestContractHostileInput: inputs meant to break the parser get a 4xx and
// leave the node serving (docs/api.md#request-bodies,
// docs/decisions.md#d2).
func TestContractHostileInput(t *testing.T) {
	n := harness.StartNode(t, harness.Options{NoOps: true})
	createOK(t, n, `{"id":"h"}`)
	pseq := int64(0) // producer "ok" appends one valid event after each case
	stillServing := func(t *testing.T) {
		t.Helper()
		if !n.Running() {
			t.Fatal("node process exited")
		}
		wantJSON(t, "live", wantStatus(t, do(t, n, "GET", "/health/live", nil, nil), 200), healthLiveBody)
		pseq++
		wantAppend(t, appendReq(t, n, "h", evBody(map[string]string{"producer_id": `"ok"`, "producer_seq": fmt.Sprint(pseq)})), pseq, pseq, false)
	}

	deepArr := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	deepObj := strings.Repeat(`{"a":`, 10000) + `1` + strings.Repeat("}", 10000)
	deepMixed := strings.Repeat(`[{"a":`, 5000) + `1` + strings.Repeat("}]", 5000)
	unclosed := strings.Repeat("[", 100000)
	for _, c := range []struct{ name, body string }{
		{"10000 nested arrays in payload", `{"type":"msg","payload":{"a":` + deepArr + `},"producer_id":"p","producer_seq":1}`},
		{"10000 nested objects in payload", `{"type":"msg","payload":` + deepObj + `,"producer_id":"p","producer_seq":1}`},
		{"10000 nested levels in metadata", `{"type":"msg","payload":{},"metadata":{"x":` + deepMixed + `},"producer_id":"p","producer_seq":1}`},
		{"10000 nested levels in refs", `{"type":"msg","payload":{},"refs":{"x":` + deepArr + `},"producer_id":"p","producer_seq":1}`},
		{"10000 nested levels in an unknown field", `{"type":"msg","payload":{},"junk":` + deepArr + `,"producer_id":"p","producer_seq":1}`},
		{"100000 unclosed brackets", `{"type":"msg","payload":{"a":` + unclosed},
		{"top-level nesting", deepArr},
		{"invalid UTF-8 in a value", "{\"type\":\"msg\",\"payload\":{\"t\":\"\xff\xfe\"},\"producer_id\":\"p\",\"producer_seq\":1}"},
		{"invalid UTF-8 in a key", "{\"type\":\"msg\",\"payload\":{\"\xc3\":1},\"producer_id\":\"p\",\"producer_seq\":1}"},
		{"invalid UTF-8 in type", "{\"type\":\"m\xedsg\",\"payload\":{},\"producer_id\":\"p\",\"producer_seq\":1}"},
		{"overlong UTF-8", "{\"type\":\"msg\",\"payload\":{\"t\":\"\xc0\xaf\"},\"producer_id\":\"p\",\"producer_seq\":1}"},
		{"UTF-8 surrogate", "{\"type\":\"msg\",\"payload\":{\"t\":\"\xed\xa0\x80\"},\"producer_id\":\"p\",\"producer_seq\":1}"},
		{"escaped lone surrogate", `{"type":"msg","payload":{"t":"\ud800"},"producer_id":"p","producer_seq":1}`},
		{"escaped NUL in payload", `{"type":"msg","payload":{"t":"a\u0000b"},"producer_id":"p","producer_seq":1}`},
		{"escaped NUL in a key", `{"type":"msg","payload":{"a\u0000":1},"producer_id":"p","producer_seq":1}`},
		{"escaped NUL in type", `{"type":"\u0000","payload":{},"producer_id":"p","producer_seq":1}`},
		{"raw NUL", "{\"type\":\"msg\",\"payload\":{\"t\":\"a\x00b\"},\"producer_id\":\"p\",\"producer_seq\":1}"},
		{"raw control character", "{\"type\":\"msg\",\"payload\":{\"t\":\"a\x01b\"},\"producer_id\":\"p\",\"producer_seq\":1}"},
		{"1e400 in payload", `{"type":"msg","payload":{"n":1e400},"producer_id":"p","producer_seq":1}`},
		{"-1e400 in payload", `{"type":"msg","payload":{"n":-1e400},"producer_id":"p","producer_seq":1}`},
		{"1e400 as producer_seq", `{"type":"msg","payload":{},"producer_id":"p","producer_seq":1e400}`},
		{"1e400 as expected_seq", `{"type":"msg","payload":{},"producer_id":"p","producer_seq":1,"expected_seq":1e400}`},
		{"1e400 as refs.to_seq", `{"type":"msg","payload":{},"producer_id":"p","producer_seq":1,"refs":{"to_seq":1e400}}`},
		{"NaN", `{"type":"msg","payload":{"n":NaN},"producer_id":"p","producer_seq":1}`},
		{"Infinity", `{"type":"msg","payload":{"n":Infinity},"producer_id":"p","producer_seq":1}`},
		{"1 MB digit string as producer_seq", `{"type":"msg","payload":{},"producer_id":"p","producer_seq":"` + strings.Repeat("9", 1<<20) + `"}`},
		{"1 MB number as producer_seq", `{"type":"msg","payload":{},"producer_id":"p","producer_seq":` + strings.Repeat("9", 1<<20) + `}`},
		{"1 MB empty-ish type", `{"type":"","payload":{},"producer_id":"p","producer_seq":1,"source":"` + strings.Repeat("s", 1<<20) + `"}`},
		{"BOM", "\xef\xbb\xbf" + evBody(nil)},
	} {
		t.Run("append "+c.name, func(t *testing.T) {
			want4xx(t, appendReq(t, n, "h", c.body))
			stillServing(t)
		})
	}
	for _, c := range []struct{ name, body string }{
		{"10000 nested levels in metadata", `{"id":"deep","metadata":{"a":` + deepArr + `}}`},
		{"invalid UTF-8 in id", "{\"id\":\"\xff\"}"},
		{"invalid UTF-8 in title", "{\"id\":\"bad-title\",\"title\":\"\xff\"}"},
		{"escaped NUL in id", `{"id":"a\u0000b"}`},
		{"escaped NUL in metadata", `{"id":"nul-meta","metadata":{"k":"\u0000"}}`},
		{"1e400 in metadata", `{"id":"big-num","metadata":{"n":1e400}}`},
	} {
		t.Run("create "+c.name, func(t *testing.T) {
			want4xx(t, do(t, n, "POST", "/v1/sessions", c.body, nil))
			stillServing(t)
		})
	}
	for _, id := range []string{"deep", "bad-title", "nul-meta", "big-num"} {
		wantErr(t, do(t, n, "GET", "/v1/sessions/"+id, nil, nil), 404, "session_not_found", msgSessionNotFound)
	}
	for _, path := range []string{
		"/v1/sessions?cursor=%FF", "/v1/sessions?metadata[k]=%FF", "/v1/sessions?metadata[%FF]=v", "/v1/sessions?cursor=%00",
		"/v1/sessions?metadata.k=%FF", "/v1/sessions/h/events?cursor=" + strings.Repeat("9", 5000),
		"/v1/sessions?metadata" + strings.Repeat("[a]", 2000) + "=1",
		"/v1/sessions/%ZZ", "/v1/sessions/%ZZ/events", "/v1/sessions/%FF/append", "/v1/sessions/%00/events", "/v1/sessions/%",
	} {
		t.Run("GET "+trunc(path), func(t *testing.T) {
			r := rawRequest(t, n, "GET", path, nil)
			if r.status < 400 || r.status > 499 {
				t.Errorf("%s: want a 4xx", r)
			}
			stillServing(t)
		})
	}

	// Large but legal: only title, session metadata, type and
	// producer_id have a size limit of their own
	// (docs/api.md#request-bodies); the others take 1 MiB.
	t.Run("1 MB string fields are stored", func(t *testing.T) {
		big := strings.Repeat("é", 1<<19) // 1 MiB of UTF-8
		title, typ, producer := strings.Repeat("é", 2048), strings.Repeat("é", 128), strings.Repeat("p", 256)
		r := do(t, n, "POST", "/v1/sessions", fmt.Sprintf(`{"id":"big","title":%q,"metadata":{"s":%q}}`, title, strings.Repeat("é", 32000)), nil)
		m := wantStatus(t, r, 201)
		if m["title"] != title {
			t.Errorf("title not echoed")
		}
		body := fmt.Sprintf(`{"type":%q,"payload":{%q:%q},"producer_id":%q,"producer_seq":1,"source":%q,"idempotency_key":%q,"refs":{"request_id":%q}}`,
			typ, big, big, producer, big, big, big)
		wantAppend(t, appendReq(t, n, "big", body), 1, 1, false)
		ev := eventAt(t, n, "big", 1)
		for k, want := range map[string]string{"type": typ, "producer_id": producer, "source": big, "idempotency_key": big} {
			if ev[k] != want {
				t.Errorf("%s not stored as sent", k)
			}
		}
		if p, _ := ev["payload"].(map[string]any); p[big] != big {
			t.Errorf("payload not stored as sent")
		}
		wantAppend(t, appendReq(t, n, "big", body), 1, 1, true)
		stillServing(t)
	})
	t.Run("escaped but legal strings round-trip", func(t *testing.T) {
		createOK(t, n, `{"id":"esc"}`)
		body := `{"type":"msg","payload":{"s":"\"\\\/\b\f\n\r\t\u0001\u001f\u2028\ud83d\ude00é"},"producer_id":"esc","producer_seq":1}`
		wantAppend(t, appendReq(t, n, "esc", body), 1, 1, false)
		wantJSON(t, "payload", eventAt(t, n, "esc", 1)["payload"], `{"s":"\"\\/\b\f\n\r\t\u0001\u001f\u2028😀é"}`)
		stillServing(t)
	})
}
