// Package web is the fleet in a browser: the pages of `bty serve --state`
// under /ui/, rendered on the server (html/template) from the store and the
// fleet server's own reads, with every action a form that posts. The actions
// run the admin API in-process as the logged-in user, so the UI and the API
// cannot disagree on a rule; live updates come over Server-Sent Events where
// JavaScript runs, and each page works without it.
//
//	browser --GET /ui/machines------------------> page (Fleet.Machines + store reads)
//	        --POST /ui/machines/M/reflash (form)-> CrossOriginProtection, session, CSRF token
//	                                               -> POST /machines/M/reflash (API, in-process) -> 303
//	        --GET /ui/live (EventSource)--------> "change" <- broker <- the server's writes (Changed)
//	                                                                <- store fingerprint, polled (other servers)
//	        app.js on "change": fetch the page again, swap its [data-live] parts
//
// Logins take the admin password (PBKDF2-SHA256, in the store's settings) or
// an API token; a session is a row in the store (its cookie, bty-token, as
// bty-web's), so it survives a restart and holds on every server of one
// database. Failed logins are events, and an address with too many of them
// lately is refused for a while.
package web
