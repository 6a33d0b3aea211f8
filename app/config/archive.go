package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"starcite/archive"
	"starcite/edge"
)

// ArchiveConfig is the archive part of the configuration
// (docs/operations.md#archive-and-memory-variables, docs/decisions.md#d17,
// docs/decisions.md#d18).
type ArchiveConfig struct {
	Store        archive.Config
	FlushEvery   time.Duration // STARCITE_ARCHIVE_FLUSH_INTERVAL_MS
	ReadCacheMax int64         // STARCITE_ARCHIVE_READ_CACHE_MAX_SIZE
}

func (c *Config) resolveArchive(e *Env) error {
	a := &c.Archive
	a.FlushEvery = e.millis("STARCITE_ARCHIVE_FLUSH_INTERVAL_MS", 5*time.Second)
	a.ReadCacheMax = e.size("STARCITE_ARCHIVE_READ_CACHE_MAX_SIZE", 2<<30)
	s := &a.Store
	s.Adapter = strings.ToLower(e.Str("STARCITE_ARCHIVE_ADAPTER", "file"))
	switch s.Adapter {
	case "file":
		dir, set := e.raw("STARCITE_ARCHIVE_DIR")
		switch {
		case set:
			s.Dir = filepath.Clean(dir)
		case c.Clustered():
			// Each node's own default directory would split the archive:
			// a group's chunks land wherever its leader ran, and a replay
			// on any other node cannot read them (docs/operations.md#one-archive-per-cluster).
			return fmt.Errorf("STARCITE_ARCHIVE_DIR: required in a cluster with STARCITE_ARCHIVE_ADAPTER=file; it must be one directory shared by every node (or use STARCITE_ARCHIVE_ADAPTER=s3 or postgres)")
		default:
			s.Dir = filepath.Join(c.DataDir, "archive")
		}
	case "s3":
		s.S3Bucket = e.Str("STARCITE_S3_BUCKET", "")
		if s.S3Bucket == "" {
			return fmt.Errorf("STARCITE_S3_BUCKET: required when STARCITE_ARCHIVE_ADAPTER=s3")
		}
		s.S3Prefix = e.Str("STARCITE_S3_PREFIX", archive.DefaultS3Prefix)
		s.S3Region = e.Str("STARCITE_S3_REGION", "")
		s.S3Endpoint = e.Str("STARCITE_S3_ENDPOINT", "")
		if s.S3Endpoint != "" {
			u, err := url.Parse(s.S3Endpoint)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
				return fmt.Errorf("STARCITE_S3_ENDPOINT: invalid value %q (expected http(s)://host[:port])", edge.RedactURL(s.S3Endpoint))
			}
		}
		s.S3AccessKeyID = e.Str("STARCITE_S3_ACCESS_KEY_ID", "")
		s.S3SecretAccessKey = e.Str("STARCITE_S3_SECRET_ACCESS_KEY", "")
		s.S3SessionToken = e.Str("STARCITE_S3_SESSION_TOKEN", "")
		if (s.S3AccessKeyID == "") != (s.S3SecretAccessKey == "") {
			return fmt.Errorf("STARCITE_S3_ACCESS_KEY_ID: set together with STARCITE_S3_SECRET_ACCESS_KEY, or neither (SDK default chain)")
		}
		s.S3PathStyle = e.boolean("STARCITE_S3_PATH_STYLE", true)
		s.S3MaxWriteRetries = e.nonNegInt("STARCITE_S3_MAX_WRITE_RETRIES", archive.DefaultS3MaxWriteRetries)
	case "postgres":
		s.PostgresURL = e.Str("DATABASE_URL", e.Str("STARCITE_POSTGRES_URL", ""))
		if s.PostgresURL == "" {
			return fmt.Errorf("DATABASE_URL: required when STARCITE_ARCHIVE_ADAPTER=postgres (or STARCITE_POSTGRES_URL)")
		}
		if u, err := url.Parse(s.PostgresURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return fmt.Errorf("DATABASE_URL: invalid value (expected postgres://user:password@host:port/db)")
		}
		s.PostgresPoolSize = e.posInt("DB_POOL_SIZE", archive.DefaultPostgresPoolSize)
		s.Migrate = e.boolean("MIGRATE_ON_BOOT", true)
	default:
		return fmt.Errorf("STARCITE_ARCHIVE_ADAPTER: invalid value %q (expected file, s3 or postgres)", s.Adapter)
	}
	return e.err
}
