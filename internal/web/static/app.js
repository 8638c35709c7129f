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
