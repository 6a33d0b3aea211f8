package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"starcite/archive"
	"starcite/fsm"
)

// Pending returns the unarchived events of a local group, for the
// archiver: up to maxSessions sessions after the id `after`, up to
// maxEvents oldest events each.
func (p *Plane) Pending(group int, after string, maxSessions, maxEvents int) ([]fsm.PendingSession, error) {
	v, err := p.raft.StaleRead(group, func(st *fsm.State) any { return st.Pending(after, maxSessions, maxEvents) })
	if err != nil {
		return nil, fmt.Errorf("pending events of group %d: %w", group, err)
	}
	return v.([]fsm.PendingSession), nil
}

// AckArchived commits that the archive holds the marked events, so every
// replica evicts them from its hot tier. It is proposed through the local
// replica (the archiver works on the groups this node leads), drained or
// not: peers refuse it as a forwarded command (fsm.Forwardable).
func (p *Plane) AckArchived(ctx context.Context, group int, marks []fsm.ArchiveMark) error {
	if !p.raft.IsLocal(group) {
		return fmt.Errorf("%w: ack_archived for group %d, which has no replica here", ErrUnavailable, group)
	}
	res, err := p.proposeLocal(ctx, group, fsm.EncodeAckArchived(marks))
	if err != nil {
		return err
	}
	if fsm.Status(res.Value) != fsm.StatusOK {
		return fmt.Errorf("%w: ack_archived: %v", ErrInternal, fsm.Status(res.Value))
	}
	return nil
}

// catalogueWrites bounds the background catalogue writes after creates; a
// create beyond it skips the write (the archiver writes the entry before
// the session's first events anyway).
const catalogueWrites = 64

// catalogue writes a session's header to the archive catalogue in the
// background, after a create (first write wins) or a header change (a
// later updated_at wins); failures are logged and otherwise ignored
// (docs/api.md#create): the archiver writes the header it reads from the
// replica with the session's events.
func (p *Plane) catalogue(s fsm.SessionInfo, change bool) {
	if p.cfg.Archive == nil {
		return
	}
	select {
	case p.catalogueSem <- struct{}{}:
	default:
		return
	}
	go func() {
		defer func() { <-p.catalogueSem }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		write := p.cfg.Archive.PutSession
		if change {
			write = p.cfg.Archive.UpdateSession
		}
		if err := write(ctx, CatalogueEntry(s)); err != nil {
			slog.Warn("archive catalogue write failed; the archiver retries it with the session's next events",
				"session", s.ID, "err", err)
		}
	}()
}

// catalogueLookup asks the archive catalogue for a session the replicas
// could not be asked about.
func (p *Plane) catalogueLookup(ctx context.Context, id string, cause error) (fsm.SessionInfo, error) {
	if p.cfg.Archive == nil {
		return fsm.SessionInfo{}, cause
	}
	s, err := p.cfg.Archive.GetSession(ctx, id)
	switch {
	case err == nil:
		return sessionFromCatalogue(s), nil
	case errors.Is(err, archive.ErrNotFound):
		// Absent from the catalogue proves nothing (its write may have
		// failed): report why the replicas could not answer.
		return fsm.SessionInfo{}, cause
	default:
		return fsm.SessionInfo{}, fmt.Errorf("%w: %v (replicas: %v)", ErrArchiveUnavailable, err, cause)
	}
}

// CatalogueEntry is a session as the archive catalogue stores it.
func CatalogueEntry(s fsm.SessionInfo) archive.Session {
	e := archive.Session{ID: s.ID, Title: s.Title, TenantID: s.TenantID, Metadata: s.Metadata, CreatedAt: s.CreatedAt,
		UpdatedAt: s.UpdatedAt, Version: s.Version, Archived: s.Archived}
	if s.Creator != (fsm.Principal{}) {
		e.Creator = &archive.Principal{TenantID: s.Creator.TenantID, ID: s.Creator.ID, Type: s.Creator.Type}
	}
	return e
}

func sessionFromCatalogue(e archive.Session) fsm.SessionInfo {
	s := fsm.SessionInfo{Header: fsm.Header{ID: e.ID, TenantID: e.TenantID, Title: e.Title, Metadata: e.Metadata,
		CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt, Version: e.Version, Archived: e.Archived}}
	if e.Creator != nil {
		s.Creator = fsm.Principal{TenantID: e.Creator.TenantID, ID: e.Creator.ID, Type: e.Creator.Type}
	}
	return s
}
