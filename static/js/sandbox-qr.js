// Sandbox QR page: long-poll for the phone's answer, show each state (waiting, scanned, confirmed,
// denied, expired), then send the browser to the callback the way WeChat's own QR page does (top window
// unless self_redirect=true). Framed by the site's login page, it also tells that page its state with
// postMessage (only to the callback's origin), so the page's QR card can say "scanned" and "expired":
// something the real WeChat frame never tells its parent.
(function () {
  "use strict";
  var box = document.getElementById("qr");
  if (!box) return;
  var target = box.dataset.selfRedirect === "true" ? window : window.top;
  var framed = window.parent !== window;
  var shown = "waiting";
  var over = false;

  function show(state) {
    shown = state;
    box.dataset.state = state;
    Array.prototype.forEach.call(box.querySelectorAll("[data-msg]"), function (el) {
      el.hidden = el.dataset.msg !== state;
    });
    if (framed && box.dataset.parentOrigin) {
      window.parent.postMessage({ source: "wxlogin-sandbox-qr", state: state }, box.dataset.parentOrigin);
    }
  }

  function go(result) {
    if (result.redirect) {
      over = true;
      show(result.status === "confirmed" ? "confirmed" : "denied");
      target.location.href = result.redirect;
      return true;
    }
    if (result.status === "expired") { over = true; show("expired"); return true; }
    if (result.status === "scanned" && shown !== "scanned") show("scanned");
    return false;
  }

  function poll() {
    if (over) return;
    var url = box.dataset.poll + "?uuid=" + encodeURIComponent(box.dataset.uuid) + "&last=" + shown;
    fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (result) { if (!over && !go(result)) poll(); })
      .catch(function () { setTimeout(poll, 2000); });
  }

  // Embedded in the site's 300x400 frame, the open picker replaces the QR code (sandbox.css) so
  // that every test person fits on screen; closing it brings the QR code back.
  var picker = document.getElementById("qr-simulate");
  function showPicking() { box.classList.toggle("picking", picker.open); }
  if (picker) { picker.addEventListener("toggle", showPicking); showPicking(); }

  Array.prototype.forEach.call(document.querySelectorAll(".sb-person"), function (button) {
    button.addEventListener("click", function () {
      if (over) return;
      if (picker) picker.open = false;
      var form = new FormData();
      form.append("_xsrf", box.dataset.xsrf);
      form.append("respond", "json");
      form.append("action", button.dataset.action || "allow");
      if (button.dataset.person) form.append("person", button.dataset.person);
      fetch(box.dataset.phone, { method: "POST", body: form, credentials: "same-origin" });
    });
  });
  // The code's life is known here: say "expired" on time even if the long-poll is slow to answer.
  var life = parseInt(box.dataset.expiresIn, 10);
  if (life > 0) setTimeout(function () { if (!over) { over = true; show("expired"); } }, life * 1000);
  show("waiting");
  poll();
})();
