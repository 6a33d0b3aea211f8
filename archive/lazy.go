package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"starcite/fsm"
)

// ErrNotConnected: the archive backend has not been reached yet.
var ErrNotConnected = errors.New("archive: not connected yet")

// lazyAdapter connects to its backend in the background and keeps trying,
// so a node whose archive is briefly down at boot still starts and takes
// writes (they stay hot until the archive is back, docs/decisions.md#d18).
type lazyAdapter struct {
	name    string
	ready   atomic.Pointer[Adapter]
	stop    chan struct{}
	stopped sync.WaitGroup
}

// OpenLazy returns an adapter for cfg that connects in the background,
// retrying every retry interval and logging once per failure streak.
// Until connected every call fails with ErrNotConnected.
func OpenLazy(cfg Config, retry time.Duration, log *slog.Logger) Adapter {
	l := &lazyAdapter{name: cfg.Adapter, stop: make(chan struct{})}
	l.stopped.Add(1)
	go func() {
		defer l.stopped.Done()
		for failures := 0; ; failures++ {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			a, err := Open(ctx, cfg)
			cancel()
			if err == nil {
				if failures > 0 {
					log.Info("archive connected", "adapter", cfg.Adapter, "after_failures", failures)
				}
				l.ready.Store(&a)
				return
			}
			if failures == 0 {
				log.Error("archive not reachable; retrying in the background", "adapter", cfg.Adapter, "err", err)
			}
			select {
			case <-l.stop:
				return
			case <-time.After(retry):
			}
		}
	}()
	return l
}

func (l *lazyAdapter) get() (Adapter, error) {
	if a := l.ready.Load(); a != nil {
		return *a, nil
	}
	return nil, fmt.Errorf("%s: %w", l.name, ErrNotConnected)
}

func (l *lazyAdapter) PutSession(ctx context.Context, s Session) error {
	a, err := l.get()
	if err != nil {
		return err
	}
	return a.PutSession(ctx, s)
}

func (l *lazyAdapter) UpdateSession(ctx context.Context, s Session) error {
	a, err := l.get()
	if err != nil {
		return err
	}
	return a.UpdateSession(ctx, s)
}

func (l *lazyAdapter) GetSession(ctx context.Context, id string) (Session, error) {
	a, err := l.get()
	if err != nil {
		return Session{}, err
	}
	return a.GetSession(ctx, id)
}

func (l *lazyAdapter) WriteEvents(ctx context.Context, sessionID string, events []fsm.Event) error {
	a, err := l.get()
	if err != nil {
		return err
	}
	return a.WriteEvents(ctx, sessionID, events)
}

func (l *lazyAdapter) ReadEvents(ctx context.Context, sessionID, tenantID string, from, to uint64) ([]fsm.Event, error) {
	a, err := l.get()
	if err != nil {
		return nil, err
	}
	return a.ReadEvents(ctx, sessionID, tenantID, from, to)
}

func (l *lazyAdapter) Name() string { return l.name }

func (l *lazyAdapter) Close() error {
	close(l.stop)
	l.stopped.Wait()
	if a := l.ready.Load(); a != nil {
		return (*a).Close()
	}
	return nil
}
