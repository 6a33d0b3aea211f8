package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
)

// Node markers (docs/operations.md#one-archive-per-cluster): every node
// writes one object named after itself into the archive when it boots and
// looks for its peers' objects. A cluster whose nodes write to different
// archives (separate local directories, say) cannot read each other's
// archived events; the missing markers show it before a replay fails.
// Each adapter keeps them beside its own layout:
//
//	file      <Dir>/nodes/v1/<name>.json
//	s3        <prefix>/nodes/v1/<name>.json
//	postgres  the starcite_node_markers table (migration 0004)
//
// with <name> = objectName(node name).

// NodeMarker is one node's marker.
type NodeMarker struct {
	Node string `json:"node"`
	Boot int64  `json:"boot"` // identifies the run of the node that wrote it (its start time)
}

func encodeMarker(m NodeMarker) ([]byte, error) {
	if m.Node == "" {
		return nil, errors.New("archive: node marker without a node name")
	}
	return json.Marshal(m)
}

// decodeMarker reads a marker object and checks it is node's (another
// name could hash to the same object name).
func decodeMarker(node string, b []byte) (NodeMarker, error) {
	var m NodeMarker
	if err := json.Unmarshal(b, &m); err != nil {
		return NodeMarker{}, fmt.Errorf("archive: node marker of %q: %w", node, err)
	}
	if m.Node != node {
		return NodeMarker{}, ErrNotFound
	}
	return m, nil
}

func (a *fileAdapter) nodesDir() string { return filepath.Join(a.dir, "nodes", "v1") }

func (a *fileAdapter) PutNodeMarker(ctx context.Context, m NodeMarker) error {
	body, err := encodeMarker(m)
	if err != nil {
		return err
	}
	dir := a.nodesDir()
	if err := ensureDir(dir); err != nil {
		return fmt.Errorf("archive: file put node marker: %w", err)
	}
	name := objectName(m.Node) + ".json"
	tmp, err := writeTemp(dir, name, body)
	if err != nil {
		return fmt.Errorf("archive: file put node marker: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("archive: file put node marker: %w", err)
	}
	return syncDir(dir)
}

func (a *fileAdapter) GetNodeMarker(ctx context.Context, node string) (NodeMarker, error) {
	b, err := os.ReadFile(filepath.Join(a.nodesDir(), objectName(node)+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return NodeMarker{}, ErrNotFound
	}
	if err != nil {
		return NodeMarker{}, fmt.Errorf("archive: file get node marker: %w", err)
	}
	return decodeMarker(node, b)
}

func (a *s3Adapter) markerKey(node string) string {
	return a.prefix + "/nodes/v1/" + objectName(node) + ".json"
}

func (a *s3Adapter) PutNodeMarker(ctx context.Context, m NodeMarker) error {
	body, err := encodeMarker(m)
	if err != nil {
		return err
	}
	key := a.markerKey(m.Node)
	_, err = a.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(a.bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String("application/json"),
	})
	if err != nil {
		return fmt.Errorf("archive: s3 put node marker: put s3://%s/%s: %w", a.bucket, key, err)
	}
	return nil
}

func (a *s3Adapter) GetNodeMarker(ctx context.Context, node string) (NodeMarker, error) {
	body, _, found, err := a.get(ctx, a.markerKey(node))
	if err != nil {
		return NodeMarker{}, fmt.Errorf("archive: s3 get node marker: %w", err)
	}
	if !found {
		return NodeMarker{}, ErrNotFound
	}
	return decodeMarker(node, body)
}

func (a *pgAdapter) PutNodeMarker(ctx context.Context, m NodeMarker) error {
	if m.Node == "" {
		return errors.New("archive: node marker without a node name")
	}
	_, err := a.pool.Exec(ctx, `INSERT INTO starcite_node_markers (node, boot) VALUES ($1, $2)
		ON CONFLICT (node) DO UPDATE SET boot = EXCLUDED.boot, written_at = now()`, m.Node, m.Boot)
	if err != nil {
		return fmt.Errorf("archive: postgres put node marker: %w", err)
	}
	return nil
}

func (a *pgAdapter) GetNodeMarker(ctx context.Context, node string) (NodeMarker, error) {
	m := NodeMarker{Node: node}
	err := a.pool.QueryRow(ctx, "SELECT boot FROM starcite_node_markers WHERE node = $1", node).Scan(&m.Boot)
	if errors.Is(err, pgx.ErrNoRows) {
		return NodeMarker{}, ErrNotFound
	}
	if err != nil {
		return NodeMarker{}, fmt.Errorf("archive: postgres get node marker: %w", err)
	}
	return m, nil
}

func (l *lazyAdapter) PutNodeMarker(ctx context.Context, m NodeMarker) error {
	a, err := l.get()
	if err != nil {
		return err
	}
	return a.PutNodeMarker(ctx, m)
}

func (l *lazyAdapter) GetNodeMarker(ctx context.Context, node string) (NodeMarker, error) {
	a, err := l.get()
	if err != nil {
		return NodeMarker{}, err
	}
	return a.GetNodeMarker(ctx, node)
}
