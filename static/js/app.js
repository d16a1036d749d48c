// Small behaviours shared by every page. No inline scripts anywhere (strict CSP): pages opt in with data- attributes.
(function () {
  "use strict";

  // Buttons with data-confirm ask before their form is submitted / their htmx request is sent.
  document.addEventListener("htmx:confirm", function (event) {
    var question = event.detail.elt.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // The same for plain (non-htmx) forms: a submit button with data-confirm asks first.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.hasAttribute("hx-post") || form.hasAttribute("hx-get")) { return; }
    var button = event.submitter;
    var question = button && button.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });

  // Clear old error notices when a new htmx request starts.
  document.addEventListener("htmx:beforeRequest", function () {
    var box = document.getElementById("messages");
    if (box) {
      box.querySelectorAll(".notice.error").forEach(function (node) { node.remove(); });
    }
  });

  // Network failures (server down) surface as a notice instead of silence.
  document.addEventListener("htmx:sendError", function () {
    var box = document.getElementById("messages");
    if (box) {
      var p = document.createElement("p");
      p.className = "notice error";
      p.textContent = "The server could not be reached. Check your connection and try again.";
      box.appendChild(p);
    }
  });
})();
