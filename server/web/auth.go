package web

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"bty/server/store"
	"bty/wire"
)

// Logins, sessions and the CSRF defence.
//
// A session is a random cookie (bty-token, bty-web's name; HttpOnly,
// SameSite=Strict) whose sha256 is a row of the store. Forms carry the
// session's CSRF token as well as passing http.CrossOriginProtection: the
// latter refuses a cross-origin browser request by Sec-Fetch-Site or Origin,
// and lets through a request with neither (an old browser, or a page on
// plain HTTP from a browser that sends no Origin); the token covers that
// case. The login form has no session yet, so it has only
// CrossOriginProtection.

const (
	// CookieName is the session cookie's name, as bty-web's: agents that log
	// in with POST /ui/login and replay the cookie keep working.
	CookieName = "bty-token"
	// sessionIdle: a session unused this long ends (bty-web's max_age); one
	// in use is renewed at most every sessionRenew, to spare the store a
	// write per page.
	sessionIdle  = 7 * 24 * time.Hour
	sessionRenew = time.Hour
	// A client address with loginFailures failed logins in loginWindow is
	// refused until the oldest of them leaves the window: five guesses per
	// ten minutes, and the KDF's cost per guess is paid only for those.
	loginFailures = 5
	loginWindow   = 10 * time.Minute
	// PasswordSetting names the password's hash in the store's settings.
	PasswordSetting = "admin_password"
	// passwordActor is who acts in a password session's events (a token
	// session acts as "ui:" and the token's name).
	passwordActor = "ui:admin"
)

// ErrNoSession: the request has no valid session cookie.
var ErrNoSession = errors.New("no session")

// ErrCrossOrigin: a request with a session cookie came from another origin.
var ErrCrossOrigin = errors.New("refused: a cross-origin request (CSRF); send Authorization: Bearer TOKEN from scripts")

// pbkdf2Iter is PBKDF2-HMAC-SHA256's cost, OWASP's 2023 figure; about 0.4 s
// on the 2-core build machine. golang.org/x/crypto (argon2, bcrypt) is not
// a dependency of bty; the standard library has PBKDF2.
const pbkdf2Iter = 600_000

// HashPassword returns the stored form of a password:
// pbkdf2-sha256$ITER$SALT$KEY (base64, no padding).
func HashPassword(pw string) (string, error) {
	salt := make([]byte, 16)
	rand.Read(salt)
	key, err := pbkdf2.Key(sha256.New, pw, salt, pbkdf2Iter, 32)
	if err != nil {
		return "", err
	}
	b64 := base64.RawStdEncoding.EncodeToString
	return fmt.Sprintf("pbkdf2-sha256$%d$%s$%s", pbkdf2Iter, b64(salt), b64(key)), nil
}

// checkPassword reports whether pw matches the stored hash.
func checkPassword(hash, pw string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 4 || parts[0] != "pbkdf2-sha256" {
		return false
	}
	iter, err := strconv.Atoi(parts[1])
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[2])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[3])
	if err != nil || err1 != nil || err2 != nil || iter < 1 || iter > 10_000_000 || len(want) == 0 {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, pw, salt, iter, len(want))
	return err == nil && subtle.ConstantTimeCompare(got, want) == 1
}

