package archive

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// testS3Client talks to the test S3 server named by the environment.
func testS3Client(t testing.TB) (client *s3.Client, endpoint, keyID, secret string) {
	env := requireServiceEnv(t, "STARCITE_TEST_S3_ENDPOINT", "STARCITE_TEST_S3_ACCESS_KEY_ID", "STARCITE_TEST_S3_SECRET_ACCESS_KEY")
	endpoint, keyID, secret = env[0], env[1], env[2]
	client = s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(keyID, secret, ""),
	})
	return client, endpoint, keyID, secret
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// testBucket creates a bucket with a unique name, emptied and removed at
// the end of the test.
func testBucket(t testing.TB, client *s3.Client) string {
	t.Helper()
	ctx := context.Background()
	bucket := "starcite-test-" + randomHex(8)
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create test bucket %s: %v", bucket, err)
	}
	t.Cleanup(func() {
		p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Logf("cleanup: list %s: %v", bucket, err)
				return
			}
			for _, o := range page.Contents {
				if _, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: o.Key}); err != nil {
					t.Logf("cleanup: delete %s: %v", aws.ToString(o.Key), err)
				}
			}
		}
		if _, err := client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil {
			t.Logf("cleanup: delete bucket %s: %v", bucket, err)
		}
	})
	return bucket
}

