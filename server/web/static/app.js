// bty fleet: live updates. Every page works without this file. With it, the
// page listens to /ui/live (Server-Sent Events); on each "change" it fetches
// itself again and swaps in the new version of its [data-live] parts, keeping
// the focus and anything being typed. About forty lines instead of a
// library: this is all the page needs.
(function () {
  'use strict';
  if (!window.EventSource || !window.fetch || !window.DOMParser) return;
  var badge = document.getElementById('live');
  if (!badge || !document.querySelector('[data-live]')) return;
  var busy = false, again = false;

  function say(on, text) {
    badge.hidden = false;
    badge.textContent = text;
    badge.className = on ? 'live on' : 'live';
  }

  function swap(html) {
    var doc = new DOMParser().parseFromString(html, 'text/html');
    var active = document.activeElement, focusID = active && active.id;
    document.querySelectorAll('[data-live][id]').forEach(function (el) {
      var next = doc.getElementById(el.id);
      if (!next) return;
      if (active && el.contains(active) && active.matches('input, select, textarea')) return; // being edited
      el.replaceWith(document.importNode(next, true));
    });
    if (focusID && !document.body.contains(active)) {
      var same = document.getElementById(focusID);
      if (same) same.focus();
    }
    document.dispatchEvent(new CustomEvent('bty:updated'));
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { credentials: 'same-origin', headers: { 'X-Bty-Live': '1' } })
      .then(function (r) {
        if (r.redirected && /\/ui\/login/.test(r.url)) { location.reload(); return null; } // the session ended
        return r.ok ? r.text() : null;
      })
      .then(function (html) { if (html) swap(html); })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }

  var es = new EventSource('/ui/live');
  es.addEventListener('open', function () { say(true, 'Live'); });
  es.addEventListener('error', function () { say(false, es.readyState === EventSource.CLOSED ? 'Not live: reload the page' : 'Reconnecting'); });
  es.addEventListener('change', refresh);
})();
