// The collector's dashboard. Hand-written SVG, no libraries, no external requests.
// Every string that came from a datagram (project names, versions, platforms, component
// names) is inserted with textContent or as an attribute value, never as markup.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const REFRESH_MS = 60000;
// Okabe-Ito colours (colour-blind safe); grey for "other".
const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];
const OTHER = "#999999";

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

function element(name, attributes, text) {
  const node = document.createElement(name);
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
  container.appendChild(element("p", { class: "empty" }, message));
}

function shorten(text, limit) {
  const value = String(text);
  return value.length > limit ? value.slice(0, limit - 1) + "\u2026" : value;
}

function percent(value) {
  return value === null || value === undefined ? "-" : `${(value * 100).toFixed(1)} %`;
}

function number(value) {
  return Number(value).toLocaleString("en");
}

// A tooltip for hover and keyboard focus: the full name and numbers, as text.
function attachTip(node, text) {
  node.setAttribute("tabindex", "0");
  node.setAttribute("aria-label", text);
  node.appendChild(svgElement("title", {}, text));
  const show = (event) => {
    const tip = document.getElementById("tip");
    tip.textContent = text;
    tip.hidden = false;
    const box = event.type === "focus" ? node.getBoundingClientRect() : null;
    const x = box ? box.left + box.width / 2 : event.clientX;
    const y = box ? box.top : event.clientY;
    tip.style.left = `${Math.max(4, Math.min(x + 12, window.innerWidth - tip.offsetWidth - 4))}px`;
    tip.style.top = `${Math.max(4, y - tip.offsetHeight - 8)}px`;
  };
  const hide = () => {
    document.getElementById("tip").hidden = true;
  };
  node.addEventListener("mousemove", show);
  node.addEventListener("focus", show);
  node.addEventListener("mouseleave", hide);
  node.addEventListener("blur", hide);
}

function legend(container, items) {
  const list = element("ul", { class: "legend" });
  for (const item of items) {
    const entry = element("li");
    const swatch = element("span", { class: "swatch", "aria-hidden": "true" });
    swatch.style.background = item.colour;
    entry.appendChild(swatch);
    entry.appendChild(element("span", {}, item.name));
    list.appendChild(entry);
  }
  container.appendChild(list);
}

// A table of a chart's numbers, for screen readers and copying.
function dataTable(container, caption, headings, rows) {
  const details = element("details");
  details.appendChild(element("summary", {}, `Table: ${caption}`));
  const table = element("table", { class: "numbers" });
  table.appendChild(element("caption", {}, caption));
  const head = element("tr");
  headings.forEach((heading, index) => {
    head.appendChild(element("th", { scope: "col", class: index === 0 ? "" : "num" }, heading));
  });
  table.appendChild(element("thead")).appendChild(head);
  const body = element("tbody");
  for (const row of rows) {
    const tr = element("tr");
    row.forEach((value, index) => tr.appendChild(element("td", { class: index === 0 ? "" : "num" }, value)));
    body.appendChild(tr);
  }
  table.appendChild(body);
  // A wide table scrolls inside its box; the page itself never does.
  const scroller = element("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": caption });
  scroller.appendChild(table);
  details.appendChild(scroller);
  container.appendChild(details);
}

// Charts are drawn at the width they are shown at, so that 12 px text stays 12 px.
let W = 640;
const H = 260;

function fitWidth(container) {
  const shown = Math.floor(container.getBoundingClientRect().width);
  W = Math.max(280, shown || 640);
}
const PAD = { left: 58, right: 14, top: 12, bottom: 46 };

