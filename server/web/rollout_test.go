package web_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestDashboardRollout: a rollout under way is one line of the dashboard,
// with its machines per state, and is gone once it ended.
func TestDashboardRollout(t *testing.T) {
	h := newHarness(t)
	var ms []*machineSim
	for i := range 3 {
		m := h.newMachine(fmt.Sprintf("52:54:00:00:0d:%02x", i))
		h.api("PUT", "/machines/"+m.mac, fmt.Sprintf(`{"bty_image_ref":%q,"boot_mode":"bty-flash-once","target_disk_serial":"S%d","labels":["lab"]}`, h.ref, i))
		ms = append(ms, m)
	}
	h.api("POST", "/rollouts", fmt.Sprintf(`{"label":"lab","image":%q,"max_parallel":1}`, h.ref))
	c := noRedirect(nil)
	h.login(c)
	line := func() string {
		_, page := h.do(c, "GET", "/ui/dashboard", "")
		i := strings.Index(page, `<p class="rollout">`)
		if i < 0 {
			return ""
		}
		return page[i : i+strings.Index(page[i:], "</p>")]
	}
	if got := line(); !strings.Contains(got, "Rollout 1: "+h.image+` to <a href="/ui/machines?label=lab">lab</a>, running: 3 waiting`) {
		t.Errorf("the dashboard's rollout line: %q", got)
	}
	ms[0].boot()
	ms[0].live()
	if got := line(); !strings.Contains(got, "running: 1 flashing, 2 waiting") || !strings.Contains(got, "at most 1 at a time") {
		t.Errorf("with one machine flashing: %q", got)
	}
	h.api("POST", "/rollouts/1/cancel", "")
	ms[0].done(100)
	if got := line(); got != "" {
		t.Errorf("after the rollout ended: %q", got)
	}
}
