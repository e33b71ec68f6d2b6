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

  Array.prototype.forEach.call(document.querySelectorAll(".sb-person"), function (button) {
    button.addEventListener("click", function () {
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
