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

// Security keys (WebAuthn). [data-webauthn] elements: "register" (a form with a Name field),
// "login" (second step), "passkey" (sign-in without a username) and "confirm" (fills the
// hidden fields of the form named by data-form and submits it). Options come from the server
// base64url-encoded; answers go back the same way.
document.addEventListener("DOMContentLoaded", function () {
  var els = document.querySelectorAll("[data-webauthn]");
  if (!els.length) { return; }
  var supported = !!(window.PublicKeyCredential && navigator.credentials);
  function toBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) { s += "="; }
    var bin = atob(s), b = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { b[i] = bin.charCodeAt(i); }
    return b.buffer;
  }
  function toB64u(buf) {
    var b = new Uint8Array(buf), s = "";
    for (var i = 0; i < b.length; i++) { s += String.fromCharCode(b[i]); }
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function ids(list) { (list || []).forEach(function (c) { c.id = toBuf(c.id); }); }
  function answer(cred) {
    var r = cred.response, out = {
      id: cred.id, rawId: toB64u(cred.rawId), type: cred.type,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: toB64u(r.clientDataJSON) }
    };
    if (cred.authenticatorAttachment) { out.authenticatorAttachment = cred.authenticatorAttachment; }
    if (r.attestationObject) {
      out.response.attestationObject = toB64u(r.attestationObject);
      if (r.getTransports) { out.response.transports = r.getTransports(); }
    } else {
      out.response.authenticatorData = toB64u(r.authenticatorData);
      out.response.signature = toB64u(r.signature);
      if (r.userHandle) { out.response.userHandle = toB64u(r.userHandle); }
    }
    return out;
  }
  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body || {})
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) { throw new Error((j.error && j.error.message) || "Something went wrong. Try again."); }
        return j;
      });
    });
  }
  function safe(next) {
    return (next && next.charAt(0) === "/" && next.charAt(1) !== "/" && next.charAt(1) !== "\\") ? next : "/settings/security";
  }
  function said(e) {
    if (e && (e.name === "NotAllowedError" || e.name === "AbortError")) { return "The security key request was cancelled or timed out. Try again."; }
    if (e && e.name === "InvalidStateError") { return "This security key is registered already."; }
    return (e && e.message) || "The security key could not be used. Try again.";
  }
  els.forEach(function (el) {
    var kind = el.getAttribute("data-webauthn");
    var status = el.querySelector(".webauthn-status") || (el.form && el.form.querySelector(".webauthn-status"));
    var button = el.tagName === "FORM" ? el.querySelector("button[type=submit]") : (el.tagName === "BUTTON" ? el : el.querySelector("button"));
    // show says how it goes, politely; fail says what went wrong, in red and at once
    // (role=alert); done says it worked.
    function say(msg, kind) {
      if (!status) { return; }
      status.classList.toggle("error", kind === "error");
      status.classList.toggle("done", kind === "done");
      status.setAttribute("role", kind === "error" ? "alert" : "status");
      status.setAttribute("aria-live", kind === "error" ? "assertive" : "polite");
      status.textContent = msg;
    }
    function show(msg) { say(msg, ""); }
    function fail(msg) { say(msg, "error"); }
    if (!supported) { show("This browser cannot use security keys."); if (button) { button.disabled = true; } return; }
    el.hidden = false;
    if (button) { button.hidden = false; }
    function run(ev) {
      if (ev) { ev.preventDefault(); }
      var body = {};
      if (kind === "register") {
        var name = el.querySelector("input[name=name]");
        if (!name.value.trim()) { fail("Give the key a name first."); name.focus(); return; }
        body.name = name.value.trim();
      }
      var form = kind === "confirm" ? document.getElementById(el.getAttribute("data-form")) : null;
      if (form && !form.querySelector("input[name=password]").value) { fail("Enter your password first."); return; }
      if (button) { button.disabled = true; }
      show("Touch your security key…");
      post(el.getAttribute("data-begin")).then(function (start) {
        var pk = start.options.publicKey;
        pk.challenge = toBuf(pk.challenge);
        var p;
        if (kind === "register") {
          pk.user.id = toBuf(pk.user.id);
          ids(pk.excludeCredentials);
          p = navigator.credentials.create({ publicKey: pk });
        } else {
          ids(pk.allowCredentials);
          p = navigator.credentials.get({ publicKey: pk });
        }
        return p.then(function (cred) {
          body.ceremony_id = start.ceremony_id;
          body.credential = answer(cred);
          if (form) {
            form.querySelector("input[name=ceremony_id]").value = body.ceremony_id;
            form.querySelector("input[name=credential]").value = JSON.stringify(body.credential);
            form.querySelector("input[name=code]").value = "";
            show("Key confirmed.");
            form.submit();
            return null;
          }
          show("Checking…");
          return post(el.getAttribute("data-finish"), body);
        });
      }).then(function (done) {
        if (!done) { return; }
        var next = safe(el.getAttribute("data-next"));
        var codes = done.recovery_codes || [];
        if (kind === "register" && codes.length) {
          // The key is added and cannot be cancelled: keep only the news and the codes,
          // and take the focus to them.
          var box = el.parentNode.querySelector(".webauthn-codes");
          var list = box.querySelector("ul");
          codes.forEach(function (c) { var li = document.createElement("li"), code = document.createElement("code"); code.textContent = c; li.appendChild(code); list.appendChild(li); });
          el.querySelectorAll(".field, button, noscript").forEach(function (x) { x.hidden = true; });
          document.querySelectorAll("[data-key-pending]").forEach(function (x) { x.hidden = true; });
          box.hidden = false;
          document.querySelectorAll("[data-key-done]").forEach(function (h) {
            h.textContent = h.getAttribute("data-key-done");
            document.title = document.title.replace(/^[^·]*/, h.textContent + " ");
          });
          say("Security key \"" + body.name + "\" added. Save your recovery codes: they are shown only now.", "done");
          box.querySelector("[tabindex='-1']").focus();
          return;
        }
        show("Done.");
        window.location.assign(next);
      }).catch(function (e) {
        fail(said(e));
        if (button) { button.disabled = false; }
      });
    }
    if (el.tagName === "FORM") { el.addEventListener("submit", run); } else if (button) { button.addEventListener("click", run); }
  });
});
