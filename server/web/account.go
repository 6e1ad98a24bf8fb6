package web

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"bty/server/store"
	"bty/wire"
)

// The account pages: API tokens and the password.

type tokensView struct {
	Tokens   []store.TokenInfo
	NewToken *wire.Token
}

func (u *UI) tokens(w http.ResponseWriter, r *http.Request, s *store.Session) {
	u.tokensPage(w, r, s, http.StatusOK, "", nil)
}

func (u *UI) tokensPage(w http.ResponseWriter, r *http.Request, s *store.Session, code int, failure string, made *wire.Token) {
	v := tokensView{NewToken: made}
	err := u.opt.Store.View(r.Context(), func(tx *store.Tx) (err error) {
		v.Tokens, err = tx.TokenList()
		return err
	})
	if err != nil {
		u.fail(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	u.render(w, r, code, "tokens", view{Title: "Tokens", Nav: "tokens", Session: s, Error: failure, Data: v})
}

// pageFailed shows the tokens page again with the API's reason.
func (u *UI) pageFailed(w http.ResponseWriter, r *http.Request, s *store.Session, err error) {
	var ae *APIError
	if errors.As(err, &ae) {
		u.tokensPage(w, r, s, ae.Code, ae.Detail, nil)
		return
	}
	u.failAPI(w, r, s, err)
}

// createToken makes an API token and shows it, once.
func (u *UI) createToken(w http.ResponseWriter, r *http.Request, s *store.Session) {
	var tok wire.Token
	if err := u.call(r, s, "POST", "/tokens", wire.Token{Name: strings.TrimSpace(r.PostFormValue("name"))}, &tok); err != nil {
		u.pageFailed(w, r, s, err)
		return
	}
	u.tokensPage(w, r, s, http.StatusCreated, "", &tok)
}

func (u *UI) revokeToken(w http.ResponseWriter, r *http.Request, s *store.Session) {
	if err := u.call(r, s, "DELETE", "/tokens/"+url.PathEscape(r.PathValue("name")), nil, nil); err != nil {
		u.pageFailed(w, r, s, err)
		return
	}
	seeOther(w, r, "/ui/tokens", "revoked")
}

func (u *UI) changePassword(w http.ResponseWriter, r *http.Request, s *store.Session) {
	pw := r.PostFormValue("password")
	if pw != r.PostFormValue("confirm") {
		u.tokensPage(w, r, s, http.StatusUnprocessableEntity, "The two passwords differ: type the same one twice.", nil)
		return
	}
	if err := u.call(r, s, "PUT", "/admin/password", wire.Password{Password: pw}, nil); err != nil {
		u.pageFailed(w, r, s, err)
		return
	}
	seeOther(w, r, "/ui/tokens", "password")
}
