// keel dashboard: polls the service's JSON endpoints and renders tables and SVG bars.
// No framework, no build step. Every render replaces the content of one element.
"use strict";

const POLL_MS = Number(document.body.dataset.pollMs) || 3000;
const $ = (id) => document.getElementById(id);

// Formatting follows keel.fmt (the same rules as the CLI and the reports): the decimals come
// from the service (window.KEEL_FMT = keel.fmt.js_config()).
const FMT = window.KEEL_FMT || {money: 2, price: 2, bps: 1, pct: 2, qty_max: 6, missing: "–"};
const missing = (x) => x === null || x === undefined || x === "" || !isFinite(Number(x));
const fixed = (x, d) => {
  const s = Number(x).toLocaleString("en-US", {minimumFractionDigits: d,
                                               maximumFractionDigits: d});
  return /^-[0.,]*$/.test(s) ? s.slice(1) : s;  // no "-0.00"
};
const money = (x, d = FMT.money) => missing(x) ? FMT.missing : fixed(x, d);
const price = (x) => missing(x) ? FMT.missing : fixed(x, FMT.price);
const pct = (x, d = FMT.pct) => missing(x) ? FMT.missing : fixed(100 * Number(x), d) + "%";
const num = (x, d = FMT.bps) => missing(x) ? FMT.missing : fixed(x, d);
const qty = (x) => missing(x) ? FMT.missing :
  Number(x).toLocaleString("en-US", {maximumFractionDigits: FMT.qty_max});

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;", "'": "&#39;"}[c]));
}

function rows(tbody, items, render, emptyText, cols) {
  const el = document.querySelector(tbody);
  if (!items || items.length === 0) {
    el.innerHTML = `<tr><td class="empty l" colspan="${cols}">${esc(emptyText)}</td></tr>`;
    return;
  }
  el.innerHTML = items.map(render).join("");
}

// Horizontal bar chart (SVG): items = [[label, value], ...], values formatted by fmt.
function bars(container, items, fmt) {
  const el = $(container);
  if (!items.length) { el.innerHTML = '<div class="empty">nothing to show</div>'; return; }
  const w = 480, rowH = 20, labelW = 150, valueW = 70;
  const maxAbs = Math.max(...items.map(([, v]) => Math.abs(v)), 1e-12);
  const hasNeg = items.some(([, v]) => v < 0);
  const span = w - labelW - valueW;
  const zero = labelW + (hasNeg ? span / 2 : 0);
  const scale = (hasNeg ? span / 2 : span) / maxAbs;
  const h = items.length * rowH + 4;
  const parts = items.map(([label, v], i) => {
    const y = i * rowH + 2, bw = Math.abs(v) * scale, x = v < 0 ? zero - bw : zero;
    const color = v < 0 ? "#b23b3b" : "#4c78a8";
    return `<text x="0" y="${y + 14}">${esc(label)}</text>` +
      `<rect x="${x}" y="${y + 4}" width="${Math.max(bw, 1)}" height="12" fill="${color}"/>` +
      `<text x="${w - valueW + 6}" y="${y + 14}">${esc(fmt(v))}</text>`;
  });
  el.innerHTML = `<svg width="${w}" height="${h}" role="img">` +
    `<line x1="${zero}" x2="${zero}" y1="0" y2="${h}" stroke="#ccc"/>${parts.join("")}</svg>`;
}

async function getJSON(path) {
  const r = await fetch(path, {cache: "no-store"});
  if (!r.ok) {
    let reason = r.statusText;
    try { reason = (await r.json()).detail || reason; } catch (e) { /* not JSON */ }
    throw new Error(`${path}: ${r.status} ${reason}`);
  }
  return r.json();
}

