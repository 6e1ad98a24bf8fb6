package web

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"bty/server/store"
	"bty/wire"
)

// The pages and their forms. Pages read; forms call the admin API in-process
// (UI.call) and redirect (303) to a page that says what happened, or answer
// with the page again and the API's reason.

// machineRow is a machine as the lists show it.
type machineRow struct {
	M        *store.Machine
	State    string
	Assigned string        // the assigned image's name, or its short ref
	OnDisk   string        // the name of what the last verified flash wrote
	Last     *store.Flash  // the last flash that ended done or failed
	LastDur  time.Duration // its duration
	Flash    *progressView // the open flash, if any
	Search   string        // what the search box matches, lower-case
}

// readFresh reads the fleet: the server's view of the machines and the UI's
// own reads, side by side (the two halves of a large fleet's page).
func (u *UI) readFresh(r *http.Request) (*fleetRead, error) {
	d := &fleetRead{}
	g, ctx := errgroup.WithContext(r.Context())
	g.Go(func() (err error) {
		d.ms, err = u.opt.Fleet.Summaries(ctx)
		return err
	})
	g.Go(func() (err error) {
		if d.images, err = u.opt.Fleet.Images(ctx, base(r)); err != nil {
			return err
		}
		return u.opt.Store.View(ctx, func(tx *store.Tx) (err error) {
			if d.last, err = tx.LastFlashes(); err != nil {
				return err
			}
			d.progress, err = tx.OpenProgress()
			return err
		})
	})
	return d, g.Wait()
}

// fleet is one read of the fleet for a page.
type fleet struct {
	rows   []machineRow
	images []wire.ImageEntry
}

// fleetRead is one read of the fleet from the server and the store.
type fleetRead struct {
	ms       []Summary
	images   []wire.ImageEntry
	last     map[string]store.Flash
	progress map[int64]store.Progress
}

// cacheFor bounds how long a read of the fleet is reused while nothing is
// known to have changed: as long as another server's write takes to show.
const cacheFor = pollEvery

// readFleet reads the machines for a list. The read is reused while the
// fleet has not changed (this server's writes and the store's fingerprint
// tell), so that the pages of a large fleet with nothing going on are quick,
// and the first page after a change reads afresh.
func (u *UI) readFleet(r *http.Request) (*fleet, error) {
	now := u.opt.Now()
	gen := u.gen.Load()
	u.cache.Lock()
	d := u.cache.read
	if u.cache.gen != gen || time.Since(u.cache.at) > cacheFor {
		d = nil
	}
	u.cache.Unlock()
	if d == nil {
		var err error
		if d, err = u.readFresh(r); err != nil {
			return nil, err
		}
		u.cache.Lock()
		u.cache.read, u.cache.gen, u.cache.at = d, gen, time.Now()
		u.cache.Unlock()
	}
	ms, images, last, progress := d.ms, d.images, d.last, d.progress
	names := make(map[string]string, len(images))
	for _, im := range images {
		names[im.Ref] = im.Name
	}
	f := &fleet{rows: make([]machineRow, len(ms)), images: images}
	for i, sum := range ms {
		f.rows[i] = newRow(sum.Machine, sum.State, sum.Image, names, now)
		if lf, ok := last[sum.Machine.MAC]; ok {
			f.rows[i].Last, f.rows[i].LastDur = &lf, took(lf.Cause, lf.CreatedAt, lf.OfferedAt, lf.EndedAt)
		}
		if c := sum.Cycle; c != nil && c.Kind == wire.KindFlash && c.EndedAt.IsZero() && c.State != wire.CycleSuperseded {
			f.rows[i].Flash = newProgress(c, progress[c.ID], now)
		}
	}
	return f, nil
}

// newRow makes a list's row of a machine; names are the images' by ref.
func newRow(m *store.Machine, state, image string, names map[string]string, now time.Time) machineRow {
	row := machineRow{M: m, State: state, Assigned: image}
	if row.Assigned == "" && m.ImageRef != "" {
		row.Assigned = "ref " + short(m.ImageRef) + " (in no catalog)"
	}
	if m.DiskRef != "" {
		if row.OnDisk = names[m.DiskRef]; row.OnDisk == "" {
			row.OnDisk = "sha256 " + short(m.DiskSHA256)
		}
	}
	row.Search = strings.ToLower(strings.Join(append([]string{m.MAC, wire.HexHyp(m.MAC), row.Assigned, row.OnDisk, state, m.BootMode, m.LastSeenIP}, m.Labels...), " "))
	return row
}