func openS3Adapter(t testing.TB, prefix string, retries int) (Adapter, *s3.Client, string) {
	t.Helper()
	client, endpoint, keyID, secret := testS3Client(t)
	bucket := testBucket(t, client)
	a, err := Open(context.Background(), Config{
		Adapter: "s3", S3Bucket: bucket, S3Prefix: prefix, S3Endpoint: endpoint,
		S3AccessKeyID: keyID, S3SecretAccessKey: secret, S3PathStyle: true, S3MaxWriteRetries: retries,
	})
	if err != nil {
		t.Fatalf("Open(s3): %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a, client, bucket
}

func s3Harness() harness {
	return harness{
		name: "s3",
		open: func(t testing.TB) Adapter {
			// Generous retries: the suite races four writers on one chunk.
			a, _, _ := openS3Adapter(t, " /test/prefix/ ", 32)
			return a
		},
		putRaw: func(t testing.TB, a Adapter, key string, body []byte) {
			t.Helper()
			sa := a.(*s3Adapter)
			if _, err := sa.client.PutObject(context.Background(), &s3.PutObjectInput{
				Bucket: aws.String(sa.bucket), Key: aws.String(sa.prefix + "/" + key), Body: bytes.NewReader(body),
			}); err != nil {
				t.Fatalf("put raw %s: %v", key, err)
			}
		},
	}
}

func TestS3Layout(t *testing.T) {
	a, client, bucket := openS3Adapter(t, "", 0)
	if sa := a.(*s3Adapter); sa.prefix != "starcite" || sa.retries != DefaultS3MaxWriteRetries {
		t.Fatalf("defaults: prefix %q retries %d", sa.prefix, sa.retries)
	}
	ctx := context.Background()
	evs := testEvents(1, 300, "a")
	mustWrite(t, a, "sess-1", evs)
	if err := a.PutSession(ctx, Session{ID: "sess-1", TenantID: "acme", CreatedAt: baseTime}); err != nil {
		t.Fatal(err)
	}
	get := func(key string) (string, string) {
		out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		defer out.Body.Close()
		b, _ := io.ReadAll(out.Body)
		return string(b), aws.ToString(out.ContentType)
	}
	body, ct := get("starcite/events/v1/c2Vzcy0x/1.ndjson")
	lines := strings.Split(body, "\n")
	if ct != "application/x-ndjson" || len(lines) != 256 || lines[0] != string(evs[0].JSON) || strings.HasSuffix(body, "\n") {
		t.Fatalf("chunk 1: content type %q, %d lines", ct, len(lines))
	}
	body, _ = get("starcite/events/v1/c2Vzcy0x/257.ndjson")
	if n := len(strings.Split(body, "\n")); n != 44 {
		t.Fatalf("chunk 257: %d lines", n)
	}
	body, ct = get("starcite/sessions/v1/c2Vzcy0x.json")
	if ct != "application/json" || !strings.HasPrefix(body, `{"id":"sess-1",`) {
		t.Fatalf("session object: %q %s", ct, body)
	}
}

// TestS3ConditionalProtocol checks the headers of the write protocol and
// the retry bound against a stub server that loses every race.
func TestS3ConditionalProtocol(t *testing.T) {
	var (
		mu           sync.Mutex
		puts         int
		ifNoneMatch  []string
		ifMatch      []string
		contentTypes []string
		haveObject   bool
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodHead:
			w.WriteHeader(http.StatusOK)
		case r.Method == http.MethodGet && haveObject:
			w.Header().Set("ETag", `"etag-1"`)
			w.Write([]byte(testEvent(1, "stored", 0).JSON))
		case r.Method == http.MethodGet:
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>no</Message></Error>`))
		case r.Method == http.MethodPut:
			puts++
			ifNoneMatch = append(ifNoneMatch, r.Header.Get("If-None-Match"))
			ifMatch = append(ifMatch, r.Header.Get("If-Match"))
			contentTypes = append(contentTypes, r.Header.Get("Content-Type"))
			w.WriteHeader(http.StatusPreconditionFailed)
			w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code><Message>lost</Message></Error>`))
		}
	}))
	defer srv.Close()
	a, err := Open(context.Background(), Config{Adapter: "s3", S3Bucket: "b", S3Endpoint: srv.URL,
		S3AccessKeyID: "testkey", S3SecretAccessKey: "testsecret", S3PathStyle: true, S3MaxWriteRetries: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx := context.Background()

	err = a.WriteEvents(ctx, "s", testEvents(1, 3, "x"))
	if err == nil || !strings.Contains(err.Error(), "lost 3 times") {
		t.Fatalf("WriteEvents against a server that always says 412: %v", err)
	}
	mu.Lock()
	defer mu.Unlock() // the checks below read what the handler wrote
	if puts != 3 || ifNoneMatch[0] != "*" || ifMatch[0] != "" || contentTypes[0] != "application/x-ndjson" {
		t.Fatalf("puts %d, If-None-Match %q, If-Match %q, Content-Type %q", puts, ifNoneMatch, ifMatch, contentTypes)
	}

	haveObject, puts, ifNoneMatch, ifMatch = true, 0, nil, nil
	mu.Unlock()
	err = a.WriteEvents(ctx, "s", testEvents(1, 3, "x"))
	mu.Lock()
	if err == nil {
		t.Fatal("WriteEvents succeeded against a server that always says 412")
	}
	if puts != 3 || ifMatch[0] != `"etag-1"` || ifNoneMatch[0] != "" {
		t.Fatalf("existing object: puts %d, If-Match %q, If-None-Match %q", puts, ifMatch, ifNoneMatch)
	}
	// Nothing new: no PUT at all.
	puts = 0
	mu.Unlock()
	err = a.WriteEvents(ctx, "s", testEvents(1, 1, "x"))
	mu.Lock()
	if err != nil || puts != 0 {
		t.Fatalf("write of a stored seq: err %v, %d puts", err, puts)
	}
	// A catalogue write that gets 412 already exists: success.
	mu.Unlock()
	err = a.PutSession(ctx, Session{ID: "s", TenantID: "t", CreatedAt: 1})
	mu.Lock()
	if err != nil {
		t.Fatalf("PutSession on 412: %v", err)
	}
	if ifNoneMatch[len(ifNoneMatch)-1] != "*" || contentTypes[len(contentTypes)-1] != "application/json" {
		t.Fatalf("PutSession headers: If-None-Match %q, Content-Type %q", ifNoneMatch, contentTypes)
	}
}

func TestS3RealConditionalWrites(t *testing.T) {
	// The server itself must reject a stale write (what the protocol relies on).
	client, _, _, _ := testS3Client(t)
	bucket := testBucket(t, client)
	ctx := context.Background()
	put := func(body string, in func(*s3.PutObjectInput)) error {
		p := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("k"), Body: strings.NewReader(body)}
		in(p)
		_, err := client.PutObject(ctx, p)
		return err
	}
	if err := put("a", func(p *s3.PutObjectInput) { p.IfNoneMatch = aws.String("*") }); err != nil {
		t.Fatal(err)
	}
	if err := put("b", func(p *s3.PutObjectInput) { p.IfNoneMatch = aws.String("*") }); httpStatus(err) != http.StatusPreconditionFailed {
		t.Fatalf("second create: %v", err)
	}
	if err := put("c", func(p *s3.PutObjectInput) { p.IfMatch = aws.String(`"stale"`) }); httpStatus(err) != http.StatusPreconditionFailed {
		t.Fatalf("stale If-Match: %v", err)
	}
	_, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("missing")})
	var nsk *types.NoSuchKey
	if httpStatus(err) != http.StatusNotFound || !errors.As(err, &nsk) {
		t.Fatalf("get missing: %v", err)
	}
}

// TestS3MissingBucket: a bucket that disappears is an error, never an
// empty archive.
func TestS3MissingBucket(t *testing.T) {
	a, client, bucket := openS3Adapter(t, "", 0)
	ctx := context.Background()
	if _, err := client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ReadEvents(ctx, "s", testTenant, 1, 10); err == nil {
		t.Fatal("ReadEvents on a missing bucket succeeded")
	}
	if _, err := a.GetSession(ctx, "s"); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("GetSession on a missing bucket: %v", err)
	}
	if err := a.WriteEvents(ctx, "s", testEvents(1, 1, "x")); err == nil {
		t.Fatal("WriteEvents on a missing bucket succeeded")
	}
	// Recreate it so that the cleanup finds it.
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
}