function renderPortfolio(p) {
  $("equity").textContent = money(p.equity);
  $("pnl").textContent = money(Number(p.equity) - Number(p.net_deposits));
  $("cash").textContent = money(p.cash);
  $("gross").textContent = pct(p.gross_weight, 1);
  $("n-positions").textContent = String(p.n_positions);
  const maxW = Math.max(...p.positions.map((r) => Math.abs(r.weight)), 1e-12);
  rows("#positions tbody", p.positions, (r) => {
    const w = Math.round(40 * Math.abs(r.weight) / maxW);
    const pnl = Number(r.unrealized_pnl);
    return `<tr data-symbol="${esc(r.symbol)}"><td>${esc(r.symbol)}</td>` +
      `<td class="l sector" title="${esc(r.sector ?? "")}">${esc(r.sector ?? "")}</td>` +
      `<td class="qty">${qty(r.qty)}</td>` +
      `<td>${price(r.mark)}</td><td>${money(r.market_value)}</td>` +
      `<td class="weight">${pct(r.weight)}` +
      `<span class="wbar${r.weight < 0 ? " neg" : ""}" style="width:${w}px"></span></td>` +
      `<td class="${pnl < 0 ? "neg" : "pos"}">${money(pnl)}</td></tr>`;
  }, "no positions", 7);
  const sec = Object.entries(p.sector_weights).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
  bars("sector-chart", sec, (v) => pct(v, 1));
}

function renderRisk(r) {
  if (r.status !== "ok") {
    $("vol").textContent = "0.00%";
    $("risk-summary").textContent = r.status === "flat" ? "flat book: no risk" : r.status;
    $("risk-chart").innerHTML = "";
    rows("#risk-sectors tbody", [], null, "no positions", 4);
    rows("#breaches tbody", [], null, "no limit breached", 5);
    $("var").textContent = "–";
    return;
  }
  const d = r.decomposition;
  $("vol").textContent = pct(r.volatility);
  $("risk-summary").textContent = r.summary +
    (r.unmodelled.length ? ` · not modelled: ${r.unmodelled.join(", ")}` : "");
  const parts = Object.entries(d.by_group).map(([k, v]) => [k, v]);
  parts.push(["specific", d.specific]);
  bars("risk-chart", parts, (v) => pct(v));
  const sectors = d.by_sector.filter((s) => s.weight !== 0 || s.risk !== 0).sort((a, b) => Math.abs(b.risk) - Math.abs(a.risk));
  rows("#risk-sectors tbody", sectors, (s) =>
    `<tr><td>${esc(s.sector)}</td><td>${pct(s.weight)}</td><td>${pct(s.risk)}</td>` +
    `<td>${pct(s.share)}</td></tr>`, "no sectors", 4);
  const nv = r.var_cvar.normal || {}, hv = r.var_cvar.historical || {};
  $("var-label").textContent = `VaR ${Math.round(100 * r.confidence)}% ${r.horizon_days}d`;
  $("var").textContent = pct(nv.var);
  $("var-detail").textContent =
    `VaR / CVaR ${Math.round(100 * r.confidence)}%, ${r.horizon_days} days, fraction of NAV: ` +
    `normal ${pct(nv.var)} / ${pct(nv.cvar)} · historical ${pct(hv.var)} / ${pct(hv.cvar)}`;
  rows("#breaches tbody", r.breaches, (b) =>
    `<tr class="breach"><td>${esc(b.code)}</td>` +
    `<td class="l sev-${esc(b.severity.toLowerCase())}">${esc(b.severity.toLowerCase())}</td><td class="l">${esc(b.subject)}</td><td>${num(b.value, 4)}</td>` +
    `<td>${num(b.limit, 4)}</td></tr>`, "no limit breached", 5);
}

function renderExecution(x) {
  $("n-fills").textContent = String(x.n_fills);
  $("filled-notional").textContent = money(x.filled_notional);
  rows("#tca tbody", x.by_symbol, (s) =>
    `<tr data-symbol="${esc(s.key)}"><td>${esc(s.key)}</td><td>${num(s.orders, 0)}</td>` +
    `<td>${money(s.notional)}</td><td>${num(s.slippage_bps_mean)}</td>` +
    `<td>${num(s.is_bps_mean)}</td><td>${pct(s.participation_mean)}</td></tr>`,
    "no executed orders yet", 6);
}

