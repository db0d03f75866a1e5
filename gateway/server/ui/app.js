// The usage page: fetches /ui/api/stats (with the master key when the gateway asks for one) and draws it.
// Hand-written SVG, no libraries, nothing fetched from anywhere but the gateway itself.
"use strict";

const KEY_STORAGE = "llm-gateway-master-key";
const REFRESH_MS = 5000;
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
const SVG_NS = "http://www.w3.org/2000/svg";

function fmtInt(v) { return v === null || v === undefined ? "–" : String(v); }
function fmtSeconds(v) {
  if (v === null || v === undefined) return "–";
  return v < 1 ? (v * 1000).toFixed(1) + " ms" : v.toFixed(2) + " s";
}
function fmtUsd(v) { return v === null || v === undefined ? "–" : "$" + v.toFixed(6); }
function fmtRate(v) { return v === null || v === undefined ? "–" : (v * 100).toFixed(1) + "%"; }
function raw(v) { return v === null || v === undefined ? "" : String(v); }

function setFigure(name, value, format) {
  const el = document.querySelector('[data-figure="' + name + '"]');
  el.dataset.value = raw(value);
  el.textContent = format(value);
}

function svgEl(tag, attrs, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function clock(t) {
  const d = new Date(t * 1000);
  return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0") + ":" +
    String(d.getSeconds()).padStart(2, "0");
}

// lines: [{name, points: [[t, value], ...]}]; draws axes, one polyline (and dots) per line, and a legend.
function lineChart(svg, lines, format) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const W = 480, H = 180, L = 56, R = 8, T = 8, B = 36;
  const all = lines.flatMap((l) => l.points);
  if (all.length === 0) {
    svg.appendChild(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no traffic yet"));
    return;
  }
  const ts = all.map((p) => p[0]);
  const t0 = Math.min(...ts), t1 = Math.max(...ts);
  const vmax = Math.max(...all.map((p) => p[1]), 0) || 1;
  const x = (t) => L + (t1 === t0 ? (W - L - R) / 2 : ((t - t0) / (t1 - t0)) * (W - L - R));
  const y = (v) => T + (1 - v / vmax) * (H - T - B);
  svg.appendChild(svgEl("line", { x1: L, y1: y(0), x2: W - R, y2: y(0), stroke: "#9ca3af" }));
  svg.appendChild(svgEl("line", { x1: L, y1: T, x2: L, y2: y(0), stroke: "#9ca3af" }));
  svg.appendChild(svgEl("text", { x: L - 4, y: T + 8, "text-anchor": "end" }, format(vmax)));
  svg.appendChild(svgEl("text", { x: L - 4, y: y(0), "text-anchor": "end" }, format(0)));
  svg.appendChild(svgEl("text", { x: L, y: H - B + 14 }, clock(t0)));
  svg.appendChild(svgEl("text", { x: W - R, y: H - B + 14, "text-anchor": "end" }, clock(t1)));
  lines.forEach((line, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = line.points.map((p) => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" ");
    svg.appendChild(svgEl("polyline", { points: pts, fill: "none", stroke: color, "stroke-width": 2 }));
    for (const p of line.points) {
      svg.appendChild(svgEl("circle", { cx: x(p[0]).toFixed(1), cy: y(p[1]).toFixed(1), r: 2.5, fill: color }));
    }
    const lx = L + (i % 4) * 105, ly = H - 6 - Math.floor(i / 4) * 0;
    svg.appendChild(svgEl("rect", { x: lx, y: ly - 8, width: 8, height: 8, fill: color }));
    svg.appendChild(svgEl("text", { x: lx + 11, y: ly }, line.name));
  });
}

function byGroup(series, group, field) {
  const names = new Set();
  for (const b of series) Object.keys(b[group]).forEach((n) => names.add(n));
  return [...names].sort().map((name) => ({
    name,
    points: series.map((b) => [b.t, b[group][name] ? b[group][name][field] : 0]),
  }));
}

function fillTable(id, rows) {
  const body = document.querySelector("#" + id + " tbody");
  while (body.firstChild) body.removeChild(body.firstChild);
  for (const row of rows) {
    const tr = document.createElement("tr");
    for (const cell of row) {
      const td = document.createElement("td");
      if (cell !== null && typeof cell === "object") {
        td.textContent = cell.text;
        td.className = cell.className;
      } else {
        td.textContent = raw(cell);
      }
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

function groupRows(groups) {
  return Object.entries(groups).map(([name, g]) => [
    name, g.requests, g.errors, g.p50_seconds, g.p95_seconds, g.prompt_tokens, g.completion_tokens, g.spend_usd,
  ]);
}

function render(s) {
  const t = s.totals;
  const fleet = s.replicas ? s.replicas.length + " workers across the fleet · " : "";
  document.getElementById("meta").textContent = fleet + "replica " + s.replica + " · worker pid " + s.pid +
    " · record mode " + s.record_mode +
    " · " + s.bucket_seconds + " s intervals · updated " + clock(s.now);
  setFigure("requests", t.requests, fmtInt);
  setFigure("errors", t.errors, fmtInt);
  setFigure("p50_seconds", t.p50_seconds, fmtSeconds);
  setFigure("p95_seconds", t.p95_seconds, fmtSeconds);
  setFigure("total_tokens", t.total_tokens, fmtInt);
  setFigure("spend_usd", t.spend_usd, fmtUsd);
  setFigure("hit_rate", s.recording.hit_rate, fmtRate);
  setFigure("in_flight", s.in_flight, fmtInt);
  const series = s.series;
  lineChart(document.getElementById("chart-requests"), [
    { name: "requests", points: series.map((b) => [b.t, b.requests]) },
    { name: "errors", points: series.map((b) => [b.t, b.errors]) },
  ], fmtInt);
  lineChart(document.getElementById("chart-latency"), [
    { name: "p50", points: series.filter((b) => b.p50_seconds !== null).map((b) => [b.t, b.p50_seconds]) },
    { name: "p95", points: series.filter((b) => b.p95_seconds !== null).map((b) => [b.t, b.p95_seconds]) },
  ], fmtSeconds);
  lineChart(document.getElementById("chart-tokens-alias"), byGroup(series, "by_alias", "total_tokens"), fmtInt);
  lineChart(document.getElementById("chart-spend-alias"), byGroup(series, "by_alias", "spend_usd"), fmtUsd);
  lineChart(document.getElementById("chart-tokens-key"), byGroup(series, "by_key", "total_tokens"), fmtInt);
  lineChart(document.getElementById("chart-spend-key"), byGroup(series, "by_key", "spend_usd"), fmtUsd);
  fillTable("table-alias", groupRows(s.by_alias));
  fillTable("table-key", groupRows(s.by_key));
  const r = s.recording;
  fillTable("table-recording", [[r.hits, r.misses, r.records, r.store_errors, r.hit_rate]]);
  fillTable("table-deployments", s.deployments.map((d) => [
    d.alias, d.deployment,
    { text: (d.status || (d.healthy ? "healthy" : "cooling_down")).replace("_", " ") + (d.reason ? ": " + d.reason : ""),
      className: d.healthy ? "healthy" : "cooling" },
    d.cooldown_seconds_left, d.in_flight, d.served, d.errors, d.cooldowns,
  ]));
}

function askForKey(message) {
  document.getElementById("content").hidden = true;
  document.getElementById("key-form").hidden = false;
  document.getElementById("key-error").textContent = message;
}

async function refresh() {
  const key = sessionStorage.getItem(KEY_STORAGE);
  const headers = key ? { Authorization: "Bearer " + key } : {};
  let response;
  try {
    response = await fetch("/ui/api/stats", { headers, cache: "no-store" });
  } catch (err) {
    document.getElementById("meta").textContent = "the gateway did not answer; retrying";
    return;
  }
  if (response.status === 401 || response.status === 403) {
    askForKey(key ? "that key was refused" : "");
    return;
  }
  if (!response.ok) {
    document.getElementById("meta").textContent = "the gateway answered " + response.status;
    return;
  }
  const stats = await response.json();
  document.getElementById("key-form").hidden = true;
  document.getElementById("content").hidden = false;
  render(stats);
  document.body.dataset.ready = "1";
}

document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORAGE, document.getElementById("key-input").value);
  refresh();
});

refresh();
setInterval(refresh, REFRESH_MS);
