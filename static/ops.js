// Ops overview: live numbers over SSE, throughput and latency charts as inline SVG.
(function () {
  "use strict";
  var script = document.currentScript;
  var COLORS = ["#2563eb", "#16a34a", "#d97706", "#7c3aed"];
  var SVG = "http://www.w3.org/2000/svg";

  function text(el, value) { if (el) el.textContent = value === null || value === undefined ? "\u2013" : value; }

  function renderQueues(queues) {
    Object.keys(queues).forEach(function (name) {
      var row = document.querySelector('#queues tr[data-queue="' + name + '"]');
      if (!row) return;
      var q = queues[name];
      row.querySelectorAll("[data-k]").forEach(function (cell) {
        var key = cell.getAttribute("data-k");
        text(cell, key === "paused" ? (q.paused ? "paused" : "") : q[key]);
      });
    });
  }

  function renderWorkers(workers) {
    var body = document.querySelector("#workers tbody");
    if (!body) return;
    body.textContent = "";
    Object.keys(workers).forEach(function (queue) {
      workers[queue].processes.forEach(function (p) {
        var tr = document.createElement("tr");
        [p.queue, p.hostname, p.pid, p.concurrency, p.lastSeenSeconds, p.alive ? "alive" : "dead"].forEach(function (v) {
          var td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
        });
        body.appendChild(tr);
      });
    });
  }

  function renderFunnel(funnel) {
    var dl = document.getElementById("funnel");
    if (!dl) return;
    dl.querySelectorAll("[data-k]").forEach(function (dd) {
      var key = dd.getAttribute("data-k");
      if (key === "failed") {
        var parts = Object.keys(funnel.failed).map(function (c) { return c + ": " + funnel.failed[c]; });
        text(dd, parts.length ? parts.join(" ") : "0");
      } else { text(dd, funnel[key]); }
    });
  }

  function chart(svg, seriesList) {
    if (!svg) return;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var W = 600, H = 160, PAD = 24, max = 0, n = 0;
    seriesList.forEach(function (s) {
      n = Math.max(n, s.values.length);
      s.values.forEach(function (v) { if (v !== null && v > max) max = v; });
    });
    if (max === 0) max = 1;
    var label = document.createElementNS(SVG, "text");
    label.setAttribute("x", 2); label.setAttribute("y", 12); label.setAttribute("font-size", "10");
    label.textContent = "max " + Math.round(max * 10) / 10;
    svg.appendChild(label);
    seriesList.forEach(function (s, i) {
      var points = [];
      s.values.forEach(function (v, x) {
        if (v === null) return;
        var px = PAD + (W - 2 * PAD) * (n > 1 ? x / (n - 1) : 0);
        var py = H - PAD - (H - 2 * PAD) * (v / max);
        points.push(px.toFixed(1) + "," + py.toFixed(1));
        if (v > 0) {  // a dot per non-empty slot, so a lone minute still shows
          var dot = document.createElementNS(SVG, "circle");
          dot.setAttribute("cx", px.toFixed(1)); dot.setAttribute("cy", py.toFixed(1)); dot.setAttribute("r", "2");
          dot.setAttribute("fill", COLORS[i % COLORS.length]);
          svg.appendChild(dot);
        }
      });
      var line = document.createElementNS(SVG, "polyline");
      line.setAttribute("points", points.join(" "));
      line.setAttribute("fill", "none");
      line.setAttribute("stroke", COLORS[i % COLORS.length]);
      line.setAttribute("stroke-width", "1.5");
      line.setAttribute("data-series", s.name);
      svg.appendChild(line);
      var key = document.createElementNS(SVG, "text");
      key.setAttribute("x", W - 120); key.setAttribute("y", 12 + 12 * i); key.setAttribute("font-size", "10");
      key.setAttribute("fill", COLORS[i % COLORS.length]);
      key.textContent = s.name;
      svg.appendChild(key);
    });
  }

  function renderCharts(series) {
    var throughput = Object.keys(series.throughput).map(function (q) { return { name: q, values: series.throughput[q] }; });
    chart(document.getElementById("chart-throughput"), throughput);
    chart(document.getElementById("chart-latency"), [{ name: "p50", values: series.p50 }, { name: "p95", values: series.p95 }]);
  }

  function render(data) {
    renderQueues(data.queues);
    renderWorkers(data.workers);
    renderFunnel(data.funnel);
    var breaker = document.getElementById("breaker");
    if (breaker) { text(breaker, data.breaker); breaker.setAttribute("data-state", data.breaker); }
    renderCharts(data.series);
    text(document.getElementById("updated"), "updated " + data.at.slice(11, 19) + " UTC");
  }

  var initial = document.getElementById("initial");
  if (initial) render(JSON.parse(initial.textContent));
  if (window.EventSource && script) {
    var source = new EventSource(script.getAttribute("data-stream"));
    source.addEventListener("overview", function (event) {
      render(JSON.parse(event.data));
      document.getElementById("updated").setAttribute("data-live", "on");
    });
  }
})();
