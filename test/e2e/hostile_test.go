package e2e

// Hostile clients against the real binary: oversized and malformed bodies
// in bulk, numbers beyond 2^63, header floods, slow clients (slowloris, a
// body announced but never sent, a connection that never speaks) and
// connection floods against the per-node cap (STARCITE_MAX_CONNECTIONS).
// None may crash or hang the node, slow clients must be cut off by the
// server's timeouts without holding up anyone else, and afterwards the node
// holds no leftover connection or tail socket and its memory has not run
// away. The error rows and single hostile bodies of
// docs/api.md#error-catalogue are in contract_*_test.go; this file is about
// volume and time.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"starcite/test/harness"
)

// connCap is STARCITE_MAX_CONNECTIONS of the node under attack.
const connCap = 64

// hostileNode is the node every hostile test shares, and the producer
// sequence of its liveness appends.
type hostileNode struct {
	*harness.Node
	mu   sync.Mutex
	pseq int64
}

// serving fails the test unless the node is alive, answers /health/live
// and takes an append.
func (h *hostileNode) serving(t *testing.T) {
	t.Helper()
	if !h.Running() {
		t.Fatal("the node process exited")
	}
	if st, b, err := h.Probe("/health/live"); err != nil || st != 200 || string(b) != healthLiveBody {
		t.Fatalf("/health/live: %d %s %v", st, b, err)
	}
	h.mu.Lock()
	h.pseq++
	seq := h.pseq
	h.mu.Unlock()
	body := evBody(map[string]string{"producer_id": `"live"`, "producer_seq": fmt.Sprint(seq)})
	// Connections a flood left in the kernel's accept queue are accepted
	// (and counted) after their clients have gone, so the node may still
	// be over its cap for a moment: that refusal writes nothing, and the
	// same append is sent again once the count is back down.
	for deadline := time.Now().Add(60 * time.Second); ; {
		r := appendReq(t, h.Node, "hostile", body)
		if r.status == 201 {
			return
		}
		if r.status != 503 || !bytes.Contains(r.body, []byte(`"too_many_connections"`)) || time.Now().After(deadline) {
			t.Fatalf("liveness append: %s", r)
		}
		h.settle(t, 8)
	}
}

// rssKiB is the node's resident set size, from /proc.
func (h *hostileNode) rssKiB(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", h.Pid()))
	if err != nil {
		t.Skipf("SKIPPING memory check: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kib
		}
	}
	t.Fatal("no VmRSS in /proc/<pid>/status")
	return 0
}

// settle waits until the node's open connections, as it counts them,
// are back at most at want (connections close asynchronously).
func (h *hostileNode) settle(t *testing.T, want float64) {
	t.Helper()
	var last float64
	h.WaitFor(60*time.Second, fmt.Sprintf("at most %v open connections", want), func() bool {
		last = h.metric("starcite_http_connections")
		return last <= want
	})
}

// metric reads a sample over a connection of its own (the harness client
// may be the one over the cap).
func (h *hostileNode) metric(sample string) float64 {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Get(h.OpsURL() + "/metrics")
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			v, _ := strconv.ParseFloat(rest, 64)
			return v
		}
	}
	return 0
}

func (h *hostileNode) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort(h.Host, strconv.Itoa(h.Port)), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// exchange writes raw bytes on a fresh connection while reading the
// answer: the status of the response, or 0 and the error when the server
// closed the connection without one. Safe from any goroutine.
func (h *hostileNode) exchange(t *testing.T, raw []byte) (int, []byte, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort(h.Host, strconv.Itoa(h.Port)), 10*time.Second)
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	go c.Write(raw) // fails once the server stops reading: expected
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, body, nil
}