function renderOrders(o) {
  rows("#orders tbody", o.orders.slice(0, 25), (r) =>
    `<tr data-order="${esc(r.client_order_id)}"><td class="id">${esc(r.client_order_id)}</td>` +
    `<td class="l">${esc(r.symbol)}</td><td class="l">${esc(r.side)}</td>` +
    `<td>${qty(r.qty)}</td><td>${qty(r.filled_qty)}</td><td class="l">${esc(r.status)}</td>` +
    `<td>${r.children.length}</td><td>${r.fills.length}</td><td>${price(r.avg_price)}</td>` +
    `<td class="l">${esc((r.created_at || "").slice(0, 19).replace("T", " "))}</td></tr>`,
    "no orders", 10);
}

function renderControl(c) {
  const k = $("kill-switch");
  k.textContent = c.kill_switch.engaged ? "KILL SWITCH ENGAGED" : "kill switch off";
  k.className = "pill " + (c.kill_switch.engaged ? "bad" : "ok");
  $("engine").textContent = "engine: " + (c.engine.requested || "config");
}

// ---------------------------------------------------------------- charts over time (Plotly)

const PLOT_CONFIG = {displayModeBar: false, responsive: true};
const LAYOUT = {margin: {l: 70, r: 60, t: 10, b: 40}, height: 300, showlegend: true,
                legend: {orientation: "h", y: -0.2}, font: {size: 11},
                paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)"};
const nums = (xs) => xs.map((v) => (missing(v) ? null : Number(v)));

function plot(id, traces, layout) {
  if (typeof Plotly === "undefined") { $(id).textContent = "charts unavailable"; return; }
  Plotly.react(id, traces, {...LAYOUT, ...layout}, PLOT_CONFIG);
}

function renderEquity(e) {
  $("max-dd").textContent = pct(e.max_drawdown);
  plot("equity-chart", [{x: e.t, y: nums(e.equity), name: "equity (USD)", type: "scatter",
                         mode: "lines", line: {color: "#4c78a8"}}],
       {yaxis: {title: {text: "USD"}, tickformat: ",.0f"}});
  plot("pnl-chart", [
    {x: e.t, y: nums(e.pnl), name: "P&L (USD)", type: "scatter", mode: "lines",
     line: {color: "#2f7d4f"}},
    {x: e.t, y: e.drawdown.map((v) => (v === null ? null : 100 * v)), name: "drawdown (%)",
     type: "scatter", mode: "lines", fill: "tozeroy", yaxis: "y2",
     fillcolor: "rgba(178,59,59,0.15)", line: {color: "#b23b3b", width: 1}}],
    {yaxis: {title: {text: "USD"}, tickformat: ",.0f"},
     yaxis2: {title: {text: "%"}, overlaying: "y", side: "right", rangemode: "tozero",
              tickformat: ".3~f"}});
}

function renderTrading(t) {
  const costs = t.commission.map((c, i) => Number(c) + Number(t.slippage[i]));
  plot("trading-chart", [
    {x: t.day, y: t.turnover.map((v) => (v === null ? null : 100 * v)), name: "turnover (%)",
     type: "bar", marker: {color: "#4c78a8"}},
    {x: t.day, y: costs, name: "costs (USD)", type: "scatter", mode: "lines+markers",
     yaxis: "y2", line: {color: "#c98a00"}}],
    {yaxis: {title: {text: "%"}}, yaxis2: {title: {text: "USD"}, overlaying: "y",
                                            side: "right", tickformat: ",.0f"},
     xaxis: {type: "category"}});
  plot("slippage-chart", [
    {x: t.day, y: t.realised_bps, name: "realised (bps)", type: "bar",
     marker: {color: "#b23b3b"}},
    {x: t.day, y: t.predicted_bps, name: "predicted (bps)", type: "bar",
     marker: {color: "#4c78a8"}}],
    {barmode: "group", yaxis: {title: {text: "bps"}}, xaxis: {type: "category"}});
}

function renderBreaches(b) {
  const traces = Object.entries(b.limits).map(([code, counts]) =>
    ({x: b.days, y: counts, name: code, type: "bar"}));
  plot("breach-chart", traces.length ? traces : [{x: [], y: [], type: "bar", name: "none"}],
       {barmode: "stack", yaxis: {title: {text: "breaches"}, rangemode: "tozero"},
        xaxis: {type: "category"}});
}