function axes(svg, xLabel, yLabel, ticks) {
  const bottom = H - PAD.bottom;
  for (const tick of ticks) {
    svg.appendChild(svgElement("line", { class: "grid", x1: PAD.left, x2: W - PAD.right, y1: tick.y, y2: tick.y }));
    svg.appendChild(svgElement("text", { x: PAD.left - 6, y: tick.y + 4, "text-anchor": "end" }, tick.label));
  }
  svg.appendChild(svgElement("line", { class: "axis", x1: PAD.left, x2: W - PAD.right, y1: bottom, y2: bottom }));
  svg.appendChild(svgElement("line", { class: "axis", x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: bottom }));
  svg.appendChild(
    svgElement("text", { class: "axis-label x-label", x: PAD.left + (W - PAD.left - PAD.right) / 2, y: H - 6, "text-anchor": "middle" }, xLabel),
  );
  svg.appendChild(
    svgElement(
      "text",
      { class: "axis-label y-label", transform: `translate(14 ${PAD.top + (bottom - PAD.top) / 2}) rotate(-90)`, "text-anchor": "middle" },
      yLabel,
    ),
  );
}

function niceMax(value) {
  if (value <= 5) {
    return Math.max(1, Math.ceil(value));
  }
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * magnitude >= value) {
      return step * magnitude;
    }
  }
  return value;
}

function dateTicks(svg, starts, x) {
  const picks = starts.length <= 2 ? starts.map((_, i) => i) : [0, Math.floor((starts.length - 1) / 2), starts.length - 1];
  const bottom = H - PAD.bottom;
  for (const i of picks) {
    const anchor = i === 0 && starts.length > 1 ? "start" : i === starts.length - 1 && starts.length > 1 ? "end" : "middle";
    svg.appendChild(svgElement("line", { class: "axis", x1: x(i), x2: x(i), y1: bottom, y2: bottom + 4 }));
    svg.appendChild(svgElement("text", { x: x(i), y: bottom + 16, "text-anchor": anchor }, starts[i]));
  }
}

// Stacked areas: one per name (plus "other"), per day or week; shares (0-100 %) or counts.
function stackedChart(container, series, options) {
  const points = series.points;
  if (points.length === 0 || points.every((p) => p.runs === 0 && p.other === 0 && Object.values(p.counts).every((v) => v === 0))) {
    empty(container, "No runs in this period.");
    return;
  }
  clear(container);
  fitWidth(container);
  const names = [...series.names, "other"];
  const colours = [...PALETTE.slice(0, series.names.length), OTHER];
  const values = points.map((p) => [...series.names.map((n) => p.counts[n] || 0), p.other]);
  const totals = values.map((row, i) => (options.share ? points[i].runs : row.reduce((a, b) => a + b, 0)));
  const top = options.share ? 1 : niceMax(Math.max(1, ...totals));
  const plotW = W - PAD.left - PAD.right;
  const bottom = H - PAD.bottom;
  const n = points.length;
  const x = (i) => PAD.left + (n === 1 ? plotW / 2 : (i * plotW) / (n - 1));
  const y = (v) => bottom - (v / top) * (bottom - PAD.top);
  const unit = series.bucket === "day" ? "day" : "week (from Monday)";
  const svg = svgElement("svg", { viewBox: `0 0 ${W} ${H}`, role: "group", "aria-label": options.title });
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => ({
    y: y(f * top),
    label: options.share ? `${f * 100}%` : number(Math.round(f * top)),
  }));
  axes(svg, `Date (UTC), per ${unit}`, options.yLabel, ticks);
  const below = new Array(n).fill(0);
  names.forEach((name, k) => {
    const above = values.map((row, i) => below[i] + (totals[i] ? (options.share ? row[k] / totals[i] : row[k]) : 0));
    if (values.some((row) => row[k] > 0)) {
      const half = n === 1 ? 8 : 0;
      const upper = above.map((v, i) => `${(x(i) - half).toFixed(1)},${y(v).toFixed(1)}`);
      if (n === 1) {
        upper.push(`${(x(0) + half).toFixed(1)},${y(above[0]).toFixed(1)}`);
      }
      const lower = below.map((v, i) => `${(x(i) + half).toFixed(1)},${y(v).toFixed(1)}`).reverse();
      if (n === 1) {
        lower.push(`${(x(0) - half).toFixed(1)},${y(below[0]).toFixed(1)}`);
      }
      const area = svgElement("polygon", { class: "series", points: [...upper, ...lower].join(" "), fill: colours[k], "fill-opacity": 0.85 });
      area.appendChild(svgElement("title", {}, name));
      svg.appendChild(area);
    }
    above.forEach((v, i) => {
      below[i] = v;
    });
  });
  dateTicks(svg, points.map((p) => p.start), x);
  // One focusable slice per day or week, naming every series with its numbers.
  const step = n === 1 ? plotW : plotW / (n - 1);
  points.forEach((p, i) => {
    const parts = names
      .map((name, k) => ({ name, value: values[i][k] }))
      .filter((item) => item.value > 0)
      .map((item) => `${item.name}: ${options.share ? percent(totals[i] ? item.value / totals[i] : 0) : number(item.value)}`);
    const slice = svgElement("rect", {
      class: "slice",
      x: Math.max(PAD.left, x(i) - step / 2),
      y: PAD.top,
      width: Math.min(step, plotW),
      height: bottom - PAD.top,
    });
    attachTip(slice, `${p.start} (${number(p.runs)} runs): ${parts.join(", ") || "no runs"}`);
    svg.appendChild(slice);
  });
  container.appendChild(svg);
  legend(
    container,
    names.map((name, k) => ({ name, colour: colours[k] })).filter((_, k) => values.some((row) => row[k] > 0)),
  );
  dataTable(
    container,
    options.title,
    [unit, "runs", ...names],
    points.map((p, i) => [
      p.start,
      number(p.runs),
      ...values[i].map((v) => (options.share ? percent(totals[i] ? v / totals[i] : 0) : number(v))),
    ]),
  );
}

