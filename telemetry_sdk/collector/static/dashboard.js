// The collector's dashboard. Hand-written SVG, no libraries, no external requests.
// Every string that came from a datagram (project names, versions, platforms, component
// names) is inserted with textContent or as an attribute value, never as markup.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const REFRESH_MS = 30000;

function svgElement(name, attributes, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes || {})) {
    node.setAttribute(key, String(value));
  }
  if (text !== undefined) {
    node.textContent = String(text);
  }
  return node;
}

function clear(node) {
  while (node.firstChild) {
    node.removeChild(node.firstChild);
  }
}

function empty(container, message) {
  clear(container);
  const note = document.createElement("p");
  note.className = "empty";
  note.textContent = message;
  container.appendChild(note);
}

function shorten(text, limit) {
  const value = String(text);
  return value.length > limit ? value.slice(0, limit - 1) + "\u2026" : value;
}

// Horizontal bars: one row per {name, runs}.
function barChart(container, items, valueKey) {
  const rows = items.filter((item) => item[valueKey] > 0).slice(0, 12);
  if (rows.length === 0) {
    empty(container, "No data yet.");
    return;
  }
  clear(container);
  const rowHeight = 22;
  const labelWidth = 190;
  const width = 520;
  const barSpace = width - labelWidth - 60;
  const height = rows.length * rowHeight + 4;
  const max = Math.max(...rows.map((item) => item[valueKey]));
  const svg = svgElement("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  rows.forEach((item, index) => {
    const y = index * rowHeight + 2;
    const length = Math.max(2, (item[valueKey] / max) * barSpace);
    const group = svgElement("g", { class: "datum" });
    group.appendChild(svgElement("title", {}, `${item.name}: ${item[valueKey]}`));
    group.appendChild(
      svgElement("text", { x: labelWidth - 6, y: y + 15, "text-anchor": "end" }, shorten(item.name, 30)),
    );
    group.appendChild(
      svgElement("rect", { class: "bar", x: labelWidth, y: y + 3, width: length.toFixed(1), height: rowHeight - 6 }),
    );
    group.appendChild(svgElement("text", { x: labelWidth + length + 5, y: y + 15 }, item[valueKey]));
    svg.appendChild(group);
  });
  container.appendChild(svg);
}

// Runs per day: a line with a point per day.
function timeChart(container, days) {
  if (days.length === 0) {
    empty(container, "No runs yet.");
    return;
  }
  clear(container);
  const width = 900;
  const height = 220;
  const pad = { left: 44, right: 16, top: 12, bottom: 28 };
  const max = Math.max(1, ...days.map((d) => d.runs));
  // Place days by date, so that days without runs show as gaps in time.
  const times = days.map((d) => Date.parse(`${d.day}T00:00:00Z`));
  const t0 = times[0];
  const span = Math.max(1, times[times.length - 1] - t0);
  const plotWidth = width - pad.left - pad.right;
  const x = (i) => pad.left + (days.length === 1 ? plotWidth / 2 : ((times[i] - t0) / span) * plotWidth);
  const y = (v) => height - pad.bottom - (v / max) * (height - pad.top - pad.bottom);
  const svg = svgElement("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  svg.appendChild(svgElement("line", { class: "axis", x1: pad.left, y1: y(0), x2: width - pad.right, y2: y(0) }));
  svg.appendChild(svgElement("text", { x: pad.left - 6, y: y(max) + 4, "text-anchor": "end" }, max));
  svg.appendChild(svgElement("text", { x: pad.left - 6, y: y(0) + 4, "text-anchor": "end" }, 0));
  const path = days.map((d, i) => `${x(i).toFixed(1)},${y(d.runs).toFixed(1)}`).join(" ");
  svg.appendChild(svgElement("polyline", { class: "line", points: path }));
  const radius = days.length > 60 ? 1.5 : 3.5;
  days.forEach((d, i) => {
    const point = svgElement("circle", { class: "point", cx: x(i).toFixed(1), cy: y(d.runs).toFixed(1), r: radius });
    point.appendChild(svgElement("title", {}, `${d.day}: ${d.runs} runs`));
    svg.appendChild(point);
  });
  const first = days[0].day;
  const last = days[days.length - 1].day;
  svg.appendChild(svgElement("text", { x: pad.left, y: height - 8 }, first));
  if (last !== first) {
    svg.appendChild(svgElement("text", { x: width - pad.right, y: height - 8, "text-anchor": "end" }, last));
  }
  container.appendChild(svg);
}

function renderLeaderboard(rows) {
  const body = document.querySelector("#leaderboard tbody");
  clear(body);
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 4;
    td.className = "empty";
    td.textContent = "No named projects yet.";
    tr.appendChild(td);
    body.appendChild(tr);
    return;
  }
  for (const row of rows) {
    const tr = document.createElement("tr");
    const cells = [row.rank, row.project, row.points, row.runs];
    cells.forEach((value, index) => {
      const td = document.createElement("td");
      td.textContent = String(value);
      if (index !== 1) {
        td.className = "num";
      }
      if (index === 1) {
        td.className = "project";
      }
      tr.appendChild(td);
    });
    body.appendChild(tr);
  }
}

