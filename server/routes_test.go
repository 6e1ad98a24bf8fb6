package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"bty/wire"
)

// TestRoutesContract: every route a machine, iPXE or a script of bty-web's
// uses answers as bty-web's does: status codes, JSON field names, the iPXE
// text, the Date header; bodies are bty-web's own.
func TestRoutesContract(t *testing.T) {
	f := newFixture(t)
	hyp := wire.HexHyp(testMAC)

	// The bootstrap chains to the machine's own script on the same host.
	r := f.want(f.do("GET", "/pxe-bootstrap.ipxe", ""), 200, "bootstrap")
	host := strings.TrimPrefix(f.ts.URL, "http://")
	if !strings.HasPrefix(r.body, "#!ipxe\n") || !strings.Contains(r.body, "\nchain http://"+host+"/pxe/${mac:hexhyp}?boot=") {
		t.Errorf("bootstrap = %q, want a chain to http://%s/pxe/${mac:hexhyp}", r.body, host)
	}
	if ct := r.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("bootstrap Content-Type = %q", ct)
	}

	// Bad MACs are 400 on every machine route.
	for _, path := range []string{"/pxe/aabbccddeeff", "/pxe/aa.bb.cc.dd.ee.ff/plan", "/pxe/zz:bb:cc:dd:ee:ff"} {
		f.want(f.do("GET", path, ""), 400, "GET "+path)
	}
	f.want(f.do("POST", "/pxe/nope/status", `{"status":"done"}`), 400, "status, bad MAC")

	// An unknown MAC (upper case, hyphens) is registered as bty-inventory
	// and gets the live environment with bty-web's kernel tokens.
	r = f.want(f.do("GET", "/pxe/"+strings.ToUpper(hyp)+"?boot=b1", ""), 200, "first contact")
	for _, want := range []string{
		"#!ipxe\n", "set bty-base http://" + host + "\n",
		"kernel ${bty-base}/boot/vmlinuz?mac=" + testMAC + " ",
		" console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 plymouth.enable=0 modprobe.blacklist=nouveau,rndis_host nouveau.modeset=0 systemd.gpt_auto=0 ",
		" bty.server=${bty-base} bty.mac=" + testMAC + "\n",
		"initrd --name initrd.img ${bty-base}/boot/initrd.img?mac=" + testMAC + "\n", "boot\n",
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("live-environment script lacks %q:\n%s", want, r.body)
		}
	}
	if kinds := f.kinds(); !has(kinds, "machine.discovered") || !has(kinds, "netboot.pxe.offered") {
		t.Errorf("events after first contact = %q", kinds)
	}
	m := f.machine()
	if m.BootMode != "bty-inventory" || m.MAC != testMAC || m.LastSeenIP == nil || *m.LastSeenIP != "127.0.0.1" {
		t.Errorf("discovered machine = %+v", m)
	}

	// The kernel and initrd: GET and HEAD, Range; a missing file is 404,
	// a traversal 400.
	r = f.want(f.do("GET", "/boot/vmlinuz?mac="+hyp, "", "Range", "bytes=7-11"), 206, "kernel range")
	if r.body != "bytes" || !strings.Contains(r.header.Get("Content-Disposition"), "attachment") {
		t.Errorf("kernel range = %q (%q)", r.body, r.header.Get("Content-Disposition"))
	}
	f.want(f.do("HEAD", "/boot/initrd.img", ""), 200, "HEAD initrd")
	if r := f.want(f.do("GET", "/boot/ipxe.efi?mac="+hyp, ""), 404, "missing boot file"); !strings.Contains(r.body, "no such file: ipxe.efi") {
		t.Errorf("missing boot file body = %s", r.body)
	}
	f.want(f.do("GET", "/boot/..%2Fstate%2Fadmin.token", ""), 400, "traversal")

	// The plan: inventory, with bty's plan id and agent token.
	p := f.plan()
	if p.Mode != wire.ModeInventory || p.PlanID == 0 || p.AgentToken == "" {
		t.Errorf("plan = %+v, want inventory with an id and a token", p)
	}
	// bty-web's inventory body (nulls, a disk with fields it does not
	// know, an lshw object): 204 with the token.
	inv := `{"disks":[{"path":"/dev/sda","size":"500G","vendor":null,"model":"QEMU","serial":"SER1","tran":"sata","removable":false,"readonly":false,"rota":true}],"lshw":{"id":"box"}}`
	f.want(f.do("POST", "/pxe/"+testMAC+"/inventory", inv), 401, "inventory without the plan's token")
	f.want(f.do("POST", "/pxe/"+testMAC+"/inventory", inv, "Authorization", "Bearer "+p.AgentToken), 204, "inventory")
	f.want(f.do("POST", "/pxe/"+testMAC+"/inventory", `{"disks":[],"extra":1}`), 422, "inventory with an unknown field")
	f.want(f.do("POST", "/pxe/aa:aa:aa:aa:aa:aa/inventory", `{"disks":[]}`), 404, "inventory, unknown MAC")
	if kinds := f.kinds(); !has(kinds, "pxe.client.orphan") || !has(kinds, "machine.inventory") {
		t.Errorf("events after the inventory posts = %q", kinds)
	}
	m = f.machine()
	if len(m.KnownDisks) != 1 || m.KnownDisks[0].Serial != "SER1" || m.KnownDisksAt == nil {
		t.Errorf("known_disks = %+v", m.KnownDisks)
	}
	r = f.want(f.adm("GET", "/machines/"+testMAC+"/lshw.json", ""), 200, "lshw.json")
	if r.body != `{"id":"box"}` || !strings.Contains(r.header.Get("Content-Disposition"), hyp+"-lshw.json") {
		t.Errorf("lshw.json = %s %q", r.body, r.header.Get("Content-Disposition"))
	}

	// Status: 404 unknown, 422 bad bodies, bty-web's body accepted.
	f.want(f.do("POST", "/pxe/aa:aa:aa:aa:aa:aa/status", `{"status":"done"}`), 404, "status, unknown MAC")
	for _, bad := range []string{`{"status":"ok"}`, `{"status":"done","extra":1}`, `{"status":"failed","reason":"` + strings.Repeat("x", 501) + `"}`, `not json`} {
		f.want(f.do("POST", "/pxe/"+testMAC+"/status", bad), 422, "status "+bad)
	}

	// The admin API: 401 without a token, then bty-web's Machine JSON; PUT
	// is a full replace.
	if r := f.want(f.do("GET", "/machines", ""), 401, "machines without a token"); !strings.Contains(r.body, `"detail"`) {
		t.Errorf("401 body = %s", r.body)
	}
	f.want(f.do("GET", "/machines", "", "Authorization", "Bearer nope"), 401, "machines with a bad token")
	r = f.want(f.adm("PUT", "/machines/"+hyp, `{"bty_image_ref":"`+f.ref+`","labels":["ci","rack 1"],"boot_mode":"bty-flash-once","sanboot_drive":"0x81","target_disk_serial":"SER1"}`), 200, "PUT")
	var raw map[string]any
	json.Unmarshal([]byte(r.body), &raw)
	for _, k := range []string{"mac", "bty_image_ref", "labels", "discovered_at", "last_seen_at", "last_seen_ip", "boot_mode", "sanboot_drive", "last_flashed_at", "known_disks", "known_disks_at", "target_disk_serial", "created_at", "updated_at"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("Machine JSON lacks %q: %s", k, r.body)
		}
	}
	r = f.want(f.adm("PUT", "/machines/"+testMAC, `{"boot_mode":"ipxe-exit"}`), 200, "PUT replace")
	json.Unmarshal([]byte(r.body), &m)
	if m.BtyImageRef != nil || len(m.Labels) != 0 || m.SanbootDrive != nil || m.KnownDisks == nil {
		t.Errorf("after a full replace: %+v, want the binding and labels gone, the inventory kept", m)
	}
	f.want(f.adm("PUT", "/machines/"+testMAC, `{"boot_mode":"auto"}`), 422, "PUT bad mode")
	f.want(f.adm("PUT", "/machines/"+testMAC, `{"boot_mode":"ipxe-exit","colour":"red"}`), 422, "PUT unknown field")
	r = f.want(f.adm("PATCH", "/machines/"+testMAC, `{"labels":["gpu"]}`), 200, "PATCH")
	json.Unmarshal([]byte(r.body), &m)
	if m.BootMode != "ipxe-exit" || len(m.Labels) != 1 {
		t.Errorf("after PATCH labels: %+v, want the mode kept", m)
	}
	// ipxe-exit: the firmware-aware disk boot, with the machine's drive.
	f.want(f.adm("PATCH", "/machines/"+testMAC, `{"sanboot_drive":"0x81"}`), 200, "PATCH drive")
	r = f.want(f.do("GET", "/pxe/"+hyp+"?boot=b2", ""), 200, "disk boot")
	want := "#!ipxe\necho bty: " + testMAC + " boot_mode=ipxe-exit, booting local disk (platform=${platform})\nsleep 1\niseq ${platform} efi && exit || sanboot --no-describe --drive 0x81 || exit\n"
	if r.body != want {
		t.Errorf("disk-boot script =\n%s\nwant\n%s", r.body, want)
	}
	var list []wire.Machine
	json.Unmarshal([]byte(f.want(f.adm("GET", "/machines?label=gpu", ""), 200, "machines by label").body), &list)
	if len(list) != 1 {
		t.Errorf("machines with label gpu = %d", len(list))
	}

	// Events with bty-web's filters, newest first.
	var evs wire.Events
	json.Unmarshal([]byte(f.want(f.adm("GET", "/events?subject_id="+hyp+"&kind=machine.upserted&limit=2", ""), 200, "events").body), &evs)
	if len(evs.Events) != 2 || evs.Events[0].ID < evs.Events[1].ID || evs.Events[0].Actor != "admin" {
		t.Errorf("filtered events = %+v", evs.Events)
	}
	json.Unmarshal([]byte(f.adm("GET", "/events?failed=1", "").body), &evs)
	for _, e := range evs.Events {
		if !strings.HasSuffix(e.Kind, "failed") {
			t.Errorf("failed=1 gave %s", e.Kind)
		}
	}
	f.want(f.adm("GET", "/events?limit=501", ""), 422, "events limit 501")
	f.want(f.adm("POST", "/events/1/ack", ""), 200, "ack")
	f.want(f.adm("POST", "/events/999999/ack", ""), 404, "ack missing")

	// The catalog, the image list, health and version.
	r = f.want(f.do("GET", "/catalog.toml", ""), 200, "catalog")
	if !strings.Contains(r.body, `name = 'disk.img.gz'`) && !strings.Contains(r.body, `name = "disk.img.gz"`) {
		t.Errorf("catalog.toml lacks the image:\n%s", r.body)
	}
	var imgs []map[string]any
	json.Unmarshal([]byte(f.want(f.do("GET", "/images", ""), 200, "images").body), &imgs)
	if len(imgs) != 1 || imgs[0]["name"] != testImg || imgs[0]["ref"] != f.ref || imgs[0]["sha_short"] != f.sha[:12] ||
		imgs[0]["url"] != f.ts.URL+"/images/"+testImg || imgs[0]["format"] == nil || imgs[0]["size_bytes"] == nil {
		t.Errorf("/images = %+v", imgs)
	}
	if _, ok := imgs[0]["arch"]; !ok {
		t.Errorf("/images lacks arch")
	}
	for path, want := range map[string]string{"/healthz": `{"status":"ok"}`, "/version": `{"version":"bty test"}`} {
		if r := f.want(f.do("GET", path, ""), 200, path); strings.TrimSpace(r.body) != want {
			t.Errorf("%s = %s, want %s", path, r.body, want)
		}
	}

	// DELETE: 204, then 404.
	f.want(f.adm("DELETE", "/machines/"+testMAC, ""), 204, "DELETE")
	f.want(f.adm("DELETE", "/machines/"+testMAC, ""), 404, "DELETE again")
	f.want(f.adm("GET", "/machines/"+testMAC, ""), 404, "GET deleted")

	// A Date header on every answer, whatever the route and status.
	for _, path := range []string{"/healthz", "/pxe-bootstrap.ipxe", "/pxe/bad", "/machines", "/nothing", "/metrics"} {
		r := f.do("GET", path, "")
		if d, err := http.ParseTime(r.header.Get("Date")); err != nil || time.Since(d) > time.Hour {
			t.Errorf("GET %s: Date %q", path, r.header.Get("Date"))
		}
	}
}

