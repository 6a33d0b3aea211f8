package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"starcite/fsm"
)

// s3Adapter implements the S3 layout and write protocol of
// docs/operations.md#archive-layout:
//
//	<prefix>/events/v1/<name>/<chunk_start>.ndjson
//	<prefix>/sessions/v1/<name>.json
//
// with <name> = objectName(session id). A chunk write is GET (404 = empty),
// merge by seq with the stored lines winning, no PUT when nothing is new,
// else a conditional PUT: If-None-Match: * for a new object, If-Match: <etag>
// for an existing one. A 409 or 412 (or a 404 on If-Match, when the object
// vanished) means another writer got there first: re-read and retry, up to
// the configured number of retries.
type s3Adapter struct {
	client  *s3.Client
	bucket  string
	prefix  string
	retries int
}

// s3Parallelism bounds the concurrent chunk requests of one call.
const s3Parallelism = 8

func openS3(ctx context.Context, cfg Config) (Adapter, error) {
	bucket := strings.TrimSpace(cfg.S3Bucket)
	if bucket == "" {
		return nil, errors.New("archive: s3 adapter needs a bucket (STARCITE_S3_BUCKET)")
	}
	endpoint, err := normEndpoint(cfg.S3Endpoint)
	if err != nil {
		return nil, err
	}
	retries := cfg.S3MaxWriteRetries
	switch {
	case retries < 0:
		return nil, fmt.Errorf("archive: STARCITE_S3_MAX_WRITE_RETRIES must be >= 0, got %d", retries)
	case retries == 0:
		retries = DefaultS3MaxWriteRetries
	}
	keyID, secret := strings.TrimSpace(cfg.S3AccessKeyID), strings.TrimSpace(cfg.S3SecretAccessKey)
	if (keyID == "") != (secret == "") {
		return nil, errors.New("archive: STARCITE_S3_ACCESS_KEY_ID and STARCITE_S3_SECRET_ACCESS_KEY must be set together")
	}
	var opts []func(*config.LoadOptions) error
	if r := strings.TrimSpace(cfg.S3Region); r != "" {
		opts = append(opts, config.WithRegion(r))
	}
	if keyID != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(keyID, secret, strings.TrimSpace(cfg.S3SessionToken))))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("archive: s3 configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1" // custom endpoints rarely care; AWS needs one
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		o.UsePathStyle = cfg.S3PathStyle
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	a := &s3Adapter{client: client, bucket: bucket, prefix: normPrefix(cfg.S3Prefix), retries: retries}
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
		where := endpoint
		if where == "" {
			where = "AWS S3 (region " + awsCfg.Region + ")"
		}
		return nil, fmt.Errorf("archive: s3 bucket %q at %s is not reachable: %w", bucket, where, err)
	}
	return a, nil
}

// normPrefix trims whitespace and slashes; empty means "starcite"
// (docs/operations.md#archive-layout).
func normPrefix(p string) string {
	p = strings.Trim(strings.TrimSpace(p), "/")
	if p == "" {
		return DefaultS3Prefix
	}
	return p
}

// normEndpoint checks that an endpoint is http(s)://host[:port] with an
// empty or "/" path, and returns it without the slash ("" for AWS).
func normEndpoint(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", nil
	}
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("archive: STARCITE_S3_ENDPOINT %q must be http(s)://host[:port] with an empty or / path: %s", raw, why)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad(err.Error())
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("scheme is not http or https")
	case u.Host == "" || u.Hostname() == "":
		return bad("no host")
	case u.User != nil:
		return bad("credentials in the URL")
	case u.Path != "" && u.Path != "/":
		return bad("has a path")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return bad("has a query or fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return bad("bad port")
		}
	}
	return u.Scheme + "://" + u.Host, nil
}

func (a *s3Adapter) Name() string { return "s3" }
func (a *s3Adapter) Close() error { return nil }

func (a *s3Adapter) chunkPrefix(name string) string {
	return a.prefix + "/events/v1/" + name + "/"
}

func (a *s3Adapter) chunkKey(name string, start uint64) string {
	return a.chunkPrefix(name) + chunkFileName(start)
}

func (a *s3Adapter) sessionKey(name string) string {
	return a.prefix + "/sessions/v1/" + name + ".json"
}