// Horizontal bars: one row per {name, value}; value formatted by options.format. The chart
// draws the first 12; its table lists every item. With options.keepZero, zero values count.
function barChart(container, items, options) {
  const listed = items.filter((item) => item.value > 0 || (options.keepZero && item.value === 0));
  const rows = listed.slice(0, 12);
  if (rows.length === 0) {
    empty(container, options.emptyText || "No runs in this period.");
    return;
  }
  clear(container);
  fitWidth(container);
  const format = options.format || number;
  const rowHeight = 24;
  const labelWidth = Math.min(170, Math.round(W * 0.32));
  const labelChars = Math.max(8, Math.floor(labelWidth / 7));
  const right = 70;
  const height = rows.length * rowHeight + 44;
  const max = options.max || niceMax(Math.max(1, ...rows.map((item) => item.value)));
  const span = W - labelWidth - right;
  const svg = svgElement("svg", { viewBox: `0 0 ${W} ${height}`, role: "group", "aria-label": options.title });
  const axisY = rows.length * rowHeight + 4;
  for (const fraction of [0, 0.5, 1]) {
    const xPos = labelWidth + fraction * span;
    svg.appendChild(svgElement("line", { class: "grid", x1: xPos, x2: xPos, y1: 0, y2: axisY }));
    svg.appendChild(svgElement("text", { x: xPos, y: axisY + 14, "text-anchor": "middle" }, format(fraction * max)));
  }
  svg.appendChild(svgElement("line", { class: "axis", x1: labelWidth, x2: labelWidth + span, y1: axisY, y2: axisY }));
  svg.appendChild(svgElement("text", { class: "axis-label x-label", x: labelWidth + span / 2, y: height - 4, "text-anchor": "middle" }, options.xLabel));
  svg.appendChild(
    svgElement("text", { class: "axis-label y-label", x: 4, y: height - 4 }, options.yLabel),
  );
  rows.forEach((item, index) => {
    const y = index * rowHeight + 2;
    const length = item.value > 0 ? Math.max(1, (item.value / max) * span) : 0;
    const group = svgElement("g", { class: "datum" });
    group.appendChild(svgElement("text", { x: labelWidth - 6, y: y + 15, "text-anchor": "end" }, shorten(item.name, labelChars)));
    group.appendChild(
      svgElement("rect", { class: item.bad ? "bar bad" : "bar", x: labelWidth, y: y + 4, width: length.toFixed(1), height: rowHeight - 8 }),
    );
    group.appendChild(svgElement("text", { x: labelWidth + length + 5, y: y + 15 }, format(item.value)));
    attachTip(group, `${item.name}: ${item.detail || format(item.value)}`);
    svg.appendChild(group);
  });
  container.appendChild(svg);
  legend(container, options.legend || [{ name: options.xLabel, colour: "#0072B2" }]);
  dataTable(
    container,
    options.title,
    options.columns || [options.yLabel, options.xLabel],
    listed.map((item) => item.row || [item.name, format(item.value)]),
  );
}

