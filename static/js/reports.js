// Report generation form: the baseline cannot be the release candidate being reported on, so hide that option.
(function () {
  "use strict";

  function syncBaseline(form) {
    var rc = form.querySelector("select[name=release_candidate]");
    var baseline = form.querySelector("select[name=baseline]");
    if (!rc || !baseline) {
      return;
    }
    Array.prototype.forEach.call(baseline.options, function (option) {
      var same = option.value !== "" && option.value === rc.value;
      option.disabled = same;
      option.hidden = same;
      if (same && option.selected) {
        baseline.value = "";
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("report-form");
    if (!form) {
      return;
    }
    syncBaseline(form);
    form.addEventListener("change", function () { syncBaseline(form); });
  });
})();