function renderAttribution(a) {
  if (!a.sessions) {
    $("attribution-summary").textContent = a.reason || "no history yet";
    plot("attribution-chart", [{x: [], y: [], type: "bar", name: "none"}], {});
    rows("#attribution-groups tbody", [], null, "no history yet", 2);
    return;
  }
  $("attribution-summary").textContent =
    `${a.start.slice(0, 10)} to ${a.end.slice(0, 10)}, ${a.sessions} sessions · ` +
    `book ${pct(a.portfolio_return)} vs ${a.benchmark} ${pct(a.benchmark_return)}: ` +
    `active ${pct(a.active_return)} · NAV ${pct(a.book_return)} ` +
    `(costs and fills vs close ${pct(a.other)}); Brinson-Fachler by sector, linked`;
  const sectors = Object.keys(a.brinson_by_sector).filter((k) => k !== "total");
  const effect = (c, color) => ({x: sectors, type: "bar", name: c, marker: {color},
    y: sectors.map((k) => 100 * a.brinson_by_sector[k][c])});
  plot("attribution-chart", [effect("allocation", "#4c78a8"),
                             effect("selection", "#2f7d4f"),
                             effect("interaction", "#c98a00")],
       {barmode: "relative", yaxis: {title: {text: "% of NAV"}}, xaxis: {type: "category"}});
  const groups = Object.entries(a.factor_groups || {});
  rows("#attribution-groups tbody", groups, ([k, v]) =>
    `<tr><td class="l">${esc(k)}</td><td>${pct(v)}</td></tr>`, "no factor model", 2);
}

async function refresh() {
  const jobs = [
    ["/health", (h) => {
      const s = $("store-status");
      s.textContent = h.store.reachable ? "store ok" : "store unreachable";
      s.className = "pill " + (h.store.reachable ? "ok" : "bad");
    }],
    ["/api/portfolio", renderPortfolio],
    ["/api/risk", renderRisk],
    ["/api/execution", renderExecution],
    ["/api/orders?limit=25", renderOrders],
    ["/api/control", renderControl],
    ["/api/timeseries/equity", renderEquity],
    ["/api/timeseries/trading", renderTrading],
    ["/api/timeseries/breaches", renderBreaches],
    ["/api/attribution", renderAttribution],
  ];
  await Promise.all(jobs.map(async ([path, render]) => {
    try { render(await getJSON(path)); } catch (e) {
      console.warn(String(e));
      if (path === "/health") {  // 503 or no answer: say so rather than keep "store ok"
        $("store-status").textContent = "store unreachable";
        $("store-status").className = "pill bad";
      }
    }
  }));
  $("updated").textContent = new Date().toISOString().slice(11, 19) + " UTC";
  document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
}

// The cost form: one POST per submit; a refusal shows the service's reason.
$("cost-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const out = $("cost-result");
  const body = {symbol: $("cost-symbol").value.trim(), qty: Number($("cost-qty").value),
                side: $("cost-side").value};
  const r = await fetch("/api/cost-estimate", {method: "POST", body: JSON.stringify(body),
                                               headers: {"Content-Type": "application/json"}});
  const x = await r.json();
  const tbody = document.querySelector("#cost-table tbody");
  if (!r.ok) {
    out.className = "sub error";
    out.textContent = `refused (${r.status}): ${x.detail}`;
    tbody.innerHTML = "";
    return;
  }
  out.className = "sub";
  out.textContent = `${x.side} ${qty(x.qty)} ${x.symbol} at ${price(x.price)}: ` +
    `notional ${money(x.notional)}, cost ${money(x.cost)} = ${num(x.cost_bps, 2)} bps ` +
    `(participation ${pct(x.inputs.participation)} of ADV)`;
  tbody.innerHTML = Object.keys(x.components).map((k) =>
    `<tr data-component="${esc(k)}"><td>${esc(k)}</td><td>${money(x.components[k])}</td>` +
    `<td>${num(x.components_bps[k], 2)} bps</td></tr>`).join("");
  out.dataset.costBps = String(x.cost_bps);
});

async function loop() {
  await refresh();
  setTimeout(loop, POLL_MS);
}
loop();
