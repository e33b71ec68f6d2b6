// Sandbox QR page: long-poll for the phone's answer, then send the browser to the callback,
// the way WeChat's own QR page does (top window unless self_redirect=true).
(function () {
  "use strict";
  var box = document.getElementById("qr");
  if (!box) return;
  var status = document.getElementById("qr-status");
  var target = box.dataset.selfRedirect === "true" ? window : window.top;

  function go(result) {
    if (result.redirect) {
      status.textContent = result.status === "confirmed" ? "已确认，正在登录…" : "已取消";
      target.location.href = result.redirect;
      return true;
    }
    if (result.status === "expired") { status.textContent = "二维码已失效，请刷新页面"; return true; }
    return false;
  }

  function poll() {
    fetch(box.dataset.poll + "?uuid=" + encodeURIComponent(box.dataset.uuid), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (result) { if (!go(result)) poll(); })
      .catch(function () { setTimeout(poll, 2000); });
  }

  // Embedded in the site's 300x400 frame, the open picker replaces the QR code (sandbox.css) so
  // that every test person fits on screen; closing it brings the QR code back.
  var picker = document.getElementById("qr-simulate");
  function showPicking() { box.classList.toggle("picking", picker.open); }
  if (picker) { picker.addEventListener("toggle", showPicking); showPicking(); }

  Array.prototype.forEach.call(document.querySelectorAll(".sb-person"), function (button) {
    button.addEventListener("click", function () {
      if (picker) picker.open = false;
      status.textContent = button.dataset.action === "deny" ? "正在取消…" : "已扫码（" + button.textContent + "），正在登录…";
      var form = new FormData();
      form.append("_xsrf", box.dataset.xsrf);
      form.append("respond", "json");
      form.append("action", button.dataset.action || "allow");
      if (button.dataset.person) form.append("person", button.dataset.person);
      fetch(box.dataset.phone, { method: "POST", body: form, credentials: "same-origin" });
    });
  });
  poll();
})();