func TestHostileClients(t *testing.T) {
	h := &hostileNode{Node: harness.StartNode(t, harness.Options{Env: map[string]string{
		"STARCITE_MAX_CONNECTIONS": strconv.Itoa(connCap),
	}})}
	createOK(t, h.Node, `{"id":"hostile"}`)
	h.serving(t)
	rssStart := h.rssKiB(t)

	// Bodies: volume, not variety (contract_*_test.go has the variety).
	t.Run("oversized bodies in bulk", func(t *testing.T) {
		before := h.rssKiB(t)
		big := bytes.Repeat([]byte("x"), maxBody+1)
		for i := 0; i < 10; i++ {
			wantErr(t, rawPost(t, h.Node, "/v1/sessions/hostile/append", "application/json", big), 413, "payload_too_large", anyMessage)
		}
		// Chunked bodies have no length to refuse up front: the node reads
		// up to the limit, every time, and must give the memory back.
		body := append([]byte(`{"type":"msg","payload":{"s":"`), bytes.Repeat([]byte("y"), maxBody)...)
		for i := 0; i < 30; i++ {
			wantErr(t, rawChunked(t, h.Node, "/v1/sessions/hostile/append", body), 413, "payload_too_large", anyMessage)
		}
		// A length of a terabyte is refused without reading a byte of it.
		st, b, err := h.exchange(t, []byte("POST /v1/sessions/hostile/append HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
			"Content-Length: 1099511627776\r\n\r\n{"))
		if err != nil || st != 413 {
			t.Fatalf("a 1 TB Content-Length: %d %s %v", st, b, err)
		}
		h.serving(t)
		if grown := h.rssKiB(t) - before; grown > 192<<10 {
			t.Errorf("RSS grew by %d MiB over 40 oversized bodies (320 MB sent)", grown>>10)
		}
	})

	t.Run("nesting, invalid UTF-8 and numbers beyond 2^63", func(t *testing.T) {
		deep := strings.Repeat("[", 200000) + strings.Repeat("]", 200000)
		for _, c := range []struct{ name, body string }{
			{"200000 nested arrays", `{"type":"msg","payload":{"a":` + deep + `},"producer_id":"p","producer_seq":1}`},
			{"invalid UTF-8 in producer_id", "{\"type\":\"msg\",\"payload\":{},\"producer_id\":\"\xff\",\"producer_seq\":1}"},
			{"producer_seq 2^63", `{"type":"msg","payload":{},"producer_id":"p","producer_seq":9223372036854775808}`},
			{"producer_seq 2^64 as a string", `{"type":"msg","payload":{},"producer_id":"p","producer_seq":"18446744073709551616"}`},
			{"expected_seq 2^64", `{"type":"msg","payload":{},"producer_id":"p","producer_seq":1,"expected_seq":18446744073709551616}`},
			{"refs.step 2^63", `{"type":"msg","payload":{},"producer_id":"p","producer_seq":1,"refs":{"step":9223372036854775808}}`},
		} {
			r := appendReq(t, h.Node, "hostile", c.body)
			if r.status != 400 {
				t.Errorf("%s: %s, want 400", c.name, r)
			}
		}
		for _, q := range []string{"cursor=9223372036854775808", "cursor=18446744073709551616", "cursor=-9223372036854775809"} {
			wantErr(t, do(t, h.Node, "GET", "/v1/sessions/hostile/events?"+q, nil, nil), 400, "invalid_cursor", msgInvalidCursor)
		}
		// Inside a payload a big integer is data: stored and served with
		// every digit, not rounded through a float.
		createOK(t, h.Node, `{"id":"bignum"}`)
		const digits = "123456789012345678901234567890123456789"
		wantAppend(t, appendReq(t, h.Node, "bignum", `{"type":"msg","payload":{"n":`+digits+`,"neg":-`+digits+`},"producer_id":"p","producer_seq":1}`), 1, 1, false)
		r := do(t, h.Node, "GET", "/v1/sessions/bignum/events", nil, nil)
		if !bytes.Contains(r.body, []byte(`"n":`+digits)) || !bytes.Contains(r.body, []byte(`"neg":-`+digits)) {
			t.Errorf("a %d-digit integer did not come back as sent: %s", len(digits), r.body)
		}
		tail := h.Tail("bignum", 0, 1)
		evs, err := tail.Collect(1, 1, 30*time.Second)
		if err != nil || !bytes.Contains(evs[0].Raw, []byte(`"n":`+digits)) {
			t.Errorf("tail: %v %v", evs, err)
		}
		tail.Conn.Close()
		h.serving(t)
	})

	t.Run("header floods", func(t *testing.T) {
		before := h.rssKiB(t)
		var many bytes.Buffer
		many.WriteString("GET /v1/sessions/hostile HTTP/1.1\r\nHost: x\r\n")
		for i := 0; i < 10000; i++ {
			fmt.Fprintf(&many, "X-Flood-%d: %d\r\n", i, i)
		}
		many.WriteString("\r\n")
		huge := "GET /v1/sessions/hostile HTTP/1.1\r\nHost: x\r\nX-Huge: " + strings.Repeat("h", 1<<20) + "\r\n\r\n"
		longLine := "GET /v1/sessions/" + strings.Repeat("a", 1<<20) + " HTTP/1.1\r\nHost: x\r\n\r\n"
		badUTF8 := "GET /v1/sessions/hostile HTTP/1.1\r\nHost: x\r\nX-Bytes: \xff\xfe\xc0\xaf\r\n\r\n"
		var wg sync.WaitGroup
		for i := 0; i < 40; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, raw := range []string{many.String(), huge, longLine} {
					st, _, err := h.exchange(t, []byte(raw))
					if err == nil && (st < 400 || st > 499) {
						t.Errorf("a %d-byte request head was answered %d, want a 4xx", len(raw), st)
					}
				}
			}()
		}
		wg.Wait()
		if st, _, err := h.exchange(t, []byte(badUTF8)); err != nil || (st != 200 && (st < 400 || st > 499)) {
			t.Errorf("invalid UTF-8 in a header value: %d %v", st, err)
		}
		h.serving(t)
		if grown := h.rssKiB(t) - before; grown > 128<<10 {
			t.Errorf("RSS grew by %d MiB over 120 oversized request heads", grown>>10)
		}
	})

	// Slow clients: each is cut off by the server's read timeout (30 s)
	// while everybody else is served. They run side by side.
	t.Run("slow clients", func(t *testing.T) {
		type slow struct {
			name  string
			start string // sent at once
			drip  string // then one byte every 200 ms
		}
		cases := []slow{
			{"slowloris: headers byte by byte", "POST /v1/sessions/hostile/append HTTP/1.1\r\nHost: x\r\n", strings.Repeat("X-Slow: a\r\n", 1000)},
			{"a body announced but never sent", "POST /v1/sessions/hostile/append HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\"", ""},
			{"a body sent byte by byte", "POST /v1/sessions/hostile/append HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n", strings.Repeat(" ", 10000)},
			{"a connection that never speaks", "", ""},
		}
		// Twenty slowloris connections besides: well under the cap.
		for i := 0; i < 20; i++ {
			cases = append(cases, slow{fmt.Sprintf("slowloris #%d", i), "GET /health/live HTTP/1.1\r\n", strings.Repeat("X-S: 1\r\n", 1000)})
		}
		cut := make(chan string, len(cases))
		for _, c := range cases {
			conn := h.dial(t)
			defer conn.Close()
			go func() {
				conn.Write([]byte(c.start))
				go func() {
					for i := 0; i < len(c.drip); i++ {
						time.Sleep(200 * time.Millisecond)
						if _, err := conn.Write([]byte{c.drip[i]}); err != nil {
							return
						}
					}
				}()
				// Whatever the server says (a 4xx or nothing), it must end
				// the connection.
				conn.SetReadDeadline(time.Now().Add(3 * time.Minute))
				_, err := io.Copy(io.Discard, conn)
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					cut <- c.name + ": still open after 3 minutes"
					return
				}
				cut <- ""
			}()
		}
		// Meanwhile everybody else is served.
		deadline := time.After(3 * time.Minute)
		for left := len(cases); left > 0; {
			select {
			case msg := <-cut:
				left--
				if msg != "" {
					t.Error(msg)
				}
			case <-time.After(time.Second):
				h.serving(t)
			case <-deadline:
				t.Fatalf("%d slow connections still open", left)
			}
		}
		h.serving(t)
	})

	t.Run("connection flood", func(t *testing.T) {
		// Hold connections with a request answered on each (keep-alive):
		// beyond the cap a request gets 503 too_many_connections and its
		// connection is closed; probes still answer.
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		refused := 0
		var refusal []byte
		for i := 0; i < connCap+20; i++ {
			c := h.dial(t)
			c.SetDeadline(time.Now().Add(30 * time.Second))
			fmt.Fprintf(c, "GET /v1/sessions/hostile HTTP/1.1\r\nHost: x\r\n\r\n")
			br := bufio.NewReader(c)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			switch res.StatusCode {
			case 200:
				held = append(held, c)
			case 503:
				refused++
				refusal = body
				if !res.Close {
					t.Errorf("a refused connection was kept open")
				}
				c.Close()
			default:
				t.Fatalf("connection %d: %d %s", i, res.StatusCode, body)
			}
		}
		if refused == 0 {
			t.Fatalf("%d connections held and none refused (cap %d)", len(held), connCap)
		}
		wantErr(t, resp{status: 503, ctype: jsonCT, body: refusal}, 503, "too_many_connections", anyMessage)
		// Probes are on the ops listener, which the cap does not count.
		if st, b, err := h.Probe("/health/live"); err != nil || st != 200 {
			t.Errorf("liveness over the cap: %d %s %v", st, b, err)
		}
		if v := h.metric("starcite_http_refused_total"); v < float64(refused) {
			t.Errorf("starcite_http_refused_total %v, %d refused", v, refused)
		}
		t.Logf("%d connections held, %d refused with %s", len(held), refused, refusal)
		for _, c := range held {
			c.Close()
		}
		held = nil
		h.settle(t, 8)
		h.serving(t)

		// Tail sockets count too; closing them leaves none behind.
		var tails []*harness.TailClient
		for i := 0; i < connCap; i++ {
			tc, st, body, err := h.DialTail("hostile", "cursor=0", nil)
			if err != nil {
				if st != 503 || !bytes.Contains(body, []byte("too_many_connections")) {
					t.Fatalf("tail %d: %d %s %v", i, st, body, err)
				}
				break
			}
			tails = append(tails, tc)
		}
		if len(tails) == connCap {
			t.Errorf("%d tails open on a node capped at %d connections", len(tails), connCap)
		}
		if st, _, err := h.exchange(t, []byte("GET /v1/sessions HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil || st != 503 {
			t.Errorf("a request with %d tails open: %d %v, want 503", len(tails), st, err)
		}
		for _, tc := range tails {
			tc.Conn.Close()
		}
		h.WaitFor(60*time.Second, "no tail socket left", func() bool { return h.metric("starcite_tail_sockets") == 0 })
		h.settle(t, 8)

		// Silent connections far beyond the cap: refused at accept past
		// twice the cap, the rest sit until the read timeout; none of it
		// outlives the clients.
		var silent []net.Conn
		for i := 0; i < 4*connCap; i++ {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(h.Host, strconv.Itoa(h.Port)), 10*time.Second)
			if err != nil {
				break
			}
			silent = append(silent, c)
		}
		for _, c := range silent {
			c.Close()
		}
		h.settle(t, 8)
		h.serving(t)
	})

	// Nothing leaked, nothing ran away.
	h.settle(t, 8)
	if v := h.metric("starcite_tail_sockets"); v != 0 {
		t.Errorf("%v tail sockets left open", v)
	}
	rssEnd := h.rssKiB(t)
	t.Logf("node RSS: %d MiB before the battery, %d MiB after", rssStart>>10, rssEnd>>10)
	if grown := rssEnd - rssStart; grown > 256<<10 {
		t.Errorf("RSS grew by %d MiB over the whole battery", grown>>10)
	}
	if log := h.Log(); strings.Contains(log, "panic") {
		t.Errorf("the node logged a panic")
	}
	h.serving(t)
}