// httpStatus returns the HTTP status of a failed S3 call, or 0.
func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// get fetches an object; found is false when the key does not exist (a
// missing bucket is an error).
func (a *s3Adapter) get(ctx context.Context, key string) (body []byte, etag string, found bool, err error) {
	out, err := a.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(a.bucket), Key: aws.String(key)})
	if err != nil {
		var apiErr smithy.APIError
		if httpStatus(err) == http.StatusNotFound && !(errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchBucket") {
			return nil, "", false, nil
		}
		return nil, "", false, fmt.Errorf("get s3://%s/%s: %w", a.bucket, key, err)
	}
	defer out.Body.Close()
	body, err = io.ReadAll(out.Body)
	if err != nil {
		return nil, "", false, fmt.Errorf("get s3://%s/%s: read body: %w", a.bucket, key, err)
	}
	return body, aws.ToString(out.ETag), true, nil
}

func (a *s3Adapter) PutSession(ctx context.Context, s Session) error {
	body, err := encodeSession(s)
	if err != nil {
		return fmt.Errorf("archive: s3 put session: %w", err)
	}
	key := a.sessionKey(objectName(s.ID))
	_, err = a.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(a.bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String("application/json"),
		IfNoneMatch:   aws.String("*"),
	})
	if st := httpStatus(err); err != nil && st != http.StatusConflict && st != http.StatusPreconditionFailed {
		return fmt.Errorf("archive: s3 put session %q: put s3://%s/%s: %w", s.ID, a.bucket, key, err)
	}
	return nil // written, or it already existed: first write wins
}

// UpdateSession replaces the catalogue object with the conditional write
// protocol of chunks, so concurrent updates never roll it back.
func (a *s3Adapter) UpdateSession(ctx context.Context, s Session) error {
	body, err := encodeSession(s)
	if err != nil {
		return fmt.Errorf("archive: s3 update session: %w", err)
	}
	key := a.sessionKey(objectName(s.ID))
	err = a.conditionalPut(ctx, key, "application/json", func(stored []byte, found bool) ([]byte, error) {
		if !found {
			return body, nil
		}
		cur, err := decodeSession(stored)
		switch {
		case err != nil:
			return nil, fmt.Errorf("s3://%s/%s: %w", a.bucket, key, err)
		case cur.ID != s.ID:
			return nil, fmt.Errorf("s3://%s/%s holds session %q", a.bucket, key, cur.ID)
		case cur.UpdatedAt >= s.UpdatedAt:
			return nil, nil
		}
		return body, nil
	})
	if err != nil {
		return fmt.Errorf("archive: s3 update session %q: %w", s.ID, err)
	}
	return nil
}

func (a *s3Adapter) GetSession(ctx context.Context, id string) (Session, error) {
	key := a.sessionKey(objectName(id))
	body, _, found, err := a.get(ctx, key)
	if err != nil {
		return Session{}, fmt.Errorf("archive: s3 get session %q: %w", id, err)
	}
	if !found {
		return Session{}, ErrNotFound
	}
	s, err := decodeSession(body)
	if err != nil {
		return Session{}, fmt.Errorf("archive: s3 get session %q: s3://%s/%s: %w", id, a.bucket, key, err)
	}
	if s.ID != id {
		return Session{}, ErrNotFound // another id with the same hashed name
	}
	return s, nil
}

func (a *s3Adapter) WriteEvents(ctx context.Context, sessionID string, events []fsm.Event) error {
	if err := checkEvents(sessionID, events); err != nil {
		return err
	}
	name := objectName(sessionID)
	runs := splitChunks(events)
	err := parallel(len(runs), s3Parallelism, func(i int) error {
		return a.writeChunk(ctx, a.chunkKey(name, runs[i].start), runs[i].events)
	})
	if err != nil {
		return fmt.Errorf("archive: s3 write session %q: %w", sessionID, err)
	}
	return nil
}

