// Imports pages: warn about an over-sized file before it is uploaded (the server enforces the limit too).
(function () {
  "use strict";

  function init() {
    var form = document.getElementById("import-upload-form");
    var input = document.getElementById("import-file");
    var message = document.getElementById("import-file-error");
    if (!form || !input || !message) {
      return;
    }
    var maxBytes = parseInt(form.getAttribute("data-max-bytes"), 10) || 0;
    function check() {
      var file = input.files && input.files[0];
      var tooLarge = Boolean(file && maxBytes && file.size > maxBytes);
      message.hidden = !tooLarge;
      message.textContent = tooLarge
        ? "This file is " + file.size + " bytes; the limit is " + maxBytes + " bytes."
        : "";
      return !tooLarge;
    }
    input.addEventListener("change", check);
    form.addEventListener("submit", function (event) {
      if (!check()) {
        event.preventDefault();
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
