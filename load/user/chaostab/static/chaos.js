// The chaos tab: per-second charts from /chaos/series, events and findings from
// /chaos/events, and buttons that POST to /chaos/restart and /chaos/threads.
// Mounted in #chaos-root (the page /chaos/) or inside Locust's own "Chaos" tab.
(function () {
  "use strict";
  var base = document.currentScript.src.replace(/static\/chaos\.js.*$/, "");
  var SVG = "http://www.w3.org/2000/svg";
  var COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
    "#17becf", "#bcbd22", "#7f7f7f"];
  var WINDOW_S = 300; // seconds on screen
  var state = { layout: null, runId: null, rows: {}, endpoints: {}, next: 0, events: [],
    provisional: [], provisionalEndpoints: [], updates: 0 };

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function svgEl(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }
  function getJson(path) {
    return fetch(base + path, { credentials: "same-origin" }).then(function (r) { return r.json(); });
  }

  function build(root) {
    root.className = "chaos";
    root.innerHTML = "";
    var controls = el("div", { class: "controls" });
    var mode = el("select", { "data-chaos": "mode" });
    var which = el("select", { "data-chaos": "which" });
    var restart = el("button", { "data-chaos": "restart" }, "Restart Daphne");
    var threads = el("input", { "data-chaos": "threads", size: "5", placeholder: "unset" });
    var setThreads = el("button", { "data-chaos": "set-threads" }, "Set ASGI_THREADS and restart");
    var status = el("span", { class: "status", "data-chaos": "status" });
    [el("span", {}, "mode"), mode, el("span", {}, "which"), which, restart, threads, setThreads, status]
      .forEach(function (n) { controls.appendChild(n); });
    root.appendChild(controls);
    restart.onclick = function () { post("restart", { mode: mode.value, which: which.value }); };
    setThreads.onclick = function () {
      post("threads", { threads: threads.value || "unset", mode: mode.value, which: which.value });
    };
    root.appendChild(el("h4", {}, "latency per endpoint, ms (log scale): p50, p99, max"));
    root.appendChild(el("div", { "data-chart": "latency" }));
    state.layout.charts.forEach(function (chart, i) {
      root.appendChild(el("h4", {}, chart.title));
      root.appendChild(el("div", { "data-chart": String(i) }));
    });
    root.appendChild(el("h4", {}, "findings so far"));
    root.appendChild(el("ul", { class: "findings", "data-chaos": "findings" }));
    if (!state.inLocustTab) { // there, Locust's own table below lists the events
      root.appendChild(el("h4", {}, "events"));
      root.appendChild(el("div", { class: "events", "data-chaos": "events" }));
    }
    state.root = root;
    state.layout.modes.forEach(function (m) { mode.appendChild(el("option", { value: m }, m)); });
  }

  function post(what, body) {
    var status = state.root.querySelector("[data-chaos=status]");
    status.className = "status";
    status.textContent = what + ": asking...";
    fetch(base + what, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
      .then(function (r) { return r.json(); })
      .then(function (reply) {
        status.textContent = reply.accepted ? what + " started at +" + reply.action.at_s + " s"
          : what + " refused: " + reply.reason;
        if (!reply.accepted) status.className = "status refused";
        pollEvents();
      })
      .catch(function (e) { status.textContent = what + ": " + e; status.className = "status refused"; });
  }

  function resetRun(runId) {
    state.runId = runId; state.rows = {}; state.endpoints = {}; state.next = 0;
  }

  function pollSeries() {
    return getJson("series?since=" + state.next).then(function (body) {
      if (body.run_id !== state.runId) { resetRun(body.run_id); return pollSeries(); }
      body.rows.forEach(function (row) {
        state.rows[row.epoch_s] = row;
        state.next = Math.max(state.next, row.epoch_s + 1);
      });
      body.endpoints.forEach(function (row) {
        (state.endpoints[row.endpoint] = state.endpoints[row.endpoint] || {})[row.epoch_s] = row;
      });
      state.provisional = body.provisional;
      state.provisionalEndpoints = body.provisional_endpoints;
      draw();
    });
  }

  function pollEvents() {
    return getJson("events").then(function (body) {
      state.events = body.events || [];
      state.started = body.started;
      var refused = body.controls.refused;
      state.root.querySelectorAll("[data-chaos=restart],[data-chaos=set-threads]").forEach(function (b) {
        b.disabled = Boolean(refused) || body.controls.busy;
        b.title = refused || (body.controls.busy ? "an action is under way" : "");
      });
      var status = state.root.querySelector("[data-chaos=status]");
      if (refused && !status.textContent) { status.textContent = refused; status.className = "status refused"; }
      fillWhich(body.controls.instances);
      showEvents();
      showFindings(body.findings || [], body.not_checked || {});
      draw();
    });
  }

  function fillWhich(count) {
    var which = state.root.querySelector("[data-chaos=which]");
    var wanted = ["all", "rolling"];
    for (var i = 0; i < (count || 0); i++) wanted.push(String(i));
    if (which.options.length === wanted.length) return;
    which.innerHTML = "";
    wanted.forEach(function (w) { which.appendChild(el("option", { value: w }, w)); });
  }

  function showEvents() {
    var box = state.root.querySelector("[data-chaos=events]");
    if (!box) return;
    var skip = { ts: 1, t_s: 1, event: 1, instance: 1, generation: 1, log: 1, outcome: 1 };
    box.textContent = state.events.slice().reverse().map(function (e) {
      var details = Object.keys(e).filter(function (k) { return !skip[k]; })
        .map(function (k) { return k + "=" + JSON.stringify(e[k]); }).join(" ");
      return "+" + e.t_s.toFixed(3) + " s  " + (e.instance || "") + "  " + e.event + "  " + details;
    }).join("\n");
  }

  function showFindings(findings, notChecked) {
    var list = state.root.querySelector("[data-chaos=findings]");
    list.innerHTML = "";
    if (!findings.length) list.appendChild(el("li", {}, "none so far"));
    findings.forEach(function (f) {
      var when = f.first_s === null ? "" : " [from +" + f.first_s + " s]";
      list.appendChild(el("li", { title: f.evidence.join("\n") }, f.name + ": " + f.title + when));
    });
    Object.keys(notChecked).forEach(function (k) {
      list.appendChild(el("li", { class: "refused" }, "not checked: " + k + " (" + notChecked[k] + ")"));
    });
  }

  // -- drawing ------------------------------------------------------------------------------

  function allRows() {
    var rows = Object.keys(state.rows).map(function (k) { return state.rows[k]; });
    return rows.concat(state.provisional).sort(function (a, b) { return a.epoch_s - b.epoch_s; });
  }

  function draw() {
    if (!state.root || !state.root.isConnected) return;
    var rows = allRows();
    var last = rows.length ? rows[rows.length - 1].epoch_s : Math.floor(Date.now() / 1000);
    var x0 = Math.max(rows.length ? rows[0].epoch_s : last, last - WINDOW_S);
    var frame = { x0: x0, x1: Math.max(last, x0 + 10), rows: rows };
    var lat = [];
    var provisionalBy = {};
    state.provisionalEndpoints.forEach(function (r) {
      (provisionalBy[r.endpoint] = provisionalBy[r.endpoint] || []).push(r);
    });
    Object.keys(state.endpoints).concat(Object.keys(provisionalBy)).filter(function (p, i, a) {
      return a.indexOf(p) === i;
    }).sort().forEach(function (path) {
      var byS = state.endpoints[path] || {};
      var points = Object.keys(byS).map(function (k) { return byS[k]; }).concat(provisionalBy[path] || []);
      state.layout.latency.forEach(function (col) {
        lat.push({ name: path + " " + col, points: points.map(function (r) { return [r.epoch_s, r[col]]; }) });
      });
    });
    chart(state.root.querySelector("[data-chart=latency]"), frame, lat, true);
    state.layout.charts.forEach(function (c, i) {
      var series = c.columns.map(function (col) {
        return { name: state.layout.labels[col] || col,
          points: rows.map(function (r) { return [r.epoch_s, r[col]]; }) };
      }).filter(function (s) { return s.points.some(function (p) { return p[1]; }); });
      chart(state.root.querySelector('[data-chart="' + i + '"]'), frame, series, false);
    });
    state.updates += 1;
    state.root.setAttribute("data-updates", String(state.updates));
    state.root.setAttribute("data-last-second", String(last));
  }

  function chart(box, frame, series, log) {
    var w = Math.max(box.clientWidth || 600, 300), h = log ? 200 : 120, left = 44, bottom = 16;
    var values = [];
    series.forEach(function (s) { s.points.forEach(function (p) { if (p[1] !== null) values.push(+p[1]); }); });
    var f = log ? function (v) { return Math.log10(Math.max(v, 0.1)); } : function (v) { return v; };
    var ymax = values.length ? Math.max.apply(null, values.map(f)) : 1;
    var ymin = log ? -1 : 0;
    if (ymax <= ymin) ymax = ymin + 1;
    var sx = function (t) { return left + (t - frame.x0) / (frame.x1 - frame.x0) * (w - left - 4); };
    var sy = function (v) { return h - bottom - (f(v) - ymin) / (ymax - ymin) * (h - bottom - 6); };
    var svg = svgEl("svg", { viewBox: "0 0 " + w + " " + h, height: h });
    phases(svg, frame, sx, h - bottom);
    svg.appendChild(svgEl("line", { x1: left, x2: left, y1: 0, y2: h - bottom, stroke: "#999" }));
    label(svg, 2, 10, log ? Math.pow(10, ymax).toPrecision(3) : String(Math.round(ymax * 100) / 100));
    label(svg, 2, h - bottom, log ? "0.1" : "0");
    label(svg, left, h - 2, "+" + (frame.x0 - Math.floor(state.started || frame.x0)) + " s");
    label(svg, w - 40, h - 2, "+" + (frame.x1 - Math.floor(state.started || frame.x0)) + " s");
    var legend = el("div", { class: "legend" });
    series.forEach(function (s, i) {
      var color = COLORS[i % COLORS.length];
      var d = "";
      s.points.filter(function (p) { return p[1] !== null && p[0] >= frame.x0; })
        .sort(function (a, b) { return a[0] - b[0]; })
        .forEach(function (p, j) { d += (j ? "L" : "M") + sx(p[0] + 0.5).toFixed(1) + " " + sy(+p[1]).toFixed(1); });
      if (d) svg.appendChild(svgEl("path", { d: d, fill: "none", stroke: color, "stroke-width": 1.5 }));
      var item = el("span", {}, s.name);
      item.insertBefore(el("i", { style: "background:" + color }), item.firstChild);
      legend.appendChild(item);
    });
    markers(svg, frame, sx, h - bottom);
    box.innerHTML = "";
    box.appendChild(svg);
    box.appendChild(legend);
  }

  function label(svg, x, y, text) {
    var t = svgEl("text", { x: x, y: y });
    t.textContent = text;
    svg.appendChild(t);
  }

  function phases(svg, frame, sx, bottom) {
    var spans = [];
    frame.rows.forEach(function (r) {
      var span = spans[spans.length - 1];
      if (span && span.name === r.phase) span.end = r.epoch_s + 1;
      else spans.push({ name: r.phase, start: r.epoch_s, end: r.epoch_s + 1 });
    });
    if (spans.length < 2 && (!spans.length || spans[0].name === "run")) return;
    spans.forEach(function (s, i) {
      var a = sx(Math.max(s.start, frame.x0)), b = sx(s.end);
      if (b <= a) return;
      svg.appendChild(svgEl("rect", { x: a, y: 0, width: b - a, height: bottom, class: "chaos-phase",
        fill: i % 2 ? "rgba(100,149,237,0.12)" : "rgba(255,193,7,0.12)" }));
      label(svg, a + 2, 20, s.name);
    });
  }

  function markers(svg, frame, sx, bottom) {
    var m = state.layout.markers;
    state.events.forEach(function (e) {
      var begin = e.event === m.begin && m.actions.indexOf(e.action) >= 0;
      if (!begin && e.event !== m.ready) return;
      var x = sx(e.ts);
      if (x < sx(frame.x0)) return;
      svg.appendChild(svgEl("line", { x1: x, x2: x, y1: 0, y2: bottom, "data-ts": e.ts,
        class: begin ? "chaos-marker" : "chaos-ready", stroke: begin ? "#c62828" : "#2e7d32",
        "stroke-dasharray": begin ? "" : "3 3", "stroke-width": begin ? 2 : 1 }));
      if (begin) label(svg, x + 3, 32, e.action + (e.by ? " (" + e.by + ")" : ""));
    });
  }

  // -- mounting -----------------------------------------------------------------------------

  function start(root) {
    getJson("layout").then(function (layout) {
      state.layout = layout;
      build(root);
      var tick = function () {
        Promise.all([pollSeries(), pollEvents()]).catch(function (e) {
          var status = root.querySelector("[data-chaos=status]");
          if (status) status.textContent = "not updated: " + e;
        });
      };
      tick();
      setInterval(tick, 1000);
    });
  }

  // Inside Locust's page: our panel sits above Locust's events table while its Chaos tab is selected.
  function mountInLocustTab() {
    state.inLocustTab = true;
    var root = el("div", { id: "chaos-root" });
    root.style.display = "none";
    var link = el("link", { rel: "stylesheet", href: base + "static/chaos.css" });
    document.head.appendChild(link);
    var started = false;
    new MutationObserver(function () {
      var tab = document.querySelector("[role=tab][aria-selected=true]");
      var selected = Boolean(tab) && tab.textContent.trim() === "Chaos";
      var head = document.querySelector("th[data-sortkey=details]"); // Locust's events table, ours
      var table = head && head.closest(".MuiTableContainer-root, .MuiPaper-root");
      if (selected && table && root.nextSibling !== table) table.parentElement.insertBefore(root, table);
      if (root.style.display !== (selected ? "" : "none")) root.style.display = selected ? "" : "none";
      if (selected && !started) { started = true; start(root); }
    }).observe(document.body, { childList: true, subtree: true });
  }

  var own = document.getElementById("chaos-root");
  if (own) start(own);
  else mountInLocustTab();
})();