// stateOrder is how the dashboard lists the states: what needs a person
// first.
var stateOrder = []string{wire.StateQuarantined, wire.StateFlashing, wire.StateArmed, wire.StateInventory, wire.StateStale,
	wire.StateUnbound, wire.StateCurrent, wire.StateIdle}

type stateCount struct {
	State string
	N     int
}

type dashboardView struct {
	Total       int
	States      []stateCount
	Flashing    []machineRow
	Attention   []store.Event
	Quarantined []machineRow
	Health      Health
	BootOK      bool
	Images      int
	CSRF        string
	Rollouts    []rolloutLine
}

// rolloutLine is a rollout under way, in one line of the dashboard.
type rolloutLine struct {
	ID          int64
	Image       string
	Label       string
	State       string
	MaxParallel int
	Counts      string // "5 flashing, 8 done, 6 waiting"
}

// rolloutLines reads the rollouts that have not ended.
func rolloutLines(tx *store.Tx) ([]rolloutLine, error) {
	ros, err := tx.Rollouts(true, 10)
	var out []rolloutLine
	for _, ro := range ros {
		members, err := tx.RolloutMachines(ro.ID)
		if err != nil {
			return nil, err
		}
		n := map[string]int{}
		for _, m := range members {
			n[m.State]++
		}
		var parts []string
		for _, st := range []string{wire.MemberFlashing, wire.MemberDone, wire.MemberFailed, wire.MemberWaiting} {
			if n[st] > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n[st], st))
			}
		}
		out = append(out, rolloutLine{ID: ro.ID, Image: ro.ImageName, Label: ro.Label, State: ro.State, MaxParallel: ro.MaxParallel, Counts: strings.Join(parts, ", ")})
	}
	return out, err
}