// Runs per day: an area under a line, days placed by date (gaps show as gaps in time).
function runsChart(container, days, period) {
  if (days.length === 0) {
    empty(container, "No runs in this period.");
    return;
  }
  clear(container);
  fitWidth(container);
  const t0 = Date.parse(`${period.since}T00:00:00Z`);
  const t1 = Date.parse(`${period.until}T00:00:00Z`);
  const spanT = Math.max(1, t1 - t0);
  const plotW = W - PAD.left - PAD.right;
  const bottom = H - PAD.bottom;
  const top = niceMax(Math.max(1, ...days.map((d) => d.runs)));
  const xOf = (day) => PAD.left + ((Date.parse(`${day}T00:00:00Z`) - t0) / spanT) * plotW;
  const y = (v) => bottom - (v / top) * (bottom - PAD.top);
  const svg = svgElement("svg", { viewBox: `0 0 ${W} ${H}`, role: "group", "aria-label": "Runs per day" });
  axes(
    svg,
    "Date (UTC), per day",
    "runs per day",
    [0, 0.5, 1].map((f) => ({ y: y(f * top), label: number(Math.round(f * top)) })),
  );
  const line = days.map((d) => `${xOf(d.day).toFixed(1)},${y(d.runs).toFixed(1)}`);
  svg.appendChild(svgElement("polyline", { class: "line", points: line.join(" ") }));
  const radius = days.length > 60 ? 2 : 3.5;
  for (const d of days) {
    const point = svgElement("circle", { class: "point", cx: xOf(d.day).toFixed(1), cy: y(d.runs).toFixed(1), r: radius, fill: "#0072B2" });
    attachTip(point, `${d.day}: ${number(d.runs)} runs`);
    svg.appendChild(point);
  }
  const ends = [period.since, period.until];
  ends.forEach((day, i) => {
    svg.appendChild(svgElement("text", { x: i === 0 ? PAD.left : W - PAD.right, y: bottom + 16, "text-anchor": i === 0 ? "start" : "end" }, day));
  });
  container.appendChild(svg);
  legend(container, [{ name: "runs started that day", colour: "#0072B2" }]);
  dataTable(container, "Runs per day", ["day", "runs"], days.map((d) => [d.day, number(d.runs)]));
}

function renderLeaderboard(rows) {
  const body = document.querySelector("#leaderboard tbody");
  clear(body);
  if (rows.length === 0) {
    const tr = element("tr");
    tr.appendChild(element("td", { colspan: 4, class: "empty" }, "No named projects in this period."));
    body.appendChild(tr);
    return;
  }
  for (const row of rows) {
    const tr = element("tr");
    tr.appendChild(element("td", { class: "num" }, row.rank));
    tr.appendChild(element("td", { class: "project" }, row.project));
    tr.appendChild(element("td", { class: "num" }, number(row.points)));
    tr.appendChild(element("td", { class: "num" }, number(row.runs)));
    body.appendChild(tr);
  }
}

function renderUpgrades(answer) {
  const body = document.querySelector("#upgrades tbody");
  clear(body);
  if (answer.releases.length === 0) {
    const tr = element("tr");
    tr.appendChild(element("td", { colspan: 4, class: "empty" }, "No releases in this period."));
    body.appendChild(tr);
    return;
  }
  for (const release of answer.releases) {
    const tr = element("tr");
    tr.appendChild(element("td", {}, release.version));
    tr.appendChild(element("td", { class: "date" }, release.first_day));
    tr.appendChild(element("td", { class: "date" }, release.half_day || "not yet"));
    tr.appendChild(element("td", { class: "num" }, release.days === null ? "not yet" : release.days));
    body.appendChild(tr);
  }
}