function renderStats(stats) {
  document.getElementById("total-runs").textContent = String(stats.runs);
  document.getElementById("total-points").textContent = String(stats.points);
  document.getElementById("total-apps").textContent = String(stats.apps.apps);
  document.getElementById("failure-rate").textContent =
    stats.apps.apps > 0 ? `${(stats.apps.failure_rate * 100).toFixed(1)} %` : "-";
  timeChart(document.getElementById("chart-runs"), stats.runs_per_day);
  barChart(document.getElementById("chart-versions"), stats.versions, "runs");
  barChart(document.getElementById("chart-python"), stats.python_versions, "runs");
  barChart(document.getElementById("chart-platforms"), stats.platforms, "runs");
  barChart(document.getElementById("chart-components"), stats.components, "runs");
  barChart(
    document.getElementById("chart-exec"),
    stats.execution_time.map((b) => ({ name: b.bucket, runs: b.runs })),
    "runs",
  );
}

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) {
    throw new Error(`${path}: HTTP ${response.status}`);
  }
  return response.json();
}

// CI runs (a project's test suite is not a user) are left out unless the box is ticked.
function ciQuery() {
  return document.getElementById("include-ci").checked ? "ci=include" : "ci=exclude";
}

async function loadProduct(product) {
  const query = `product=${encodeURIComponent(product)}&${ciQuery()}`;
  const [board, stats] = await Promise.all([
    getJSON(`/api/leaderboard?${query}&limit=25`),
    getJSON(`/api/stats?${query}`),
  ]);
  renderLeaderboard(board.leaderboard);
  renderStats(stats);
}

async function refresh() {
  const status = document.getElementById("status");
  const select = document.getElementById("product");
  try {
    const { products } = await getJSON(`/api/products?${ciQuery()}`);
    const chosen = select.value;
    clear(select);
    for (const item of products) {
      const option = document.createElement("option");
      option.value = item.product;
      option.textContent = `${item.product} (${item.runs} runs)`;
      select.appendChild(option);
    }
    if (products.length === 0) {
      status.textContent = "No runs received yet.";
      return;
    }
    if (products.some((item) => item.product === chosen)) {
      select.value = chosen;
    }
    await loadProduct(select.value);
    status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = "true";
  } catch (error) {
    status.textContent = `Could not load data: ${error.message}`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("product").addEventListener("change", refresh);
  const includeCI = document.getElementById("include-ci");
  // /?ci=include opens the dashboard with CI runs counted (a link can say so).
  includeCI.checked = new URLSearchParams(window.location.search).get("ci") === "include";
  includeCI.addEventListener("change", refresh);
  refresh();
  setInterval(refresh, REFRESH_MS);
});
