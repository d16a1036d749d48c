// AI assistant pages. The answer streams in as newline-delimited JSON events and is shown as text (textContent),
// never as HTML. Usage charts are drawn from the json_script data. No inline code (strict CSP).
(function () {
  "use strict";

  function csrfToken(form) {
    var input = form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function setStatus(text) {
    var status = document.getElementById("ai-status");
    if (status) { status.textContent = text; }
  }

  function handleEvent(event, answer, meta) {
    if (event.type === "meta") {
      meta.textContent = (event.offline ? "Offline assistant (deterministic, no model called)" : event.provider + " / " + event.model) +
        " · template " + event.template + " v" + event.version;
    } else if (event.type === "delta") {
      answer.textContent += event.text;
    } else if (event.type === "done") {
      setStatus("Done");
      meta.textContent += " · " + (event.prompt_tokens + event.completion_tokens) + " tokens · $" +
        Number(event.cost).toFixed(5) + " · " + Math.round(event.latency_ms) + " ms";
      answer.setAttribute("data-complete", "true");
    } else if (event.type === "error") {
      setStatus(event.message);
      answer.setAttribute("data-error", event.code);
    }
  }

  async function ask(form) {
    var answer = document.getElementById("ai-answer");
    var meta = document.getElementById("ai-meta");
    var button = document.getElementById("ai-ask");
    answer.textContent = "";
    answer.removeAttribute("data-complete");
    answer.removeAttribute("data-error");
    meta.textContent = "";
    button.disabled = true;
    setStatus("Thinking...");
    try {
      var response = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        headers: { "X-CSRFToken": csrfToken(form), "Accept": "application/json" },
        credentials: "same-origin"
      });
      if (!response.ok) {
        var body = await response.json().catch(function () { return {}; });
        var error = body.error || {};
        setStatus(error.message || ("The request failed (HTTP " + response.status + ")."));
        answer.setAttribute("data-error", error.code || "http_" + response.status);
        return;
      }
      setStatus("Answering...");
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var buffered = "";
      for (;;) {
        var chunk = await reader.read();
        if (chunk.done) { break; }
        buffered += decoder.decode(chunk.value, { stream: true });
        var lines = buffered.split("\n");
        buffered = lines.pop();
        lines.forEach(function (line) {
          if (line.trim()) { handleEvent(JSON.parse(line), answer, meta); }
        });
      }
      if (buffered.trim()) { handleEvent(JSON.parse(buffered), answer, meta); }
    } catch (err) {
      setStatus("The connection was interrupted. Please try again.");
    } finally {
      button.disabled = false;
    }
  }

  function initAssist() {
    var form = document.getElementById("ai-ask-form");
    if (!form) { return; }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      ask(form);
    });
  }

  function chart(id, type, labels, datasets, scales) {
    var canvas = document.getElementById(id);
    if (!canvas || typeof window.Chart === "undefined") { return; }
    return new window.Chart(canvas, {
      type: type,
      data: { labels: labels, datasets: datasets },
      options: { animation: false, responsive: true, scales: scales || (type === "bar" || type === "line" ? { y: { beginAtZero: true } } : {}) }
    });
  }

  function initUsage() {
    var node = document.getElementById("ai-usage-data");
    if (!node) { return; }
    var data = JSON.parse(node.textContent);
    var keys = function (rows) { return rows.map(function (r) { return r.key; }); };
    var pick = function (rows, field) { return rows.map(function (r) { return r[field]; }); };
    // Dollars and tokens are different units: each on its own axis (USD left, tokens right).
    chart("ai-chart-day", "line", keys(data.day), [
      { label: "Cost (USD)", data: pick(data.day, "cost_usd"), yAxisID: "usd" },
      { label: "Tokens", data: pick(data.day, "tokens"), yAxisID: "tokens" }
    ], {
      usd: { type: "linear", position: "left", beginAtZero: true, title: { display: true, text: "USD" } },
      tokens: { type: "linear", position: "right", beginAtZero: true, title: { display: true, text: "tokens" }, grid: { drawOnChartArea: false } }
    });
    chart("ai-chart-task", "bar", keys(data.task), [
      { label: "Calls", data: pick(data.task, "calls") },
      { label: "Failures", data: pick(data.task, "failures") }
    ]);
    chart("ai-chart-model", "bar", keys(data.model), [{ label: "Cost (USD)", data: pick(data.model, "cost_usd") }]);
    chart("ai-chart-rc", "bar", keys(data.rc), [{ label: "Cost (USD)", data: pick(data.rc, "cost_usd") }]);
    chart("ai-chart-user", "bar", keys(data.user), [
      { label: "Tokens", data: pick(data.user, "tokens"), yAxisID: "tokens" },
      { label: "Failures", data: pick(data.user, "failures"), yAxisID: "calls" }
    ], {
      tokens: { type: "linear", position: "left", beginAtZero: true, title: { display: true, text: "tokens" } },
      calls: { type: "linear", position: "right", beginAtZero: true, title: { display: true, text: "failed calls" }, grid: { drawOnChartArea: false } }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    initAssist();
    initUsage();
  });
})();
