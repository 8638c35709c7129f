// Progressive enhancement only: every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  function copy(button, text) {
    if (!navigator.clipboard) { return; }
    navigator.clipboard.writeText(text).then(function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 2000);
    });
  }
  document.querySelectorAll("[data-copy]").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () { copy(b, b.getAttribute("data-copy")); });
  });
  document.querySelectorAll("[data-copy-list]").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () {
      var list = document.getElementById(b.getAttribute("data-copy-list"));
      var codes = Array.prototype.map.call(list.querySelectorAll("code"), function (c) { return c.textContent; });
      copy(b, codes.join("\n"));
    });
  });
});

// Push sign-in: wait for the approval with a long poll (one request at a time, each held by
// the server for up to 25 seconds), then continue by ourselves.
document.addEventListener("DOMContentLoaded", function () {
  var box = document.querySelector("[data-push-challenge]");
  if (!box) { return; }
  var id = box.getAttribute("data-push-challenge");
  var next = box.getAttribute("data-push-next") || "/settings/security";
  if (next.charAt(0) !== "/" || next.charAt(1) === "/" || next.charAt(1) === "\\") { next = "/settings/security"; }
  var status = document.getElementById("push-status");
  var again = document.getElementById("push-again");
  document.querySelectorAll("[data-nojs]").forEach(function (b) { b.hidden = true; });
  var failures = 0;
  function end(message) {
    status.textContent = message;
    box.classList.add("ended");
    if (again) { again.hidden = false; }
  }
  function poll() {
    fetch("/api/v1/login/push/" + encodeURIComponent(id) + "?wait=25s", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (r.status === 404 || r.status === 401) { throw { final: true }; }
        if (!r.ok) { throw { final: false }; }
        return r.json();
      })
      .then(function (body) {
        failures = 0;
        if (body.state === "approved") {
          status.textContent = "Approved. Signing you in…";
          box.classList.add("approved");
          window.location.assign(next);
        } else if (body.state === "denied") {
          end("The request was denied. Send a new one, or use another method.");
        } else if (body.state === "expired") {
          end("The request expired. Send a new one, or use another method.");
        } else {
          poll();
        }
      })
      .catch(function (e) {
        if (e && e.final) { end("This sign-in is no longer valid. Please sign in again."); return; }
        failures++;
        setTimeout(poll, Math.min(30000, 1000 * Math.pow(2, failures)));
      });
  }
  poll();
});