// TestTokens: token create and revoke; a revoked token is refused; the last
// token cannot be revoked.
func TestTokens(t *testing.T) {
	f := newFixture(t)
	r := f.want(f.adm("POST", "/tokens", `{"name":"ci"}`), 201, "create ci")
	var tok wire.Token
	json.Unmarshal([]byte(r.body), &tok)
	if tok.Name != "ci" || len(tok.Token) != 64 {
		t.Fatalf("created token = %+v", tok)
	}
	f.want(f.adm("POST", "/tokens", `{"name":"ci"}`), 409, "create ci again")
	f.want(f.adm("POST", "/tokens", `{"name":"bad name!"}`), 422, "bad name")
	f.want(f.do("GET", "/machines", "", "Authorization", "Bearer "+tok.Token), 200, "list with ci")
	f.want(f.do("DELETE", "/tokens/admin", "", "Authorization", "Bearer "+tok.Token), 204, "revoke admin with ci")
	f.want(f.adm("GET", "/machines", ""), 401, "list with revoked admin")
	f.want(f.do("DELETE", "/tokens/ci", "", "Authorization", "Bearer "+tok.Token), 409, "revoke the last token")
	var evs wire.Events
	json.Unmarshal([]byte(f.do("GET", "/events?kind=token.revoked", "", "Authorization", "Bearer "+tok.Token).body), &evs)
	if len(evs.Events) != 1 || evs.Events[0].Actor != "ci" {
		t.Errorf("token.revoked events = %+v", evs.Events)
	}
}
