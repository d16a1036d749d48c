// Release tracking pages: dashboard charts (data from json_script, refreshed by the htmx poll) and the keyboard
// controls of the run grid. No inline scripts anywhere (strict CSP).
(function () {
  "use strict";

  var charts = {};
  var COLORS = { pass: "#1a7f37", fail: "#c62828", pending: "#b08a00", rate: "#1f5fbf" };

  // First paint: the json_script block of the page. After each htmx refresh of the live region: the data-chart
  // attribute inside it (htmx removes <script> elements from swapped content).
  function chartData(fromLiveRegion) {
    var node = fromLiveRegion ? document.querySelector("#dashboard-live .chart-data") : document.getElementById("releases-chart-data");
    if (!node) { return null; }
    try { return JSON.parse(fromLiveRegion ? node.getAttribute("data-chart") : node.textContent); } catch (error) { return null; }
  }

  function stackedConfig(rows) {
    return {
      type: "bar",
      data: {
        labels: rows.map(function (row) { return row.name; }),
        datasets: ["pass", "fail", "pending"].map(function (status) {
          return { label: status, backgroundColor: COLORS[status], data: rows.map(function (row) { return row[status]; }) };
        })
      },
      options: { animation: false, responsive: true, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } }
    };
  }

  function trendConfig(trend, threshold) {
    var datasets = [{
      label: "pass rate %", borderColor: COLORS.rate, backgroundColor: COLORS.rate, spanGaps: true,
      data: trend.map(function (row) { return row.pass_rate; })
    }];
    if (typeof threshold === "number") {
      // The gate's minimum pass rate as a dashed line across the chart.
      datasets.push({
        label: "gate minimum " + threshold + " %", borderColor: COLORS.fail, backgroundColor: COLORS.fail,
        borderDash: [6, 4], borderWidth: 1.5, pointRadius: 0, pointHitRadius: 0,
        data: trend.map(function () { return threshold; })
      });
    }
    // Coverage beside the pass rate: a high rate over few executed cases is not a good release.
    datasets.push({
      label: "coverage %", borderColor: COLORS.pending, backgroundColor: COLORS.pending, spanGaps: true,
      data: trend.map(function (row) { return typeof row.coverage === "number" ? row.coverage : null; })
    });
    return {
      type: "line",
      data: {
        labels: trend.map(function (row) { return row.release_candidate; }),
        datasets: datasets
      },
      options: { animation: false, responsive: true, scales: { y: { min: 0, max: 100 } } }
    };
  }

  // An empty chart shows a sentence instead of bare axes.
  function showEmpty(id, empty) {
    var canvas = document.getElementById(id);
    var note = document.querySelector('.chart-empty[data-empty-for="' + id + '"]');
    if (canvas) { canvas.hidden = empty; }
    if (note) { note.hidden = !empty; }
    if (empty && charts[id]) { charts[id].destroy(); delete charts[id]; }
  }

  function draw(id, config, empty) {
    showEmpty(id, empty);
    if (empty) { return; }
    var canvas = document.getElementById(id);
    if (!canvas || typeof window.Chart === "undefined") { return; }
    if (charts[id]) {
      charts[id].data = config.data;
      charts[id].update("none");
    } else {
      charts[id] = new window.Chart(canvas, config);
    }
  }

  // Rows may list owners / categories with cases in scope but no run yet: only runs make a bar.
  function anyRuns(rows) {
    return rows.some(function (row) { return (row.pass || 0) + (row.fail || 0) + (row.pending || 0) > 0; });
  }

  function renderCharts(fromLiveRegion) {
    var data = chartData(fromLiveRegion === true);
    if (!data) { return; }
    var trendEmpty = !data.trend.some(function (row) { return row.pass_rate !== null; });
    draw("chart-trend", trendConfig(data.trend, data.threshold), trendEmpty);
    draw("chart-owner", stackedConfig(data.by_owner), !anyRuns(data.by_owner));
    draw("chart-category", stackedConfig(data.by_category), !anyRuns(data.by_category));
  }

  document.addEventListener("DOMContentLoaded", renderCharts);
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "dashboard-live") { renderCharts(true); }
  });

  // --- run grid: arrows / j k move between rows, p f n set pass / fail / pending on the focused row ---------------
  var KEYS = { p: "pass", n: "pending" };

  function focusFailForm(details) {
    var input = details.querySelector("input[name=mantis_ids]");
    if (input) { input.focus(); }
  }

  // Opening a fail form (click, tap or Enter on its summary) puts the cursor in its first field.
  document.addEventListener("toggle", function (event) {
    var details = event.target;
    if (details.matches && details.matches("details.grid-fail") && details.open) { focusFailForm(details); }
  }, true);

  // Esc in a fail form closes it and gives the focus back to its row.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") { return; }
    var details = event.target.closest ? event.target.closest("details.grid-fail") : null;
    if (!details) { return; }
    details.open = false;
    var row = rowOf(details);
    if (row) { row.focus(); }
  });

  // The bulk action asks first, naming the status and how many cases it sets.
  document.addEventListener("htmx:confirm", function (event) {
    var form = event.detail.elt;
    if (!form.matches || !form.matches("form.bulk")) { return; }
    var select = form.querySelector("select[name=status]");
    var status = select ? select.options[select.selectedIndex].text : "this status";
    var count = parseInt(form.getAttribute("data-bulk-count"), 10) || 0;
    var max = parseInt(form.getAttribute("data-bulk-max"), 10) || 0;
    var cases = count > max ? "more than " + max + " cases (the limit; narrow the filters)" : count + (count === 1 ? " case" : " cases");
    var question = "Record \u201c" + status + "\u201d in " + form.getAttribute("data-rc-name") + " for " + cases + " matching the filters?";
    if (!window.confirm(question)) { event.preventDefault(); }
  });

  function rowOf(element) { return element && element.closest ? element.closest("tr.grid-row") : null; }

  function sibling(row, forward) {
    var next = forward ? row.nextElementSibling : row.previousElementSibling;
    while (next && !next.classList.contains("grid-row")) {
      next = forward ? next.nextElementSibling : next.previousElementSibling;
    }
    return next;
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) { return; }
    var target = event.target;
    if (target.matches && target.matches("input, select, textarea")) { return; }
    var row = rowOf(target);
    if (!row) { return; }
    var key = event.key.toLowerCase();
    if (key === "f") {
      // Fail opens the row's fail form (Mantis ids, note); Enter there records it.
      var details = row.querySelector("details.grid-fail");
      if (details) { event.preventDefault(); details.open = true; focusFailForm(details); }
    } else if (KEYS[key]) {
      var button = row.querySelector('button.set-status[data-status="' + KEYS[key] + '"]');
      if (button) { event.preventDefault(); button.click(); }
    } else if (key === "arrowdown" || key === "j" || key === "arrowup" || key === "k") {
      var next = sibling(row, key === "arrowdown" || key === "j");
      if (next) { event.preventDefault(); next.focus(); }
    }
  });

  // A replaced row keeps the keyboard focus, so a tester can go on with the next row.
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (!target || !target.id || target.id.indexOf("grid-row-") !== 0) { return; }
    var fresh = document.getElementById(target.id);
    if (!fresh) { return; }
    var open = fresh.querySelector("details.grid-fail[open]");
    if (open) { focusFailForm(open); } else { fresh.focus(); }
  });
})();