// ValidPassword checks a new password.
func ValidPassword(pw string) error {
	switch {
	case len(pw) < 8:
		return errors.New("the password is shorter than 8 characters")
	case len(pw) > 1024:
		return errors.New("the password is longer than 1024 bytes")
	case strings.ContainsAny(pw, "\r\n\x00"):
		return errors.New("the password has a line break or NUL in it")
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// authEvent logs a login, logout or password change.
func authEvent(tx *store.Tx, now time.Time, kind, actor, ip, summary string) error {
	return tx.AddEvent(&store.Event{TS: now, Kind: kind, SubjectKind: "auth", SubjectID: "ui", Actor: actor, SourceIP: ip, Summary: summary})
}

// session returns the request's valid session, renewing it (and its
// cookie) when it is due; ErrNoSession when there is none.
func (u *UI) session(w http.ResponseWriter, r *http.Request) (*store.Session, error) {
	if s, ok := r.Context().Value(sessionKey{}).(*store.Session); ok {
		return s, nil
	}
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" || len(c.Value) > 128 {
		return nil, ErrNoSession
	}
	now := u.opt.Now()
	var s *store.Session
	err = u.opt.Store.View(r.Context(), func(tx *store.Tx) (err error) {
		s, err = tx.Session(store.HashToken(c.Value), now)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, err
	}
	if w != nil && now.Sub(s.SeenAt) > sessionRenew {
		s.SeenAt, s.ExpiresAt = now, now.Add(sessionIdle)
		if err := u.opt.Store.Update(r.Context(), func(tx *store.Tx) error { return tx.TouchSession(s.IDHash, s.SeenAt, s.ExpiresAt) }); err != nil {
			return nil, err
		}
		setCookie(w, r, c.Value, sessionIdle)
	}
	return s, nil
}

func setCookie(w http.ResponseWriter, r *http.Request, value string, age time.Duration) {
	c := &http.Cookie{Name: CookieName, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: int(age / time.Second)}
	if age <= 0 {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

// Authenticate is the admin API's check of a session cookie (an agent that
// logged in at /ui/login, or the UI's own in-process calls): it returns who
// acts, ErrNoSession when there is no session, or ErrCrossOrigin for a
// cross-origin browser request.
func (u *UI) Authenticate(r *http.Request) (string, error) {
	if s, ok := r.Context().Value(sessionKey{}).(*store.Session); ok {
		return s.Actor, nil
	}
	s, err := u.session(nil, r)
	if err != nil {
		return "", err
	}
	if err := u.cop.Check(r); err != nil {
		return "", ErrCrossOrigin
	}
	return s.Actor, nil
}

// page wraps a page: without a session it sends the browser to the login.
func (u *UI) page(h func(http.ResponseWriter, *http.Request, *store.Session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := u.session(w, r)
		if errors.Is(err, ErrNoSession) {
			if r.URL.Path == "/ui/live" {
				http.Error(w, "log in first", http.StatusUnauthorized)
				return
			}
			to := "/ui/login"
			if r.URL.Path != "/ui/dashboard" {
				to += "?next=" + url.QueryEscape(r.URL.RequestURI())
			}
			http.Redirect(w, r, to, http.StatusSeeOther)
			return
		}
		if err != nil {
			u.fail(w, r, nil, http.StatusInternalServerError, err.Error())
			return
		}
		h(w, r, s)
	}
}

// action wraps a form: a session and its CSRF token are required (the
// cross-origin check came first, in ServeHTTP).
func (u *UI) action(h func(http.ResponseWriter, *http.Request, *store.Session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		s, err := u.session(w, r)
		if errors.Is(err, ErrNoSession) {
			u.fail(w, r, nil, http.StatusUnauthorized, "your session has ended: log in again")
			return
		}
		if err != nil {
			u.fail(w, r, nil, http.StatusInternalServerError, err.Error())
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.CSRF)) != 1 {
			u.fail(w, r, s, http.StatusForbidden, "refused: the form has no valid CSRF token (it was not sent from this site's page, or the page is older than your session); reload the page and try again")
			return
		}
		h(w, r, s)
	}
}

type loginView struct {
	Next     string
	Throttle bool
}

func (u *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, err := u.session(nil, r); err == nil {
		http.Redirect(w, r, "/ui/dashboard", http.StatusSeeOther)
		return
	}
	u.render(w, r, http.StatusOK, "login", view{Title: "Log in", Data: loginView{Next: safeNext(r.URL.Query().Get("next"))}})
}

// safeNext is where to go after the login: a page of the UI, else the
// dashboard.
func safeNext(next string) string {
	if strings.HasPrefix(next, "/ui/") && !strings.HasPrefix(next, "//") && !strings.ContainsAny(next, "\\\r\n") && !strings.HasPrefix(next, "/ui/live") {
		return next
	}
	return "/ui/dashboard"
}

// login answers POST /ui/login (form: password, which may also be an API
// token): 303 to the dashboard with the session cookie, as bty-web; a wrong
// password gets the login page again (200, bty-web's) and is an event;
// too many from one address lately get 429.
func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	pw := r.PostFormValue("password")
	next := safeNext(r.PostFormValue("next"))
	ip, now := clientIP(r), u.opt.Now()
	lv := loginView{Next: next}
	var failures int
	err := u.opt.Store.View(r.Context(), func(tx *store.Tx) (err error) {
		failures, err = tx.CountEvents("auth.login.failed", ip, now.Add(-loginWindow))
		return err
	})
	if err != nil {
		u.fail(w, r, nil, http.StatusInternalServerError, err.Error())
		return
	}
	if failures >= loginFailures {
		lv.Throttle = true
		w.Header().Set("Retry-After", strconv.Itoa(int(loginWindow/time.Second)))
		u.render(w, r, http.StatusTooManyRequests, "login", view{Title: "Log in", Data: lv,
			Error: fmt.Sprintf("Too many failed logins from %s: wait up to %d minutes and try again.", ip, int(loginWindow/time.Minute))})
		return
	}
	// An API token first (a hash lookup), then the password (the KDF).
	var actor, tokenHash, pwHash string
	err = u.opt.Store.View(r.Context(), func(tx *store.Tx) error {
		if pw == "" {
			return nil
		}
		h := store.HashToken(pw)
		if name, err := tx.TokenName(h); err == nil {
			actor, tokenHash = "ui:"+name, h
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		pwHash, _ = tx.Setting(PasswordSetting)
		return nil
	})
	if err != nil {
		u.fail(w, r, nil, http.StatusInternalServerError, err.Error())
		return
	}
	if actor == "" && pwHash != "" && checkPassword(pwHash, pw) {
		actor = passwordActor
	}
	if actor == "" {
		err := u.opt.Store.Update(r.Context(), func(tx *store.Tx) error {
			return authEvent(tx, now, "auth.login.failed", "anonymous", ip, "failed login from "+ip)
		})
		if err != nil {
			u.opt.Logf("web: log a failed login: %v", err)
		}
		u.render(w, r, http.StatusOK, "login", view{Title: "Log in", Data: lv, Error: "Invalid password."})
		return
	}
	cookie := randomHex(32)
	s := &store.Session{IDHash: store.HashToken(cookie), Actor: actor, TokenHash: tokenHash, CSRF: randomHex(16), SourceIP: ip,
		CreatedAt: now, SeenAt: now, ExpiresAt: now.Add(sessionIdle)}
	err = u.opt.Store.Update(r.Context(), func(tx *store.Tx) error {
		if err := tx.PruneSessions(now); err != nil {
			return err
		}
		if err := tx.AddSession(s); err != nil {
			return err
		}
		return authEvent(tx, now, "auth.login.succeeded", actor, ip, actor+" logged in from "+ip)
	})
	if err != nil {
		u.fail(w, r, nil, http.StatusInternalServerError, err.Error())
		return
	}
	setCookie(w, r, cookie, sessionIdle)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the session: POST /ui/logout, 303 to the login (bty-web's).
func (u *UI) logout(w http.ResponseWriter, r *http.Request, s *store.Session) {
	now := u.opt.Now()
	err := u.opt.Store.Update(r.Context(), func(tx *store.Tx) error {
		if err := tx.DeleteSession(s.IDHash); err != nil {
			return err
		}
		return authEvent(tx, now, "auth.logout", s.Actor, clientIP(r), s.Actor+" logged out")
	})
	if err != nil {
		u.fail(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	setCookie(w, r, "", 0)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// SetPassword is the admin API's PUT /admin/password ({"password"}), as
// actor: the new password's hash replaces the old one, and the sessions that
// logged in with the old one end (but the caller's own, when it is one).
func (u *UI) SetPassword(w http.ResponseWriter, r *http.Request, actor string) {
	var req wire.Password
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, wire.Error{Detail: "bad body: " + err.Error()})
		return
	}
	if err := ValidPassword(req.Password); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, wire.Error{Detail: err.Error()})
		return
	}
	hash, err := HashPassword(req.Password)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, wire.Error{Detail: err.Error()})
		return
	}
	keep := ""
	if s, ok := r.Context().Value(sessionKey{}).(*store.Session); ok {
		keep = s.IDHash
	}
	now := u.opt.Now()
	err = u.opt.Store.Update(r.Context(), func(tx *store.Tx) error {
		if err := tx.PutSetting(PasswordSetting, hash, now); err != nil {
			return err
		}
		n, err := tx.EndPasswordSessions(keep)
		if err != nil {
			return err
		}
		return authEvent(tx, now, "auth.password.changed", actor, clientIP(r), fmt.Sprintf("the password was changed; %d sessions ended", n))
	})
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, wire.Error{Detail: err.Error()})
		return
	}
	if u.opt.PasswordFile != "" {
		if err := os.Remove(u.opt.PasswordFile); err == nil {
			u.opt.Logf("the first-start password in %s is no longer valid: removed it", u.opt.PasswordFile)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