function renderHealth(answer) {
  document.getElementById("health-rule").textContent = `Share of runs with a failed app, per version. A version is ${answer.rule}.`;
  barChart(
    document.getElementById("chart-health"),
    answer.versions.map((v) => ({
      name: v.flagged ? `${v.version || "(no version)"} (worse)` : v.version || "(no version)",
      value: v.run_failure_rate || 0,
      bad: v.flagged,
      detail: `${v.failed_runs} of ${v.runs} runs had a failed app (${percent(v.run_failure_rate)}); ${v.failed_apps} of ${v.apps} apps failed (${percent(v.app_failure_rate)})${v.previous ? `; against ${v.previous}: p = ${v.p_value === null ? "-" : v.p_value.toPrecision(2)}` : ""}${v.flagged ? "; clearly worse" : ""}`,
      row: [
        v.version || "(no version)",
        number(v.runs),
        number(v.failed_runs),
        percent(v.run_failure_rate),
        `${number(v.failed_apps)} / ${number(v.apps)}`,
        v.previous || "-",
        v.p_value === null ? "-" : v.p_value.toPrecision(2),
        v.flagged ? "worse" : "",
      ],
    })),
    {
      title: "Failures by version",
      xLabel: "runs with a failed app (%)",
      yLabel: "version",
      format: percent,
      max: 1,
      legend: [
        { name: "runs with a failed app (%)", colour: "#0072B2" },
        { name: "clearly worse than the release before", colour: "#b00020" },
      ],
      columns: ["version", "runs", "runs with a failed app", "share", "failed / apps", "compared with", "p", "flag"],
      emptyText: "No closed runs reporting apps in this period.",
      keepZero: true,
    },
  );
}

function renderNeverClosed(answer) {
  barChart(
    document.getElementById("chart-open"),
    answer.versions.map((v) => ({
      name: v.version || "(no version)",
      value: v.share || 0,
      detail: `${v.never_closed} of ${v.starts} level-3 runs never closed (${percent(v.share)})`,
      row: [v.version || "(no version)", number(v.starts), number(v.never_closed), percent(v.share)],
    })),
    {
      title: "Runs that never closed",
      xLabel: "level-3 runs never closed (%)",
      yLabel: "version",
      format: percent,
      max: 1,
      columns: ["version", "level-3 starts", "never closed", "share"],
      emptyText: "No level-3 runs in this period.",
      keepZero: true,
    },
  );
}

function renderStats(stats, projects) {
  document.getElementById("total-runs").textContent = number(stats.runs);
  document.getElementById("total-points").textContent = number(stats.points);
  document.getElementById("total-apps").textContent = number(stats.apps.apps);
  document.getElementById("total-projects").textContent = number(projects.named);
  document.getElementById("projects-split").textContent = `${number(projects.new)} new, ${number(projects.returning)} returning`;
  document.getElementById("failure-rate").textContent = stats.apps.apps > 0 ? percent(stats.apps.failure_rate) : "-";
  runsChart(document.getElementById("chart-runs"), stats.runs_per_day, stats);
  barChart(
    document.getElementById("chart-platforms"),
    stats.platforms.map((p) => ({ name: p.name, value: p.runs })),
    { title: "Runs per platform", xLabel: "runs", yLabel: "platform" },
  );
  barChart(
    document.getElementById("chart-exec"),
    stats.execution_time.map((b) => ({ name: b.bucket, value: b.runs })),
    { title: "Runs per execution time", xLabel: "runs", yLabel: "run time", emptyText: "No closed runs in this period." },
  );
}

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) {
    throw new Error(`${path}: HTTP ${response.status}`);
  }
  return response.json();
}

function periodQuery() {
  const choice = document.getElementById("period").value;
  if (choice === "all") {
    return "";
  }
  const until = new Date();
  const since = new Date(until.getTime() - (Number(choice) - 1) * 86400000);
  const iso = (d) => d.toISOString().slice(0, 10);
  return `&since=${iso(since)}&until=${iso(until)}`;
}

