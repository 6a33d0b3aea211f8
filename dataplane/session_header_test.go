package dataplane

import (
	"context"
	"errors"
	"sync"
	"testing"

	"starcite/fsm"
)

// TestSessionHeaderChanges runs header changes through a real single-node
// Raft group: results, errors, the linearizable read and the list filter.
func TestSessionHeaderChanges(t *testing.T) {
	p := startPlane(t)
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if err := p.Create(ctx, &fsm.CreateSession{RequestID: 1, Header: fsm.Header{ID: id, TenantID: "t",
			Metadata: []byte(`{"k":"v"}`), CreatedAt: 1000}}); err != nil {
			t.Fatal(err)
		}
	}
	title := "T"
	s, err := p.UpdateSession(ctx, &fsm.UpdateSession{RequestID: 7, SessionID: "a", At: 2000, SetTitle: true, Title: &title,
		Metadata: []byte(`{"n":1}`), ExpectedVersion: ptr(uint64(1))})
	if err != nil || s.Version != 2 || *s.Title != "T" || string(s.Metadata) != `{"k":"v","n":1}` || s.UpdatedAt != 2000 {
		t.Fatalf("update: %+v, %v", s, err)
	}
	var conflict *ExpectedVersionConflictError
	_, err = p.UpdateSession(ctx, &fsm.UpdateSession{SessionID: "a", At: 3000, SetTitle: true, ExpectedVersion: ptr(uint64(1))})
	if !errors.As(err, &conflict) || conflict.Expected != 1 || conflict.Current != 2 {
		t.Fatalf("stale expected_version: %v", err)
	}
	if _, err := p.UpdateSession(ctx, &fsm.UpdateSession{SessionID: "nope", At: 3000, SetTitle: true}); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("unknown session: %v", err)
	}
	big := make([]byte, 0, fsm.MaxMetadataBytes+16)
	big = append(append(big, `{"big":"`...), make([]byte, fsm.MaxMetadataBytes)...)
	for i := len(`{"big":"`); i < len(big); i++ {
		big[i] = 'x'
	}
	big = append(big, `"}`...)
	if _, err := p.UpdateSession(ctx, &fsm.UpdateSession{SessionID: "a", At: 3000, Metadata: big}); !errors.Is(err, ErrMetadataTooLarge) {
		t.Fatalf("oversized merge: %v", err)
	}
	s, err = p.SetArchived(ctx, &fsm.SetArchived{SessionID: "a", At: 4000, Archived: true})
	if err != nil || !s.Archived || s.Version != 2 || s.UpdatedAt != 4000 {
		t.Fatalf("archive: %+v, %v", s, err)
	}
	s, err = p.SetArchived(ctx, &fsm.SetArchived{SessionID: "a", At: 5000, Archived: true})
	if err != nil || !s.Archived || s.UpdatedAt != 4000 {
		t.Fatalf("archive again: %+v, %v", s, err)
	}
	got, err := p.SessionState(ctx, "a")
	if err != nil || !got.Archived || got.Version != 2 || *got.Title != "T" || got.UpdatedAt != 4000 {
		t.Fatalf("SessionState: %+v, %v", got, err)
	}
	for filter, want := range map[fsm.ArchivedFilter]string{fsm.NotArchived: "b", fsm.OnlyArchived: "a", fsm.AnyArchived: "ab"} {
		list, err := p.List(ctx, fsm.ListQuery{Archived: filter, Limit: 10})
		var ids string
		for _, s := range list {
			ids += s.ID
		}
		if err != nil || ids != want {
			t.Fatalf("list %d: %q, %v; want %q", filter, ids, err, want)
		}
	}
}

// TestConcurrentUpdatesOneWins: updates racing with the same
// expected_version commit one after another, so exactly one applies.
func TestConcurrentUpdatesOneWins(t *testing.T) {
	p := startPlane(t)
	ctx := context.Background()
	if err := p.Create(ctx, &fsm.CreateSession{RequestID: 1, Header: fsm.Header{ID: "s", TenantID: "t",
		Metadata: []byte(`{}`), CreatedAt: 1000}}); err != nil {
		t.Fatal(err)
	}
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = p.UpdateSession(ctx, &fsm.UpdateSession{RequestID: uint64(100 + i), SessionID: "s", At: 2000,
				Metadata: []byte(`{"w":1}`), ExpectedVersion: ptr(uint64(1))})
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		var conflict *ExpectedVersionConflictError
		switch {
		case err == nil:
			won++
		case errors.As(err, &conflict) && conflict.Current == 2:
		default:
			t.Fatalf("update %d: %v", i, err)
		}
	}
	if s, _ := p.SessionState(ctx, "s"); won != 1 || s.Version != 2 {
		t.Fatalf("%d updates won, version %d", won, s.Version)
	}
}

func ptr[T any](v T) *T { return &v }

// TestHeadersApplicable: header commands wait until every other replica
// of the group has been seen running a build that applies them.
func TestHeadersApplicable(t *testing.T) {
	nodes := []string{"s@a", "s@b", "s@c"}
	pl, err := NewPlacement(nodes, 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	p := &Plane{raft: &Raft{cfg: RaftConfig{Self: "s@a"}}, placement: pl}
	if err := p.headersApplicable(0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("before any view: %v", err)
	}
	for _, tc := range []struct {
		headers map[string]bool
		ok      bool
	}{
		{map[string]bool{"s@a": true, "s@b": true}, false},
		{map[string]bool{"s@a": true, "s@b": true, "s@c": false}, false},
		{map[string]bool{"s@b": true, "s@c": true}, true}, // self needs no check
	} {
		p.PublishView(&View{Headers: tc.headers})
		if err := p.headersApplicable(0); (err == nil) != tc.ok {
			t.Errorf("%v: %v", tc.headers, err)
		}
	}
	single, _ := NewPlacement([]string{"s@a"}, 4, 1)
	p = &Plane{raft: &Raft{cfg: RaftConfig{Self: "s@a"}}, placement: single}
	if err := p.headersApplicable(0); err != nil {
		t.Fatalf("a single node needs no peer: %v", err)
	}
}
