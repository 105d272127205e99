package provider

import (
	"context"
	"errors"
	"time"

	"github.com/pixieauth/pixie/store"
)

// defaultCleanupInterval is how often expired grant records are removed.
const defaultCleanupInterval = time.Hour

// ErrNoCleanup is returned by [Provider.DeleteExpired] when the grant store
// cannot delete expired records (it is not a [store.ExpiredDeleter]).
var ErrNoCleanup = errors.New("provider: the grant store cannot delete expired records")

// DeleteExpired removes the grant records (codes, tokens) that expired, and
// returns how many it removed. The provider also calls it on its own every
// Config.CleanupInterval, from the token endpoint; call it yourself to clean
// up on your own schedule.
func (p *Provider) DeleteExpired(ctx context.Context) (int, error) {
	d, ok := p.cfg.Grants.(store.ExpiredDeleter)
	if !ok {
		return 0, ErrNoCleanup
	}
	return d.DeleteExpired(ctx, p.now())
}

// maybeCleanup starts a cleanup in the background when one is due. It runs
// on a context detached from the request (which may end first), bounded by a
// timeout; at most one runs at a time.
func (p *Provider) maybeCleanup(ctx context.Context) {
	if p.cfg.CleanupInterval < 0 {
		return
	}
	if _, ok := p.cfg.Grants.(store.ExpiredDeleter); !ok {
		return
	}
	now := p.now()
	p.cleanMu.Lock()
	due := now.Sub(p.lastClean) >= p.cfg.CleanupInterval && !p.cleaning
	if due {
		p.cleaning, p.lastClean = true, now
	}
	p.cleanMu.Unlock()
	if !due {
		return
	}
	go func() {
		defer func() {
			p.cleanMu.Lock()
			p.cleaning = false
			p.cleanMu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		n, err := p.DeleteExpired(ctx)
		if err != nil {
			p.log().ErrorContext(ctx, "delete expired grants", "error", err)
			return
		}
		p.log().DebugContext(ctx, "deleted expired grants", "count", n)
	}()
}