// CI runs (a project's test suite is not a user) are left out unless the box is ticked.
function ciQuery() {
  return document.getElementById("include-ci").checked ? "ci=include" : "ci=exclude";
}

async function loadProduct(product) {
  const query = `product=${encodeURIComponent(product)}${periodQuery()}&${ciQuery()}`;
  const [board, stats, versions, python, upgrades, projects, health, components, open] = await Promise.all([
    getJSON(`/api/leaderboard?${query}&limit=25`),
    getJSON(`/api/stats?${query}`),
    getJSON(`/api/adoption/versions?${query}`),
    getJSON(`/api/adoption/python?${query}`),
    getJSON(`/api/upgrades?${query}`),
    getJSON(`/api/projects?${query}`),
    getJSON(`/api/health?${query}`),
    getJSON(`/api/components?${query}`),
    getJSON(`/api/never-closed?${query}`),
  ]);
  document.getElementById("period-note").textContent = `${product}: runs started from ${stats.since} to ${stats.until} (UTC).`;
  renderStats(stats, projects);
  renderLeaderboard(board.leaderboard);
  stackedChart(document.getElementById("chart-adoption"), versions.series, {
    share: true,
    title: "Share of runs per version",
    yLabel: "share of runs (%)",
  });
  renderUpgrades(upgrades);
  stackedChart(document.getElementById("chart-python"), python.series, {
    share: true,
    title: "Share of runs per Python version",
    yLabel: "share of runs (%)",
  });
  renderHealth(health);
  stackedChart(document.getElementById("chart-components"), components.series, {
    share: false,
    title: "Runs that used each component",
    yLabel: "runs using it",
  });
  renderNeverClosed(open);
}

function showEmpty(info) {
  document.getElementById("dashboard").hidden = true;
  document.getElementById("empty").hidden = false;
  const port = info.udp_port === null || info.udp_port === undefined ? "port" : info.udp_port;
  const host = window.location.hostname.includes(":") ? `[${window.location.hostname}]` : window.location.hostname || "host";
  document.getElementById("endpoint-line").textContent = `<PRODUCT>_USAGE_TRACKING_ENDPOINT=udp://${host}:${port}`;
}

async function refresh() {
  const status = document.getElementById("status");
  const select = document.getElementById("product");
  try {
    const info = await getJSON(`/api/products?${ciQuery()}`);
    const products = info.products;
    const chosen = select.value;
    clear(select);
    for (const item of products) {
      select.appendChild(element("option", { value: item.product }, `${item.product} (${number(item.runs)} runs)`));
    }
    if (products.length === 0) {
      showEmpty(info);
      status.textContent = "No runs received yet.";
      document.body.dataset.loaded = "empty";
      return;
    }
    document.getElementById("empty").hidden = true;
    document.getElementById("dashboard").hidden = false;
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
  const params = new URLSearchParams(window.location.search);
  const period = params.get("period");
  if (period && [...document.getElementById("period").options].some((o) => o.value === period)) {
    document.getElementById("period").value = period;
  }
  const includeCI = document.getElementById("include-ci");
  // /?ci=include opens the dashboard with CI runs counted (a link can say so).
  includeCI.checked = params.get("ci") === "include";
  includeCI.addEventListener("change", () => {
    const query = new URLSearchParams(window.location.search);
    if (includeCI.checked) {
      query.set("ci", "include");
    } else {
      query.delete("ci");
    }
    const search = query.toString();
    window.history.replaceState(null, "", search ? `?${search}` : window.location.pathname);
    refresh();
  });
  document.getElementById("product").addEventListener("change", refresh);
  document.getElementById("period").addEventListener("change", () => {
    // The chosen period stays in the address, so the view can be bookmarked or shared.
    const query = new URLSearchParams(window.location.search);
    query.set("period", document.getElementById("period").value);
    window.history.replaceState(null, "", `?${query.toString()}`);
    refresh();
  });
  refresh();
  setInterval(refresh, REFRESH_MS);
});
