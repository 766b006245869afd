// techbridge staff console: the little script a page needs (no inline scripts: CSP).
// An element with data-refresh="URL" and data-every="SECONDS" is reloaded from URL.
(function () {
  "use strict";
  function refresh(el) {
    var every = Math.max(2, parseInt(el.getAttribute("data-every") || "10", 10)) * 1000;
    function tick() {
      fetch(el.getAttribute("data-refresh"), { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { if (!r.ok || r.redirected) { throw new Error(String(r.status)); } return r.text(); })
        .then(function (html) {
          el.innerHTML = html;
          el.setAttribute("data-refreshed", String(Date.now()));
          // A part that says it is finished stops refreshing.
          if (el.querySelector("[data-finished=yes]")) { el.removeAttribute("data-refresh"); }
        })
        .catch(function () { el.setAttribute("data-refresh-failed", String(Date.now())); })
        .then(function () { if (el.hasAttribute("data-refresh")) { window.setTimeout(tick, every); } });
    }
    window.setTimeout(tick, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var live = document.querySelectorAll("[data-refresh]");
    for (var i = 0; i < live.length; i++) { refresh(live[i]); }
  });
})();
