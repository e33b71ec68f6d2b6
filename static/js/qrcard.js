// The website QR card on the desktop /login: tells the QR's state and keeps the page usable however long
// the tab stays open, without a reload.
//   loading    the frame is fetching WeChat's QR page
//   waiting    the QR is up (the hint under the card says what to do)
//   scanned    the phone has it, confirm there: only the sandbox's emulated QR can say so (postMessage from
//              the frame, accepted from that frame and origin only); real WeChat's frame tells its parent nothing
//   confirmed  WeChat is sending this window to the callback
//   expired    WeChat's QR lives qr_max_age (5 minutes): dimmed, "click to refresh"
//   failed / unavailable   a renewal did not work (network; the service cannot sign anyone in)
// Renewal (POST /login/qr with the XSRF token) binds a fresh state to this browser and answers the frame's
// new URL: on a click once expired, and by itself before the page's state runs out (state_max_age).
// Loaded as a file: the CSP allows no inline script. The texts are in the page (Chinese or English).
(function () {
  "use strict";
  var card = document.getElementById("qrcard");
  if (!card || !card.dataset.renew) return;
  var frame = card.querySelector("iframe");
  var qrLife = 1000 * (parseInt(card.dataset.qrLife, 10) || 300);
  var stateLife = 1000 * (parseInt(card.dataset.stateLife, 10) || 600);
  var frameOrigin = card.dataset.frameOrigin || "";
  var FINAL = { expired: 1, failed: 1, unavailable: 1 };
  var shownAt = 0;       // when the QR now in the frame appeared
  var timers = [];
  var renewing = false;
  var renewals = 0;

  function show(name) {
    card.dataset.state = name;
    Array.prototype.forEach.call(card.querySelectorAll("[data-msg]"), function (el) {
      el.hidden = el.dataset.msg !== name;
    });
    card.querySelector(".qr-expired").hidden = name !== "expired";
    card.querySelector(".scene-refresh").hidden = !(name === "failed" || name === "unavailable");
  }

  function clearTimers() {
    timers.forEach(function (t) { window.clearTimeout(t); });
    timers = [];
  }

  // Renew a little before the state's end: a quarter of its life, at most a minute, before it.
  function renewAfter() { return stateLife - Math.min(60000, stateLife / 4); }

  // A fresh QR is on screen: count its life and the state's from now.
  function arm() {
    clearTimers();
    shownAt = Date.now();
    timers.push(window.setTimeout(expire, qrLife));
    if (renewAfter() < qrLife) timers.push(window.setTimeout(renewBeforeStateEnds, renewAfter()));
  }

  function expire() {
    if (card.dataset.state === "confirmed" || renewing) return;
    clearTimers();
    show("expired");
  }

  function renewBeforeStateEnds() {
    // Never pull the code away while the person confirms on the phone; the state may then run out.
    var state = card.dataset.state;
    if (state === "scanned" || state === "confirmed" || FINAL[state]) return;
    renew();
  }

  function renew() {
    if (renewing) return;
    renewing = true;
    clearTimers();
    show("loading");
    var body = new URLSearchParams();
    body.append("next", card.dataset.next || "/");
    fetch(card.dataset.renew, {
      method: "POST", credentials: "same-origin", body: body,
      headers: { "X-XSRFToken": card.dataset.xsrf, "Accept": "application/json" }
    }).then(function (response) {
      // A stale XSRF token: this browser signed in (or out) in another tab since the page was drawn. A reload
      // gets a fresh page, or sends a signed-in browser on to where it was going.
      if (response.status === 403) { window.location.reload(); return; }
      return response.json().then(function (answer) {
        renewing = false;
        if (answer.next) { window.location.assign(answer.next); return; }  // signed in meanwhile (another tab)
        if (!response.ok || !answer.url) {
          show(answer.error === "database_unavailable" ? "unavailable" : "failed");
          return;
        }
        if (answer.qr_max_age) qrLife = 1000 * answer.qr_max_age;
        if (answer.state_max_age) stateLife = 1000 * answer.state_max_age;
        renewals += 1;
        card.dataset.renewals = String(renewals);
        frame.src = answer.url;  // "load" (or the sandbox's "waiting") shows it and arms the timers
      });
    }).catch(function () { renewing = false; show("failed"); });
  }

  function loaded() {
    if (card.dataset.state !== "loading") return;
    show("waiting");
    arm();
  }

  frame.addEventListener("load", loaded);
  window.addEventListener("message", function (event) {
    if (!frameOrigin || event.origin !== frameOrigin || event.source !== frame.contentWindow) return;
    var data = event.data;
    if (!data || data.source !== "wxlogin-sandbox-qr") return;
    if (data.state === "waiting") loaded();
    else if (data.state === "scanned" && !FINAL[card.dataset.state]) show("scanned");
    else if (data.state === "confirmed") { clearTimers(); show("confirmed"); }
    else if (data.state === "expired") expire();
  });
  Array.prototype.forEach.call(card.querySelectorAll("[data-action=refresh]"), function (button) {
    button.addEventListener("click", renew);
  });
  // Timers sleep in a background tab: on return, catch up with what the clock says.
  document.addEventListener("visibilitychange", function () {
    if (document.hidden || !shownAt || renewing || FINAL[card.dataset.state]) return;
    var age = Date.now() - shownAt;
    if (age >= qrLife) expire();
    else if (age >= renewAfter()) renewBeforeStateEnds();
  });

  // The frame may have finished loading before this deferred script ran: then no "load" will come.
  var done = false;
  try { done = frame.contentDocument !== null && frame.contentDocument.readyState === "complete"
               && frame.contentWindow.location.href !== "about:blank"; } catch (e) { done = false; }
  show("loading");
  if (done) loaded();
  else timers.push(window.setTimeout(loaded, 5000));  // another origin's frame that loaded unseen
})();
