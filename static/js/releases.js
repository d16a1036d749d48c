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

  function trendConfig(trend) {
    return {
      type: "line",
      data: {
        labels: trend.map(function (row) { return row.release_candidate; }),
        datasets: [{
          label: "pass rate %", borderColor: COLORS.rate, backgroundColor: COLORS.rate, spanGaps: true,
          data: trend.map(function (row) { return row.pass_rate; })
        }]
      },
      options: { animation: false, responsive: true, scales: { y: { min: 0, max: 100 } } }
    };
  }

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (!canvas || typeof window.Chart === "undefined") { return; }
    if (charts[id]) {
      charts[id].data = config.data;
      charts[id].update("none");
    } else {
      charts[id] = new window.Chart(canvas, config);
    }
  }

  function renderCharts(fromLiveRegion) {
    var data = chartData(fromLiveRegion === true);
    if (!data) { return; }
    draw("chart-trend", trendConfig(data.trend));
    draw("chart-owner", stackedConfig(data.by_owner));
    draw("chart-category", stackedConfig(data.by_category));
  }

  document.addEventListener("DOMContentLoaded", renderCharts);
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "dashboard-live") { renderCharts(true); }
  });

  // --- run grid: arrows / j k move between rows, p f n set pass / fail / pending on the focused row ---------------
  var KEYS = { p: "pass", f: "fail", n: "pending" };

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
    if (KEYS[key]) {
      var button = row.querySelector('button.set-status[data-status="' + KEYS[key] + '"]');
      if (button) { event.preventDefault(); button.click(); }
    } else if (key === "arrowdown" || key === "j" || key === "arrowup" || key === "k") {
      var next = sibling(row, key === "arrowdown" || key === "j");
      if (next) { event.preventDefault(); next.focus(); }
    }
  });

  // A replaced row keeps the keyboard focus, so a tester can go on with the next row.
  document.addEventListener("htmx:afterSwap", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.id || elt.id.indexOf("grid-row-") !== 0) { return; }
    var fresh = document.getElementById(elt.id);
    if (fresh) { fresh.focus(); }
  });
})();
