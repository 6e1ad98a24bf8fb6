package web

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"bty/server/store"
)

// Live updates. The broker tells every open page that the fleet changed; the
// page (app.js) then fetches itself again and swaps its live parts. A change
// is known two ways: the server calls Changed after each of its own writes,
// and Run polls the store's fingerprint, which also moves when another
// server on the same database writes.

const (
	// pollEvery: how soon another server's write shows up.
	pollEvery = 2 * time.Second
	// throttle: at most one signal per this long, however busy the fleet
	// (each signal makes every open page fetch itself once; progress posts
	// come once a second per flashing machine).
	throttle = time.Second
	// heartbeat keeps idle streams open through proxies.
	heartbeat = 25 * time.Second
)

type broker struct {
	kick chan struct{}
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
	done bool
	seq  int64
}

func newBroker() *broker {
	return &broker{kick: make(chan struct{}, 1), subs: map[chan struct{}]struct{}{}}
}

// subscribe returns a channel that receives a value after changes (several
// changes may come as one), closed when the server stops, and a func that
// ends the subscription.
func (b *broker) subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		close(ch)
		return ch, func() {}
	}
	b.subs[ch] = struct{}{}
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[ch]; ok {
			delete(b.subs, ch)
			close(ch)
		}
	}
}

func (b *broker) broadcast() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	for ch := range b.subs {
		select {
		case ch <- struct{}{}:
		default: // a signal is pending already
		}
	}
}

func (b *broker) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = true
	for ch := range b.subs {
		delete(b.subs, ch)
		close(ch)
	}
}

// Changed tells the open pages that this server wrote to the store. It
// never blocks.
func (u *UI) Changed() {
	u.gen.Add(1)
	select {
	case u.live.kick <- struct{}{}:
	default:
	}
}

// Run signals the open pages until ctx ends, then closes their streams.
func (u *UI) Run(ctx context.Context) {
	defer u.live.close()
	poll := time.NewTicker(pollEvery)
	defer poll.Stop()
	last, _ := u.fingerprint(ctx)
	for {
		changed := false
		select {
		case <-ctx.Done():
			return
		case <-u.live.kick:
			changed = true
		case <-poll.C:
			fp, err := u.fingerprint(ctx)
			if changed = err == nil && fp != last; changed {
				u.gen.Add(1) // another server wrote
			}
		}
		if !changed {
			continue
		}
		u.live.broadcast()
		select {
		case <-ctx.Done():
			return
		case <-time.After(throttle):
		}
		last, _ = u.fingerprint(ctx)
	}
}

func (u *UI) fingerprint(ctx context.Context) (fp string, err error) {
	err = u.opt.Store.View(ctx, func(tx *store.Tx) error {
		fp, err = tx.Fingerprint()
		return err
	})
	return fp, err
}

// stream answers GET /ui/live: Server-Sent Events, one "change" per signal.
func (u *UI) stream(w http.ResponseWriter, r *http.Request, _ *store.Session) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	ch, stop := u.live.subscribe()
	defer stop()
	fmt.Fprint(w, "retry: 3000\n: bty live\n\n")
	if rc.Flush() != nil {
		return
	}
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
			u.live.mu.Lock()
			seq := u.live.seq
			u.live.mu.Unlock()
			fmt.Fprintf(w, "event: change\ndata: %d\n\n", seq)
		case <-beat.C:
			fmt.Fprint(w, ": ping\n\n")
		}
		if rc.Flush() != nil {
			return
		}
	}
}
