package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"bty/server/store"
	"bty/wire"
)

// The machine page and its forms: bind, reflash, delete.

// kv is one line of a machine's hardware.
type kv struct{ Key, Value string }

type machineView struct {
	M          wire.Machine
	Row        machineRow
	Images     []wire.ImageEntry
	ImageKnown bool // the assigned ref is one of Images
	DiskKnown  bool // the target serial is one of the inventory's disks
	Modes      []string
	Labels     string
	Hardware   []kv
	HasLSHW    bool
	Cycles     []cycleView
	Events     []store.Event
	Back       string
}

func (u *UI) machine(w http.ResponseWriter, r *http.Request, s *store.Session) {
	u.machinePage(w, r, s, http.StatusOK, "")
}

// machinePage shows a machine; a failed form shows it again with the reason.
func (u *UI) machinePage(w http.ResponseWriter, r *http.Request, s *store.Session, code int, failure string) {
	mac, err := wire.NormalizeMAC(r.PathValue("mac"))
	if err != nil {
		u.fail(w, r, s, http.StatusNotFound, err.Error())
		return
	}
	ctx, now := r.Context(), u.opt.Now()
	m, err := u.opt.Fleet.Machine(ctx, mac, base(r))
	if err != nil {
		u.failAPI(w, r, s, err)
		return
	}
	images, err := u.opt.Fleet.Images(ctx, base(r))
	if err != nil {
		u.fail(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	v := machineView{Images: images, Modes: wire.BootModes, Labels: strings.Join(m.Labels, ", "), Back: "/ui/machines/" + mac}
	var sm *store.Machine
	var cycles []*store.Cycle
	var progress map[int64]store.Progress
	err = u.opt.Store.View(ctx, func(tx *store.Tx) (err error) {
		if sm, err = tx.Machine(mac); err != nil {
			return err
		}
		if cycles, err = tx.Cycles(mac, 0, 10); err != nil {
			return err
		}
		if progress, err = tx.OpenProgress(); err != nil {
			return err
		}
		v.Events, err = tx.Events(store.EventFilter{SubjectKind: "machine", SubjectID: mac, Limit: 20})
		return err
	})
	if err != nil {
		u.fail(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	names := map[string]string{}
	for _, im := range images {
		names[im.Ref] = im.Name
		v.ImageKnown = v.ImageKnown || im.Ref == sm.ImageRef
	}
	row := newRow(sm, m.State, names[sm.ImageRef], names, now)
	for _, c := range cycles {
		if c.Kind == wire.KindFlash && (c.State == wire.CycleDone || c.State == wire.CycleFailed) {
			row.Last = &store.Flash{ID: c.ID, State: c.State, Cause: c.Cause, CreatedAt: c.CreatedAt, OfferedAt: c.OfferedAt, EndedAt: c.EndedAt}
			row.LastDur = took(c.Cause, c.CreatedAt, c.OfferedAt, c.EndedAt)
			break
		}
	}
	for _, d := range m.KnownDisks {
		if m.TargetDiskSerial != nil && d.Serial == *m.TargetDiskSerial {
			v.DiskKnown = true
		}
	}
	for _, c := range cycles {
		cv := newCycleView(c, progress[c.ID], now)
		if cv.Progress != nil && row.Flash == nil {
			row.Flash = cv.Progress
		}
		v.Cycles = append(v.Cycles, cv)
	}
	v.Row, v.M = row, m
	v.Hardware, v.HasLSHW = hardware(sm.LSHW), sm.LSHW != ""
	u.render(w, r, code, "machine", view{Title: mac, Nav: "machines", Session: s, Error: failure, Data: v})
}

// hardware sums an lshw -json tree up: the system, its processors, memory
// and network interfaces.
func hardware(lshw string) []kv {
	if lshw == "" {
		return nil
	}
	var root any
	if json.Unmarshal([]byte(lshw), &root) != nil {
		return nil
	}
	if l, ok := root.([]any); ok && len(l) > 0 {
		root = l[0]
	}
	var out []kv
	str := func(n map[string]any, k string) string { s, _ := n[k].(string); return s }
	if top, ok := root.(map[string]any); ok {
		if sys := strings.TrimSpace(str(top, "vendor") + " " + str(top, "product")); sys != "" {
			out = append(out, kv{"System", sys})
		}
		if sn := str(top, "serial"); sn != "" {
			out = append(out, kv{"Serial", sn})
		}
	}
	cpus := map[string]int{}
	var cpuOrder []string
	seen := 0
	var walk func(n any)
	walk = func(n any) {
		node, ok := n.(map[string]any)
		if !ok || seen > 5000 {
			return
		}
		seen++
		switch class, id := str(node, "class"), str(node, "id"); {
		case class == "processor" && str(node, "product") != "":
			p := str(node, "product")
			if cpus[p] == 0 {
				cpuOrder = append(cpuOrder, p)
			}
			cpus[p]++
		case class == "memory" && (id == "memory" || strings.HasPrefix(id, "memory:")):
			if size, ok := node["size"].(float64); ok && size > 0 {
				out = append(out, kv{"Memory", humanBytes(int64(size))})
			}
		case class == "network":
			nic := strings.TrimSpace(str(node, "product") + " " + str(node, "serial"))
			if name := str(node, "logicalname"); name != "" {
				nic = name + ": " + nic
			}
			if nic != "" {
				out = append(out, kv{"Network", nic})
			}
		}
		if kids, ok := node["children"].([]any); ok {
			for _, k := range kids {
				walk(k)
			}
		}
	}
	walk(root)
	for _, p := range cpuOrder {
		cpu := p
		if cpus[p] > 1 {
			cpu = strconv.Itoa(cpus[p]) + " × " + p
		}
		out = append(out, kv{"CPU", cpu})
	}
	return out
}

// saveMachine answers the binding form: PUT /machines/<mac> with the form's
// image, target disk, mode, labels, power driver and BIOS drive.
func (u *UI) saveMachine(w http.ResponseWriter, r *http.Request, s *store.Session) {
	mac := r.PathValue("mac")
	opt := func(k string) *string {
		v := strings.TrimSpace(r.PostFormValue(k))
		if v == "" {
			return nil
		}
		return &v
	}
	labels := []string{}
	for _, l := range strings.Split(r.PostFormValue("labels"), ",") {
		if l = strings.TrimSpace(l); l != "" {
			labels = append(labels, l)
		}
	}
	body := wire.MachineUpsert{BtyImageRef: opt("image"), TargetDiskSerial: opt("disk"), BootMode: r.PostFormValue("mode"),
		Labels: labels, Power: strings.TrimSpace(r.PostFormValue("power")), SanbootDrive: opt("sanboot")}
	if err := u.call(r, s, "PUT", "/machines/"+url.PathEscape(mac), body, nil); err != nil {
		u.formFailed(w, r, s, err)
		return
	}
	seeOther(w, r, "/ui/machines/"+url.PathEscape(mac), "saved")
}

// formFailed shows the machine page again with the API's reason.
func (u *UI) formFailed(w http.ResponseWriter, r *http.Request, s *store.Session, err error) {
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code == http.StatusNotFound {
		u.failAPI(w, r, s, err)
		return
	}
	u.machinePage(w, r, s, ae.Code, ae.Detail)
}

// reflash answers "Reflash now": POST /machines/<mac>/reflash with the
// reason, power-cycling the machine unless the box was unticked.
func (u *UI) reflash(w http.ResponseWriter, r *http.Request, s *store.Session) {
	mac := r.PathValue("mac")
	req := wire.Reflash{Reason: strings.TrimSpace(r.PostFormValue("reason"))}
	if r.PostFormValue("power_offered") != "" {
		p := r.PostFormValue("power") != ""
		req.Power = &p
	}
	if err := u.call(r, s, "POST", "/machines/"+url.PathEscape(mac)+"/reflash", req, nil); err != nil {
		u.formFailed(w, r, s, err)
		return
	}
	seeOther(w, r, back(r, "/ui/machines/"+url.PathEscape(mac)), "reflash")
}

func (u *UI) deleteMachine(w http.ResponseWriter, r *http.Request, s *store.Session) {
	if err := u.call(r, s, "DELETE", "/machines/"+url.PathEscape(r.PathValue("mac")), nil, nil); err != nil {
		u.failAPI(w, r, s, err)
		return
	}
	seeOther(w, r, "/ui/machines", "deleted")
}