func (u *UI) dashboard(w http.ResponseWriter, r *http.Request, s *store.Session) {
	f, err := u.readFleet(r)
	if err != nil {
		u.fail(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	v := dashboardView{Total: len(f.rows), Health: u.opt.Fleet.Health(), Images: len(f.images)}
	counts := map[string]int{}
	for _, row := range f.rows {
		counts[row.State]++
		if row.Flash != nil {
			v.Flashing = append(v.Flashing, row)
		}
		if row.State == wire.StateQuarantined {
			v.Quarantined = append(v.Quarantined, row)
		}
	}
	for _, st := range stateOrder {
		v.States = append(v.States, stateCount{st, counts[st]})
	}
	v.BootOK = len(v.Health.BootFiles) > 0
	for _, b := range v.Health.BootFiles {
		v.BootOK = v.BootOK && b.Present
	}
	err = u.opt.Store.View(r.Context(), func(tx *store.Tx) (err error) {
		if v.Attention, err = tx.Events(store.EventFilter{Attention: true, Unacked: true, Limit: 20}); err != nil {
			return err
		}
		v.Rollouts, err = rolloutLines(tx)
		return err
	})
	if err != nil {
		u.fail(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	u.render(w, r, http.StatusOK, "dashboard", view{Title: "Dashboard", Nav: "dashboard", Session: s, Data: v})
}

// column is a sortable column of the machine list.
type column struct {
	Key, Name string
	URL       string // the list sorted by it (the other way when it is the sort)
	Sort      string // aria-sort: "ascending", "descending" or ""
}

type machinesView struct {
	Rows                   []machineRow
	Total, Matched         int
	First, Last            int    // the rows shown, from 1
	Prev, Next             string // the pages before and after, "" when none
	Q, Label, State, Order string
	Desc                   bool
	Labels                 []string
	States                 []string
	Cols                   []column
}

// sorts are the orders of the machine list, by key.
var sorts = map[string]func(a, b *machineRow) int{
	"mac":   func(a, b *machineRow) int { return cmp.Compare(a.M.MAC, b.M.MAC) },
	"state": func(a, b *machineRow) int { return cmp.Compare(a.State, b.State) },
	"mode":  func(a, b *machineRow) int { return cmp.Compare(a.M.BootMode, b.M.BootMode) },
	"image": func(a, b *machineRow) int { return cmp.Compare(a.Assigned, b.Assigned) },
	"disk":  func(a, b *machineRow) int { return cmp.Compare(a.OnDisk, b.OnDisk) },
	"labels": func(a, b *machineRow) int {
		return cmp.Compare(strings.Join(a.M.Labels, ","), strings.Join(b.M.Labels, ","))
	},
	"seen": func(a, b *machineRow) int {
		return a.M.LastSeenAt.Compare(b.M.LastSeenAt)
	},
	"flash": func(a, b *machineRow) int {
		var ta, tb time.Time
		if a.Last != nil {
			ta = a.Last.EndedAt
		}
		if b.Last != nil {
			tb = b.Last.EndedAt
		}
		return ta.Compare(tb)
	},
}

// machinesPage is how many machines the list shows at a time.
const machinesPage = 100

func (u *UI) machines(w http.ResponseWriter, r *http.Request, s *store.Session) {
	f, err := u.readFleet(r)
	if err != nil {
		u.fail(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	q := r.URL.Query()
	v := machinesView{Total: len(f.rows), Q: strings.TrimSpace(q.Get("q")), Label: q.Get("label"), State: q.Get("state"),
		Order: q.Get("sort"), Desc: q.Get("dir") == "desc", States: stateOrder}
	if sorts[v.Order] == nil {
		v.Order = "mac"
	}
	labels := map[string]bool{}
	needle := strings.ToLower(v.Q)
	for _, row := range f.rows {
		for _, l := range row.M.Labels {
			labels[l] = true
		}
		if (v.Label == "" || slices.Contains(row.M.Labels, v.Label)) && (v.State == "" || row.State == v.State) &&
			(needle == "" || strings.Contains(row.Search, needle)) {
			v.Rows = append(v.Rows, row)
		}
	}
	for l := range labels {
		v.Labels = append(v.Labels, l)
	}
	slices.Sort(v.Labels)
	by := sorts[v.Order]
	slices.SortStableFunc(v.Rows, func(a, b machineRow) int {
		c := by(&a, &b)
		if v.Desc {
			c = -c
		}
		return cmp.Or(c, cmp.Compare(a.M.MAC, b.M.MAC))
	})
	// A page of rows: a long list is read by searching and sorting, and the
	// page stays quick to render (and to refresh live) in a large fleet.
	v.Matched = len(v.Rows)
	page, _ := strconv.Atoi(q.Get("page"))
	page = max(0, min(page, (v.Matched-1)/machinesPage))
	v.Rows = v.Rows[page*machinesPage : min(v.Matched, (page+1)*machinesPage)]
	v.First, v.Last = page*machinesPage+1, page*machinesPage+len(v.Rows)
	turn := func(p int) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(p))
		return "/ui/machines?" + q.Encode()
	}
	if page > 0 {
		v.Prev = turn(page - 1)
	}
	if (page+1)*machinesPage < v.Matched {
		v.Next = turn(page + 1)
	}
	for _, c := range []struct{ key, name string }{{"mac", "MAC"}, {"labels", "Labels"}, {"mode", "Mode"}, {"image", "Assigned image"},
		{"disk", "Image on disk"}, {"state", "State"}, {"seen", "Last seen"}, {"flash", "Last flash"}} {
		col := column{Key: c.key, Name: c.name}
		p := url.Values{}
		for k, val := range map[string]string{"q": v.Q, "label": v.Label, "state": v.State} {
			if val != "" {
				p.Set(k, val)
			}
		}
		p.Set("sort", c.key)
		if c.key == v.Order {
			col.Sort = "ascending"
			if v.Desc {
				col.Sort = "descending"
			} else {
				p.Set("dir", "desc")
			}
		}
		col.URL = "/ui/machines?" + p.Encode()
		v.Cols = append(v.Cols, col)
	}
	u.render(w, r, http.StatusOK, "machines", view{Title: "Machines", Nav: "machines", Session: s, Data: v})
}

// imageRow is a catalog entry and the machines that use it.
type imageRow struct {
	wire.ImageEntry
	Assigned []string // MACs bound to it
	OnDisk   []string // MACs whose disk holds it
}

func (u *UI) images(w http.ResponseWriter, r *http.Request, s *store.Session) {
	images, err := u.opt.Fleet.Images(r.Context(), base(r))
	if err != nil {
		u.fail(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	var ms []*store.Machine
	err = u.opt.Store.View(r.Context(), func(tx *store.Tx) (err error) {
		ms, err = tx.Machines("")
		return err
	})
	if err != nil {
		u.fail(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	rows := make([]imageRow, len(images))
	at := map[string]int{}
	for i, im := range images {
		rows[i].ImageEntry = im
		at[im.Ref] = i
	}
	for _, m := range ms {
		if i, ok := at[m.ImageRef]; ok {
			rows[i].Assigned = append(rows[i].Assigned, m.MAC)
		}
		if i, ok := at[m.DiskRef]; ok {
			rows[i].OnDisk = append(rows[i].OnDisk, m.MAC)
		}
	}
	u.render(w, r, http.StatusOK, "images", view{Title: "Images", Nav: "images", Session: s, Data: struct {
		Rows     []imageRow
		Catalogs []string
	}{rows, u.opt.Fleet.Health().Catalogs}})
}

func (u *UI) refreshImages(w http.ResponseWriter, r *http.Request, s *store.Session) {
	if err := u.call(r, s, "POST", "/admin/catalogs/refresh", nil, nil); err != nil {
		u.failAPI(w, r, s, err)
		return
	}
	seeOther(w, r, "/ui/images", "refreshed")
}

// eventKinds are offered in the event filter (docs/fleet.md lists them).
var eventKinds = []string{"machine.discovered", "machine.created", "machine.upserted", "machine.deleted", "netboot.pxe.offered",
	"netboot.pxe.plan", "netboot.flasher.armed", "machine.flash_started", "machine.flashed", "machine.flash_failed",
	"machine.inventory", "machine.retry", "machine.quarantined", "machine.released", "machine.reflash_requested",
	"machine.stale", "cycle.superseded", "pxe.status.refused", "pxe.client.orphan", "image.changed", "power.cycled",
	"power.failed", "token.created", "token.revoked", "auth.login.succeeded", "auth.login.failed", "auth.logout",
	"auth.password.changed"}

type eventsView struct {
	Events                []store.Event
	Kind, Machine         string
	Failed, Unacked       bool
	Kinds                 []string
	Older, Newest, Filter string // URLs
	Back                  string
}

const eventsPage = 50

func (u *UI) events(w http.ResponseWriter, r *http.Request, s *store.Session) {
	q := r.URL.Query()
	v := eventsView{Kind: strings.TrimSpace(q.Get("kind")), Machine: strings.TrimSpace(q.Get("machine")), Failed: q.Get("failed") != "",
		Unacked: q.Get("unacked") != "", Kinds: eventKinds, Back: r.URL.RequestURI()}
	f := store.EventFilter{Kind: v.Kind, Failed: v.Failed, Unacked: v.Unacked, Limit: eventsPage}
	if v.Machine != "" {
		f.SubjectKind, f.SubjectID = "machine", v.Machine
		if mac, err := wire.NormalizeMAC(v.Machine); err == nil {
			f.SubjectID = mac
		}
	}
	f.BeforeID, _ = strconv.ParseInt(q.Get("before"), 10, 64)
	err := u.opt.Store.View(r.Context(), func(tx *store.Tx) (err error) {
		v.Events, err = tx.Events(f)
		return err
	})
	if err != nil {
		u.fail(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	p := url.Values{}
	for k, val := range map[string]string{"kind": v.Kind, "machine": v.Machine} {
		if val != "" {
			p.Set(k, val)
		}
	}
	if v.Failed {
		p.Set("failed", "1")
	}
	if v.Unacked {
		p.Set("unacked", "1")
	}
	if len(v.Events) == eventsPage {
		older := url.Values{}
		for k, vals := range p {
			older[k] = vals
		}
		older.Set("before", strconv.FormatInt(v.Events[len(v.Events)-1].ID, 10))
		v.Older = "/ui/events?" + older.Encode()
	}
	if f.BeforeID > 0 {
		v.Newest = "/ui/events?" + p.Encode()
	}
	u.render(w, r, http.StatusOK, "events", view{Title: "Events", Nav: "events", Session: s, Data: v})
}

func (u *UI) ack(w http.ResponseWriter, r *http.Request, s *store.Session) {
	if err := u.call(r, s, "POST", "/events/"+url.PathEscape(r.PathValue("id"))+"/ack", nil, nil); err != nil {
		u.failAPI(w, r, s, err)
		return
	}
	seeOther(w, r, back(r, "/ui/events"), "acked")
}
