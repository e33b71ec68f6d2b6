// The scan-login waiting page (follow QR, mini-program code): follows the scene with server-sent events,
// or by long-polling where EventSource is missing or keeps failing, and once the phone has confirmed,
// signs this browser in (POST .../complete, with the XSRF token) and goes on without a reload of the page.
// Loaded as a file: the CSP allows no inline script. The texts are in the page (Chinese or English).
(function () {
  "use strict";
  var box = document.getElementById("scene");
  if (!box) return;
  var FINAL = { expired: 1, refused: 1, failed: 1 };
  var state = "waiting";
  var finished = false;
  var source = null;
  var failures = 0;

  function show(name) {
    box.dataset.state = name;
    Array.prototype.forEach.call(box.querySelectorAll("[data-msg]"), function (el) {
      el.hidden = el.dataset.msg !== name;
    });
    box.querySelector(".scene-refresh").hidden = !FINAL[name];
  }

  function stop() {
    finished = true;
    if (source) { source.close(); source = null; }
  }

  function stateOfError(code) {
    if (code === "scene_refused") return "refused";
    if (code === "scene_expired" || code === "scene_not_found" || code === "scene_used") return "expired";
    return "failed";
  }

  function complete() {
    fetch(box.dataset.complete, {
      method: "POST", credentials: "same-origin",
      headers: { "X-XSRFToken": box.dataset.xsrf, "Accept": "application/json" }
    }).then(function (response) {
      return response.json().then(function (body) {
        if (response.ok && body.next) {
          window.location.assign(body.next);
        } else {
          show(stateOfError(body.error));
        }
      });
    }).catch(function () { show("failed"); });
  }

  // A state the server reported: show it, and act on it.
  function settle(name) {
    if (finished || name === state) return;
    state = name;
    if (name === "done") {  // another tab of this browser completed it: this browser is signed in
      stop();
      window.location.assign(box.dataset.next);
      return;
    }
    show(name);
    if (name === "confirmed") {
      stop();
      complete();
    } else if (FINAL[name]) {
      stop();
    }
  }

  function poll() {
    if (finished) return;
    var url = box.dataset.wait + "?after=" + encodeURIComponent(state);
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (response.status === 404 || response.status === 410) {
          settle("expired");
          return;
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json().then(function (body) {
          failures = 0;
          settle(body.state);
          poll();
        });
      })
      .catch(function () {
        failures += 1;
        if (failures > 10) { show("failed"); stop(); return; }
        window.setTimeout(poll, Math.min(1000 * failures, 5000));
      });
  }

  function listen() {
    if (!window.EventSource) { poll(); return; }
    source = new EventSource(box.dataset.events);
    source.addEventListener("state", function (event) {
      failures = 0;
      settle(JSON.parse(event.data).state);
    });
    source.onerror = function () {
      if (finished || !source) return;
      failures += 1;
      // CLOSED: the server refused the stream (404, 429); repeated errors: a proxy that breaks streams.
      // The browser reconnects by itself otherwise (with Last-Event-ID).
      if (source.readyState === EventSource.CLOSED || failures >= 3) {
        source.close();
        source = null;
        failures = 0;
        poll();
      }
    };
  }

  listen();
})();
