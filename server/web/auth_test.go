package web_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"bty/catalog"
	"bty/server"
	"bty/server/web"
)

const form = "application/x-www-form-urlencoded"

// csrfOf returns the CSRF token in a page's forms.
func csrfOf(t *testing.T, page string) string {
	t.Helper()
	_, after, ok := strings.Cut(page, `name="csrf" value="`)
	if !ok {
		t.Fatalf("no CSRF token in the page:\n%.400s", page)
	}
	return after[:strings.IndexByte(after, '"')]
}

// TestLoginAsBtyWeb: bty-web's agent flow works: POST /ui/login with the
// password gets 303 to /ui/dashboard and the bty-token cookie (HttpOnly,
// SameSite), and the cookie then opens the JSON API; a wrong password gets
// the login page again (200) and is an event.
func TestLoginAsBtyWeb(t *testing.T) {
	h := newHarness(t)
	c := noRedirect(nil)
	req, _ := http.NewRequest("POST", h.ts.URL+"/ui/login", strings.NewReader(url.Values{"password": {h.password}}.Encode()))
	req.Header.Set("Content-Type", form)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/dashboard" {
		t.Fatalf("POST /ui/login = %d Location %q, want 303 /ui/dashboard", res.StatusCode, res.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, ck := range res.Cookies() {
		if ck.Name == web.CookieName {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" {
		t.Fatalf("session cookie = %+v, want bty-token, HttpOnly, SameSite=Strict, Path=/", cookie)
	}
	code, body := h.do(c, "GET", "/machines", "")
	h.want(code, body, 200, "GET /machines with the session cookie")
	code, body = h.do(c, "PUT", "/machines/52:54:00:00:00:01", `{"boot_mode":"bty-tui","labels":["lab"]}`, "Content-Type", "application/json")
	h.want(code, body, 200, "PUT /machines with the session cookie")
	if evs := h.events("machine.created"); len(evs) != 1 || evs[0].Actor != "ui:admin" {
		t.Errorf("machine.created events = %+v, want one by ui:admin", evs)
	}
	// The same cookie from another origin's page is refused (CSRF).
	code, body = h.do(c, "DELETE", "/machines/52:54:00:00:00:01", "", "Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site")
	h.want(code, body, http.StatusForbidden, "DELETE /machines from another origin with the cookie")

	code, body = h.do(noRedirect(nil), "POST", "/ui/login", "password=wrong", "Content-Type", form)
	if code != 200 || !strings.Contains(body, "Invalid password.") {
		t.Errorf("a wrong password: %d, want 200 and the login page with \"Invalid password.\"", code)
	}
	if evs := h.events("auth.login.failed"); len(evs) != 1 || evs[0].SourceIP == nil || *evs[0].SourceIP != "127.0.0.1" {
		t.Errorf("auth.login.failed events = %+v, want one from 127.0.0.1", evs)
	}
}

// TestLoginRateLimited: after five failed logins from an address, the
// sixth attempt is refused (429) without trying the password, even the right
// one; a token login from elsewhere would not be affected, and the window
// passing lets the address in again.
func TestLoginRateLimited(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 5; i++ {
		code, body := h.do(nil, "POST", "/ui/login", "password=guess", "Content-Type", form)
		h.want(code, body, 200, "a failed login")
	}
	code, body := h.do(nil, "POST", "/ui/login", url.Values{"password": {h.password}}.Encode(), "Content-Type", form)
	if code != http.StatusTooManyRequests || !strings.Contains(body, "Too many failed logins") {
		t.Fatalf("the sixth login = %d, want 429 \"Too many failed logins\"", code)
	}
	if n := len(h.events("auth.login.failed")); n != 5 {
		t.Errorf("%d auth.login.failed events, want 5 (a refused attempt is not tried)", n)
	}
	h.tick(11 * 60e9)
	h.login(noRedirect(nil))
}

// TestTokenLogin: an API token logs in too, and the session ends when the
// token is revoked.
func TestTokenLogin(t *testing.T) {
	h := newHarness(t)
	c := noRedirect(nil)
	tok := h.api("POST", "/tokens", `{"name":"ci"}`)
	secret := tok[strings.Index(tok, `"token":"`)+9:]
	secret = secret[:strings.IndexByte(secret, '"')]
	code, body := h.do(c, "POST", "/ui/login", "password="+secret, "Content-Type", form)
	h.want(code, body, http.StatusSeeOther, "log in with a token")
	code, body = h.do(c, "GET", "/ui/dashboard", "")
	h.want(code, body, 200, "the dashboard")
	h.api("DELETE", "/tokens/ci", "")
	code, body = h.do(c, "GET", "/ui/dashboard", "")
	h.want(code, body, http.StatusSeeOther, "the dashboard after the token was revoked")
}

// TestFormsNeedCSRF: a form posted with the session cookie but without the
// page's CSRF token is refused (what a browser that sends neither Origin nor
// Sec-Fetch-Site would let through CrossOriginProtection); with it, it works.
func TestFormsNeedCSRF(t *testing.T) {
	h := newHarness(t)
	c := noRedirect(nil)
	h.login(c)
	h.newMachine("52:54:00:00:00:02").boot()
	_, page := h.do(c, "GET", "/ui/tokens", "")
	token := csrfOf(t, page)
	for _, tc := range []struct {
		name, body string
		want       int
	}{
		{"no token", "name=nope", http.StatusForbidden},
		{"another token", "name=nope&csrf=00112233445566778899aabbccddeeff", http.StatusForbidden},
		{"the page's token", "name=made&csrf=" + token, http.StatusCreated},
	} {
		code, body := h.do(c, "POST", "/ui/tokens", tc.body, "Content-Type", form)
		if code != tc.want {
			t.Errorf("%s: POST /ui/tokens = %d, want %d\n%.300s", tc.name, code, tc.want, body)
		}
	}
	if evs := h.events("token.created"); len(evs) != 1 || evs[0].SubjectID != "made" {
		t.Errorf("token.created events = %+v, want only the one with the page's token", evs)
	}
}

// TestLogoutEndsSession: after logout the cookie no longer opens anything,
// even replayed (the session row is gone, not only the cookie).
func TestLogoutEndsSession(t *testing.T) {
	h := newHarness(t)
	c := noRedirect(nil)
	h.login(c)
	u, _ := url.Parse(h.ts.URL)
	old := c.Jar.Cookies(u)
	_, page := h.do(c, "GET", "/ui/dashboard", "")
	code, body := h.do(c, "POST", "/ui/logout", "csrf="+csrfOf(t, page), "Content-Type", form)
	h.want(code, body, http.StatusSeeOther, "POST /ui/logout")
	replay := noRedirect(nil)
	replay.Jar.SetCookies(u, old)
	code, body = h.do(replay, "GET", "/ui/dashboard", "")
	h.want(code, body, http.StatusSeeOther, "the dashboard with the old cookie")
	code, body = h.do(replay, "GET", "/machines", "")
	h.want(code, body, http.StatusUnauthorized, "the API with the old cookie")
	if len(h.events("auth.logout")) != 1 {
		t.Error("no auth.logout event")
	}
}

// TestSessionSurvivesRestart: sessions are in the store, so a new server on
// the same database (a restart, or a second server) knows them.
func TestSessionSurvivesRestart(t *testing.T) {
	h := newHarness(t)
	c := noRedirect(nil)
	h.login(c)
	u, _ := url.Parse(h.ts.URL)
	srv2 := server.New(server.Options{Store: h.st, Catalog: catalog.NewServer(catalog.ServerOptions{Dir: h.dir}), ImagesDir: h.dir, BaseURL: "http://other:8080"})
	defer srv2.Close()
	req, _ := http.NewRequest("GET", "/ui/machines", nil)
	for _, ck := range c.Jar.Cookies(u) {
		req.AddCookie(ck)
	}
	rec := httptest.NewRecorder()
	srv2.ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "<h1>Machines</h1>") {
		t.Errorf("the other server answered %d, want the machine list", rec.Code)
	}
}

// TestPasswordChange: PUT /admin/password (bty fleet password) sets a new
// password; the old one no longer logs in, and its sessions end.
func TestPasswordChange(t *testing.T) {
	h := newHarness(t)
	c := noRedirect(nil)
	h.login(c)
	code, body := h.do(nil, "PUT", "/admin/password", `{"password":"short"}`, "Authorization", "Bearer "+h.admin)
	h.want(code, body, http.StatusUnprocessableEntity, "a short password")
	h.api("PUT", "/admin/password", `{"password":"a new long password"}`)
	code, body = h.do(c, "GET", "/ui/dashboard", "")
	h.want(code, body, http.StatusSeeOther, "the dashboard of a session of the old password")
	code, body = h.do(nil, "POST", "/ui/login", url.Values{"password": {h.password}}.Encode(), "Content-Type", form)
	h.want(code, body, 200, "the old password")
	h.password = "a new long password"
	h.login(noRedirect(nil))
}
