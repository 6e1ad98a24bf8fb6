package store

import (
	"context"
	"strings"
	"sync"
)

// Change is a notice that a committed transaction left (Tx.Notify): what
// changed (Topic) and which (Detail). It says that something changed, not
// what it is now; the store holds that. Topic Resync means notices may have
// been lost (the listener reconnected, or the reader fell behind): read
// again whatever you keep.
type Change struct {
	Topic, Detail string
}

// Resync is the topic of a Change that stands for any number of lost ones.
const Resync = "resync"

// changesChannel is PostgreSQL's LISTEN/NOTIFY channel of the notices.
const changesChannel = "bty_changes"

func (c Change) encode() string { return c.Topic + " " + c.Detail }

func decodeChange(s string) Change {
	t, d, _ := strings.Cut(s, " ")
	return Change{Topic: t, Detail: d}
}

// Notify leaves a notice that every reader of Store.Changes gets once the
// transaction commits (none if it rolls back; once if Update ran fn again).
// topic is one word.
func (tx *Tx) Notify(topic, detail string) {
	tx.notes = append(tx.notes, Change{Topic: topic, Detail: detail})
}

// OnCommit runs fn after the transaction commits (not after a rollback,
// nor after a run of fn that Update then ran again): for what the caller
// does in memory, such as counting.
func (tx *Tx) OnCommit(fn func()) {
	tx.commit = append(tx.commit, fn)
}

// hub hands the notices to the readers of Changes in this process. A reader
// that does not keep up loses notices and gets one Resync in their place,
// rather than holding up the writers.
type hub struct {
	mu     sync.Mutex
	subs   map[*sub]struct{}
	closed bool
}

type sub struct {
	ch   chan Change
	lost bool
}

// subscribe returns a channel of the notices published from now until ctx
// ends, when it is closed.
func (h *hub) subscribe(ctx context.Context) <-chan Change {
	s := &sub{ch: make(chan Change, 64)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(s.ch)
		return s.ch
	}
	if h.subs == nil {
		h.subs = map[*sub]struct{}{}
	}
	h.subs[s] = struct{}{}
	go func() {
		<-ctx.Done()
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[s]; ok {
			delete(h.subs, s)
			close(s.ch)
		}
	}()
	return s.ch
}

func (h *hub) publish(c Change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if s.lost {
			select {
			case s.ch <- Change{Topic: Resync}:
				s.lost = false
			default:
				continue
			}
		}
		select {
		case s.ch <- c:
		default:
			s.lost = true
		}
	}
}

// close ends every subscription.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		delete(h.subs, s)
		close(s.ch)
	}
}