func (a *s3Adapter) writeChunk(ctx context.Context, key string, events []fsm.Event) error {
	return a.conditionalPut(ctx, key, "application/x-ndjson", func(stored []byte, _ bool) ([]byte, error) {
		lines, err := parseChunk(stored)
		if err != nil {
			return nil, fmt.Errorf("s3://%s/%s: %w", a.bucket, key, err)
		}
		body, changed := mergeChunk(lines, events)
		if !changed {
			return nil, nil
		}
		return body, nil
	})
}

// conditionalPut is the write protocol of every object that changes: read
// the object, let next decide the new body from what is stored (nil: leave
// it), and PUT it only if the object is still what was read (If-Match its
// ETag, or If-None-Match: * when absent). A lost race is re-read and
// decided again, up to the configured number of retries.
func (a *s3Adapter) conditionalPut(ctx context.Context, key, contentType string,
	next func(stored []byte, found bool) ([]byte, error)) error {
	for attempt := 0; ; attempt++ {
		stored, etag, found, err := a.get(ctx, key)
		if err != nil {
			return err
		}
		body, err := next(stored, found)
		if err != nil || body == nil {
			return err
		}
		in := &s3.PutObjectInput{
			Bucket:        aws.String(a.bucket),
			Key:           aws.String(key),
			Body:          bytes.NewReader(body),
			ContentLength: aws.Int64(int64(len(body))),
			ContentType:   aws.String(contentType),
		}
		if found {
			in.IfMatch = aws.String(etag)
		} else {
			in.IfNoneMatch = aws.String("*")
		}
		_, err = a.client.PutObject(ctx, in)
		if err == nil {
			return nil
		}
		st := httpStatus(err)
		lost := st == http.StatusConflict || st == http.StatusPreconditionFailed ||
			(found && st == http.StatusNotFound)
		if !lost {
			return fmt.Errorf("put s3://%s/%s: %w", a.bucket, key, err)
		}
		if attempt >= a.retries {
			return fmt.Errorf("put s3://%s/%s: conditional write lost %d times, giving up: %w",
				a.bucket, key, attempt+1, err)
		}
	}
}

func (a *s3Adapter) ReadEvents(ctx context.Context, sessionID, tenantID string, from, to uint64) ([]fsm.Event, error) {
	from, to, ok := normRange(from, to)
	if !ok || sessionID == "" {
		return nil, nil
	}
	name := objectName(sessionID)
	starts, err := a.chunkStarts(ctx, name, from, to)
	if err != nil {
		return nil, fmt.Errorf("archive: s3 read session %q: %w", sessionID, err)
	}
	chunks := make([][]storedLine, len(starts))
	err = parallel(len(starts), s3Parallelism, func(i int) error {
		key := a.chunkKey(name, starts[i])
		body, _, _, err := a.get(ctx, key)
		if err != nil {
			return err
		}
		if chunks[i], err = parseChunk(body); err != nil {
			return fmt.Errorf("s3://%s/%s: %w", a.bucket, key, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("archive: s3 read session %q: %w", sessionID, err)
	}
	var out []fsm.Event
	for i, lines := range chunks {
		if out, err = renderLines(out, lines, tenantID, from, to); err != nil {
			return nil, fmt.Errorf("archive: s3 read session %q chunk %d: %w", sessionID, starts[i], err)
		}
	}
	return out, nil
}

// chunkStarts lists the chunk starts that may hold seqs in [from, to]:
// computed for narrow ranges, listed from the bucket for wide ones.
func (a *s3Adapter) chunkStarts(ctx context.Context, name string, from, to uint64) ([]uint64, error) {
	first, last := chunkStart(from), chunkStart(to)
	if (last-first)/ChunkSize < maxProbedChunks {
		var starts []uint64
		for c := first; ; c += ChunkSize {
			starts = append(starts, c)
			if c >= last {
				return starts, nil
			}
		}
	}
	prefix := a.chunkPrefix(name)
	var starts []uint64
	p := s3.NewListObjectsV2Paginator(a.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(a.bucket), Prefix: aws.String(prefix), MaxKeys: aws.Int32(1000),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s: %w", a.bucket, prefix, err)
		}
		for _, obj := range page.Contents {
			if c, ok := chunkName(strings.TrimPrefix(aws.ToString(obj.Key), prefix), first, last); ok {
				starts = append(starts, c)
			}
		}
	}
	slices.Sort(starts)
	return starts, nil
}
