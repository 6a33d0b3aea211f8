package dataplane

import (
	"context"
	"fmt"

	"starcite/fsm"
)

// UpdateSession commits a title/metadata update (PATCH) and returns the
// session as the update left it. Conflicts come back as the errors of
// errors.go; our own retry after an ambiguous timeout is recognised by
// the request id and answered with the header it produced.
func (p *Plane) UpdateSession(ctx context.Context, u *fsm.UpdateSession) (fsm.SessionInfo, error) {
	return p.changeHeader(ctx, u.SessionID, fsm.EncodeUpdateSession(u))
}

// headersApplicable refuses a header command while a replica of group
// may run a build that cannot apply it: that replica would skip the
// entry and its copy of the session would differ from the others' for
// good. A replica counts once the observer has seen it run a build that
// can.
func (p *Plane) headersApplicable(group int) error {
	v := p.View()
	for _, n := range p.placement.Replicas(group) {
		if n != p.raft.cfg.Self && (v == nil || !v.Headers[n]) {
			return fmt.Errorf("%w: replica %s is not known to run a build that applies session header changes", ErrUnavailable, n)
		}
	}
	return nil
}

// SetArchived commits an archive or unarchive and returns the session as
// it is afterwards; setting the flag it already has changes nothing.
func (p *Plane) SetArchived(ctx context.Context, a *fsm.SetArchived) (fsm.SessionInfo, error) {
	return p.changeHeader(ctx, a.SessionID, fsm.EncodeSetArchived(a))
}

func (p *Plane) changeHeader(ctx context.Context, id string, cmd []byte) (fsm.SessionInfo, error) {
	group := p.placement.Group(id)
	if err := p.headersApplicable(group); err != nil {
		return fsm.SessionInfo{}, fmt.Errorf("change header of %q: %w", id, err)
	}
	res, err := p.propose(ctx, group, cmd)
	if err != nil {
		return fsm.SessionInfo{}, fmt.Errorf("change header of %q: %w", id, err)
	}
	if fsm.Status(res.Value) == fsm.StatusMalformed {
		return fsm.SessionInfo{}, fmt.Errorf("change header of %q: %w: command refused as malformed", id, ErrInternal)
	}
	r, err := fsm.DecodeHeaderResult(res.Data)
	if err != nil {
		return fsm.SessionInfo{}, fmt.Errorf("change header of %q: %w: %v", id, ErrInternal, err)
	}
	switch r.Status {
	case fsm.StatusOK:
		if r.Changed {
			p.catalogue(r.Session, true)
		}
		return r.Session, nil
	case fsm.StatusSessionNotFound:
		return fsm.SessionInfo{}, ErrSessionNotFound
	case fsm.StatusExpectedVersionConflict:
		return fsm.SessionInfo{}, &ExpectedVersionConflictError{Expected: r.Expected, Current: r.Current}
	case fsm.StatusMetadataTooLarge:
		return fsm.SessionInfo{}, ErrMetadataTooLarge
	default:
		return fsm.SessionInfo{}, fmt.Errorf("change header of %q: %w: status %v", id, ErrInternal, r.Status)
	}
}
