package e2e

// Helpers of the black-box contract tests (contract_*_test.go): raw HTTP
// requests that keep the response headers, strict JSON decoding, and
// assertions on exact status codes, error bodies, key sets and formats of
// docs/api.md in auth mode none.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"starcite/test/harness"
)

// jsonCT is the Content-Type of every JSON response
// (docs/api.md#conventions).
const jsonCT = "application/json; charset=utf-8"

var (
	// Generated session ids: "ses_" and 16 URL-safe base64 characters
	// (docs/api.md#create).
	generatedIDRe = regexp.MustCompile(`^ses_[A-Za-z0-9_-]{16}$`)
	// Timestamps: UTC with microseconds (docs/api.md#create,
	// docs/decisions.md#d8).
	timestampRe = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`)
)

// The principal of none mode (docs/api.md#auth-modes) as it appears in
// bodies.
const (
	serviceCreator   = `{"tenant_id":"service","id":"service","type":"service"}`
	servicePrincipal = `{"tenant_id":"service","actor":"service:service","principal_type":"service","principal_id":"service"}`
)

// Verbatim messages of the error catalogue (docs/api.md#error-catalogue).
const (
	msgInvalidEvent     = "Invalid event payload"
	msgInvalidMetadata  = "Invalid metadata payload"
	msgInvalidRefs      = "Invalid refs payload"
	msgInvalidSession   = "Invalid session payload"
	msgInvalidCursor    = "Invalid cursor value"
	msgInvalidLimit     = "Invalid limit value"
	msgSessionNotFound  = "Session was not found"
	msgSessionExists    = "Session already exists"
	msgProducerReplay   = "Producer sequence was already used with different event content"
	anyMessage          = "\x00any"                                                                                                    // the contract gives no message: any non-empty string
	maxBody             = 8_000_000                                                                                                    // docs/decisions.md#d2
	eventKeys           = "seq cursor type payload actor producer_id producer_seq metadata refs idempotency_key inserted_at tenant_id" // + source when set
	listItemKeys        = "id title tenant_id creator_principal metadata created_at updated_at version archived"
	createKeys          = listItemKeys + " last_seq"
	patchKeys           = listItemKeys + " last_seq"
	sessionKeys         = listItemKeys + " last_seq archived_seq"
	appendKeys          = "seq last_seq deduped cursor committed_cursor"
	eventsPageKeys      = "events next_cursor last_seq"
	listPageKeys        = "sessions next_cursor"
	errorKeys           = "error message"
	notFoundKeys        = "error"
	healthLiveBody      = `{"status":"ok"}`
	healthReadyBody     = `{"status":"ok","mode":"write_node"}`
	producerConflictFmt = "Producer %s expected seq %d, got %d"
	expectedConflictFmt = "Expected seq %d, current seq is %d"
)

// contractClient keeps few idle connections, so that the suite's own pool
// does not eat into a node's connection cap (hostile_test.go).
var contractClient = &http.Client{Timeout: 60 * time.Second}

// resp is one HTTP response.
type resp struct {
	status int
	ctype  string
	header http.Header
	body   []byte
	method string
	path   string
}

func (r resp) String() string {
	b := r.body
	if len(b) > 300 {
		b = append(append([]byte(nil), b[:300]...), "..."...)
	}
	return fmt.Sprintf("%s %s -> %d %q %s", r.method, trunc(r.path), r.status, r.ctype, b)
}

func trunc(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// do sends a request the way harness.Node.Do does (a string or []byte body
// verbatim, anything else JSON-encoded; Content-Type application/json with
// a body unless h overrides it, "" removing it) and keeps the headers.
func do(t testing.TB, n *harness.Node, method, path string, body any, h harness.Header) resp {
	t.Helper()
	r, err := tryDo(n, method, path, body, h)
	if err != nil {
		t.Fatalf("%s %s: %v", method, trunc(path), err)
	}
	return r
}

func tryDo(n *harness.Node, method, path string, body any, h harness.Header) (resp, error) {
	r, err := n.TryRequestWith(contractClient, method, path, body, h)
	return resp{status: r.Status, ctype: r.Header.Get("Content-Type"), header: r.Header,
		body: r.Body, method: method, path: path}, err
}

// decodeStrict decodes exactly one JSON value (numbers as json.Number).
func decodeStrict(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, fmt.Errorf("data after the JSON value")
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the JSON value")
	}
	return v, nil
}

// mustJSON decodes a JSON literal of the test itself.
func mustJSON(t testing.TB, s string) any {
	t.Helper()
	v, err := decodeStrict([]byte(s))
	if err != nil {
		t.Fatalf("bad JSON in test: %v: %s", err, s)
	}
	return v
}

// object asserts a JSON response with the content type of
// docs/api.md#conventions and returns its body as an object.
func object(t testing.TB, r resp) map[string]any {
	t.Helper()
	if r.ctype != jsonCT {
		t.Errorf("%s: Content-Type %q, want %q", r, r.ctype, jsonCT)
	}
	v, err := decodeStrict(r.body)
	if err != nil {
		t.Fatalf("%s: body is not JSON: %v", r, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: body is not a JSON object", r)
	}
	return m
}

// wantStatus asserts the status and returns the body as an object.
func wantStatus(t testing.TB, r resp, status int) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d", r, r.status, status)
	}
	return object(t, r)
}

// wantKeys asserts that m has exactly the space-separated keys.
func wantKeys(t testing.TB, what string, m map[string]any, keys string) {
	t.Helper()
	want := strings.Fields(keys)
	sort.Strings(want)
	got := make([]string, 0, len(m))
	for k := range m {
		got = append(got, k)
	}
	sort.Strings(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("%s: keys %v, want exactly %v", what, got, want)
	}
}

// wantErr asserts an error response {"error": code, "message": msg} with
// exactly these two keys (docs/api.md#errors); msg anyMessage accepts any
// non-empty message.
func wantErr(t testing.TB, r resp, status int, code, msg string) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d %s", r, r.status, status, code)
		return
	}
	m := object(t, r)
	wantKeys(t, r.String(), m, errorKeys)
	if m["error"] != code {
		t.Errorf("%s: error %v, want %q", r, m["error"], code)
	}
	if msg == anyMessage {
		if s, ok := m["message"].(string); !ok || s == "" {
			t.Errorf("%s: message %#v, want a non-empty string", r, m["message"])
		}
	} else if m["message"] != msg {
		t.Errorf("%s: message %#v, want %q", r, m["message"], msg)
	}
}

// wantNotFound asserts the framework 404: exactly {"error":"not_found"}.
func wantNotFound(t testing.TB, r resp) {
	t.Helper()
	if r.status != 404 {
		t.Errorf("%s: status %d, want 404 not_found", r, r.status)
		return
	}
	m := object(t, r)
	wantKeys(t, r.String(), m, notFoundKeys)
	if m["error"] != "not_found" {
		t.Errorf("%s: error %v, want \"not_found\"", r, m["error"])
	}
}

// want4xx asserts a client error with the error shape (hostile input).
func want4xx(t testing.TB, r resp) {
	t.Helper()
	if r.status < 400 || r.status > 499 {
		t.Errorf("%s: status %d, want a 4xx", r, r.status)
		return
	}
	m := object(t, r)
	if _, ok := m["error"].(string); !ok {
		t.Errorf("%s: no error code", r)
	}
}

// sameJSON reports whether two decoded JSON values are structurally equal
// (docs/api.md#producer-sequencing): object key order is irrelevant,
// integers compare as integers, floats as float64, and an integer never
// equals a float.
func sameJSON(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameJSON(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		xi, yi := isIntLiteral(string(x)), isIntLiteral(string(y))
		if xi != yi {
			return false
		}
		if xi {
			bx, _ := new(big.Int).SetString(string(x), 10)
			by, _ := new(big.Int).SetString(string(y), 10)
			return bx != nil && by != nil && bx.Cmp(by) == 0
		}
		fx, err1 := x.Float64()
		fy, err2 := y.Float64()
		return err1 == nil && err2 == nil && fx == fy
	default:
		return a == b
	}
}

func isIntLiteral(s string) bool { return !strings.ContainsAny(s, ".eE") }

// wantJSON asserts that got is structurally equal to the JSON text want.
func wantJSON(t testing.TB, what string, got any, want string) {
	t.Helper()
	if !sameJSON(got, mustJSON(t, want)) {
		g, _ := json.Marshal(got)
		t.Errorf("%s: got %s, want %s", what, trunc(string(g)), trunc(want))
	}
}

// num returns a decoded JSON number as an integer, failing otherwise.
func num(t testing.TB, what string, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok || !isIntLiteral(string(n)) {
		t.Fatalf("%s: %#v is not an integer", what, v)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return i
}

// wantTimestamp asserts the microsecond UTC format.
func wantTimestamp(t testing.TB, what string, v any) string {
	t.Helper()
	s, ok := v.(string)
	if !ok || !timestampRe.MatchString(s) {
		t.Errorf("%s: timestamp %#v does not match %s", what, v, timestampRe)
	}
	return s
}

// createOK creates a session from a raw JSON body and returns the 201 body.
func createOK(t testing.TB, n *harness.Node, body string) map[string]any {
	t.Helper()
	r := do(t, n, "POST", "/v1/sessions", body, nil)
	m := wantStatus(t, r, 201)
	wantKeys(t, r.String(), m, createKeys)
	return m
}

// appendReq posts a raw JSON body to a session's append route.
func appendReq(t testing.TB, n *harness.Node, id, body string) resp {
	t.Helper()
	return do(t, n, "POST", "/v1/sessions/"+pathEscape(id)+"/append", body, nil)
}

// wantAppend asserts a 201 append reply {"seq","last_seq","deduped"}.
func wantAppend(t testing.TB, r resp, seq, lastSeq int64, deduped bool) {
	t.Helper()
	if r.status != 201 {
		t.Errorf("%s: status %d, want 201 seq %d", r, r.status, seq)
		return
	}
	m := object(t, r)
	wantKeys(t, r.String(), m, appendKeys)
	if num(t, "seq", m["seq"]) != seq || num(t, "last_seq", m["last_seq"]) != lastSeq || m["deduped"] != deduped ||
		num(t, "cursor", m["cursor"]) != seq || num(t, "committed_cursor", m["committed_cursor"]) > lastSeq {
		t.Errorf("%s: want {\"seq\":%d,\"last_seq\":%d,\"deduped\":%v,\"cursor\":%d,\"committed_cursor\":<= last_seq}",
			r, seq, lastSeq, deduped, seq)
	}
}

// getSession reads GET /v1/sessions/{id} and checks its shape.
func getSession(t testing.TB, n *harness.Node, id string) map[string]any {
	t.Helper()
	r := do(t, n, "GET", "/v1/sessions/"+pathEscape(id), nil, nil)
	m := wantStatus(t, r, 200)
	wantKeys(t, r.String(), m, sessionKeys)
	return m
}

// lastSeq is the session's last_seq as GET /v1/sessions/{id} reports it.
func lastSeq(t testing.TB, n *harness.Node, id string) int64 {
	t.Helper()
	return num(t, "last_seq", getSession(t, n, id)["last_seq"])
}

// eventsOf reads one page of the events route.
func eventsOf(t testing.TB, n *harness.Node, id, query string) (events []map[string]any, next any, last int64) {
	t.Helper()
	path := "/v1/sessions/" + pathEscape(id) + "/events"
	if query != "" {
		path += "?" + query
	}
	r := do(t, n, "GET", path, nil, nil)
	m := wantStatus(t, r, 200)
	wantKeys(t, r.String(), m, eventsPageKeys)
	raw, ok := m["events"].([]any)
	if !ok {
		t.Fatalf("%s: events is not an array", r)
	}
	for i, e := range raw {
		ev, ok := e.(map[string]any)
		if !ok {
			t.Fatalf("%s: event %d is not an object", r, i)
		}
		keys := eventKeys
		if src, ok := ev["source"]; ok {
			keys += " source"
			if _, isString := src.(string); !isString {
				t.Errorf("%s: event %d source %#v: a string or absent, never null", r, i, src)
			}
		}
		wantKeys(t, fmt.Sprintf("%s: event %d", r, i), ev, keys)
		if num(t, "cursor", ev["cursor"]) != num(t, "seq", ev["seq"]) {
			t.Errorf("%s: event %d cursor %v, seq %v", r, i, ev["cursor"], ev["seq"])
		}
		events = append(events, ev)
	}
	return events, m["next_cursor"], num(t, "last_seq", m["last_seq"])
}

// eventAt returns the event with the given seq, failing when absent.
func eventAt(t testing.TB, n *harness.Node, id string, seq int64) map[string]any {
	t.Helper()
	evs, _, _ := eventsOf(t, n, id, fmt.Sprintf("cursor=%d&limit=1", seq-1))
	if len(evs) != 1 || num(t, "seq", evs[0]["seq"]) != seq {
		t.Fatalf("event %d of %s: got %v", seq, id, evs)
	}
	return evs[0]
}

// pathEscape percent-encodes a session id as one path segment.
func pathEscape(id string) string {
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// omit drops a field in evBody.
const omit = "\x00omit"

// evBody is a valid append body with some fields replaced by raw JSON
// (or dropped with omit). Keys are written in sorted order.
func evBody(over map[string]string) string {
	fields := map[string]string{
		"type": `"msg"`, "payload": `{"k":"v"}`, "producer_id": `"pv"`, "producer_seq": `1`,
	}
	for k, v := range over {
		fields[k] = v
	}
	keys := make([]string, 0, len(fields))
	for k, v := range fields {
		if v != omit {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%s", k, fields[k])
	}
	b.WriteByte('}')
	return b.String()
}

// rawPost sends a POST over a fresh TCP connection and reads the response
// while the body is still being written, so that a server answering
// before it has read the whole body (413) is heard even when it then
// resets the connection.
func rawPost(t testing.TB, n *harness.Node, path, contentType string, body []byte) resp {
	t.Helper()
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(n.Host, strconv.Itoa(n.Port)), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		path, n.Host, contentType, len(body))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := conn.Write([]byte(head)); err == nil {
			conn.Write(body) // fails once the server stops reading: expected
		}
	}()
	defer func() { conn.Close(); <-done }()
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("POST %s (%d bytes): no response: %v", path, len(body), err)
	}
	out, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return resp{status: res.StatusCode, ctype: res.Header.Get("Content-Type"), header: res.Header,
		body: out, method: "POST", path: path}
}

// rawChunked POSTs a JSON body with Transfer-Encoding: chunked (64 KiB
// chunks) over its own connection, reading the response concurrently.
func rawChunked(t testing.TB, n *harness.Node, path string, body []byte) resp {
	t.Helper()
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(n.Host, strconv.Itoa(n.Port)), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	done := make(chan struct{})
	go func() {
		defer close(done)
		w := bufio.NewWriter(conn)
		fmt.Fprintf(w, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n", path, n.Host)
		for rest := body; len(rest) > 0; {
			c := rest[:min(len(rest), 64<<10)]
			rest = rest[len(c):]
			fmt.Fprintf(w, "%x\r\n", len(c))
			w.Write(c)
			w.WriteString("\r\n")
		}
		w.WriteString("0\r\n\r\n")
		w.Flush() // fails once the server stops reading: expected
	}()
	defer func() { conn.Close(); <-done }()
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("chunked POST %s (%d bytes): no response: %v", path, len(body), err)
	}
	out, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return resp{status: res.StatusCode, ctype: res.Header.Get("Content-Type"), header: res.Header,
		body: out, method: "POST", path: path + " (chunked)"}
}
