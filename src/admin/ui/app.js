// llm-tower's admin UI: plain JavaScript, no dependencies. Every figure comes from the
// admin API (/admin/*), the key API (/key/*) and the usage report (/v1/usage*), called with
// the master key the user signed in with (kept in sessionStorage: this tab only).
"use strict";

const KEY = "llm-tower-master-key";
const PAGES = ["overview", "providers", "routing", "keys", "requests"];
const KINDS = ["openai", "litellm", "anthropic", "gemini", "mock"];
const STRATEGIES = ["priority", "round-robin", "weighted", "least-latency", "least-busy", "least-usage"];

// ---- DOM helpers ------------------------------------------------------------------------

/** An element with attributes (`on*` functions become listeners) and children (text is
 *  always text, never HTML). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, value);
  for (const child of children.flat()) {
    if (child !== undefined && child !== null) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const $ = (id) => document.getElementById(id);

// ---- formatting ------------------------------------------------------------------------

function num(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}
const pct = (r) => (r === null || r === undefined ? "–" : (r * 100).toFixed(1) + " %");
const ms = (v) => (v === null || v === undefined ? "–" : v < 10 ? v.toFixed(2) + " ms" : Math.round(v) + " ms");
function usd(v) {
  if (v === null || v === undefined) return "–";
  if (v === 0) return "$0";
  return v < 0.01 ? "$" + v.toPrecision(2) : "$" + v.toFixed(2);
}
const when = (msSinceEpoch) => new Date(msSinceEpoch).toLocaleString();

// ---- the API ----------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || "HTTP " + status);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  const headers = { authorization: "Bearer " + sessionStorage.getItem(KEY) };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  if (!response.ok) throw new ApiError(response.status, json);
  return json;
}

/** `api`, or null when the answer is a 4xx saying a feature is off (no ledger, no keys). */
async function optional(method, path, body) {
  try {
    return await api(method, path, body);
  } catch (err) {
    if (err instanceof ApiError && (err.status === 404 || err.status === 403)) return { unavailable: err.message };
    throw err;
  }
}

// ---- sign-in and navigation -------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const key = $("master-key").value.trim();
  sessionStorage.setItem(KEY, key);
  try {
    await api("GET", "/admin/status");
    $("sign-in-error").textContent = "";
    $("master-key").value = "";
    if (!location.hash || location.hash === "#") location.hash = "#overview";
    route();
  } catch (err) {
    sessionStorage.removeItem(KEY);
    $("sign-in-error").textContent = err.status === 401 ? "That is not the master key." : err.message;
  }
}

function signOut() {
  sessionStorage.removeItem(KEY);
  route();
}

let rendering = 0;

async function route() {
  const signedIn = !!sessionStorage.getItem(KEY);
  $("sign-in").hidden = signedIn;
  $("nav").hidden = !signedIn;
  $("page").hidden = !signedIn;
  if (!signedIn) return;
  let name = location.hash.slice(1).split("/")[0];
  if (!PAGES.includes(name)) name = "overview";
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === name);
  const page = $("page");
  const ticket = ++rendering;
  page.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  try {
    const content = await RENDER[name]();
    if (ticket === rendering) page.replaceChildren(content);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return signOut();
    if (ticket === rendering) page.replaceChildren(h("p", { class: "error", role: "alert" }, err.message));
  }
}

/** Re-renders the current page (after a change). */
const refresh = () => route();

// ---- charts -----------------------------------------------------------------------------

/** A line chart of one or two series over `labels` (bucket names), as inline SVG. */
function lineChart(title, labels, series, format) {
  const W = 600, H = 190, L = 56, R = 10, T = 12, B = 26;
  const all = series.flatMap((x) => x.values).filter((v) => v !== null && v !== undefined);
  const max = Math.max(1e-9, ...all);
  const x = (i) => L + (labels.length <= 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (labels.length - 1));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  svg.append(
    s("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }),
    s("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }),
    s("text", { x: L - 6, y: T + 4, "text-anchor": "end" }, format(max)),
    s("text", { x: L - 6, y: H - B, "text-anchor": "end" }, format(0)),
  );
  if (labels.length) {
    svg.append(
      s("text", { x: L, y: H - 6, "text-anchor": "start" }, shortLabel(labels[0])),
      s("text", { x: W - R, y: H - 6, "text-anchor": "end" }, shortLabel(labels[labels.length - 1])),
    );
  }
  series.forEach((serie, k) => {
    const points = serie.values
      .map((v, i) => (v === null || v === undefined ? null : `${x(i).toFixed(1)},${y(v).toFixed(1)}`))
      .filter(Boolean);
    if (points.length > 1) svg.append(s("polyline", { class: "s" + k, points: points.join(" ") }));
    serie.values.forEach((v, i) => {
      if (v !== null && v !== undefined && v > 0) {
        svg.append(s("circle", { class: "d" + k, cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 2.2 }, s("title", {}, `${shortLabel(labels[i])}: ${format(v)}`)));
      }
    });
  });
  const legend = series.length > 1 ? h("div", { class: "legend" }, series.map((x, k) => h("span", { class: "k" + k }, x.name))) : null;
  return h("div", { class: "card chart", "data-chart": title }, h("h3", {}, title), legend, svg);
}

function shortLabel(label) {
  if (!label) return "";
  if (label.length === 10) return label.slice(5); // day: MM-DD
  return label.slice(11, 16); // hour or minute: HH:MM
}

// ---- overview ---------------------------------------------------------------------------

const RANGES = {
  hour: { label: "Last hour", seconds: 3600, group: "minute", step: 60e3 },
  day: { label: "Last day", seconds: 86400, group: "hour", step: 3600e3 },
  month: { label: "Last 30 days", seconds: 30 * 86400, group: "day", step: 86400e3 },
};
let range = "day";

function bucketsOf(r, nowMs) {
  const out = [];
  const first = Math.floor((nowMs - r.seconds * 1000) / r.step) * r.step;
  for (let t = first + r.step; t <= nowMs; t += r.step) {
    const iso = new Date(t).toISOString();
    out.push(r.group === "day" ? iso.slice(0, 10) : r.group === "hour" ? iso.slice(0, 13) + ":00:00Z" : iso.slice(0, 16) + ":00Z");
  }
  return out;
}

function breakdown(title, report) {
  if (!report || report.unavailable) return null;
  const rows = [...report.data].sort((a, b) => b.requests - a.requests);
  return h("div", { class: "card", "data-breakdown": title },
    h("h3", {}, title),
    h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "name"), ["requests", "errors", "tokens in", "tokens out", "spend", "p50", "p95", "TTFT", "cache hits"].map((c) => h("th", { class: "num" }, c)))),
      h("tbody", {}, rows.length ? rows.map((g) => h("tr", {},
        h("td", { class: "wrap" }, g.group),
        h("td", { class: "num" }, num(g.requests)),
        h("td", { class: "num" }, pct(g.error_rate)),
        h("td", { class: "num" }, num(g.prompt_tokens)),
        h("td", { class: "num" }, num(g.completion_tokens)),
        h("td", { class: "num" }, usd(g.cost_usd)),
        h("td", { class: "num" }, ms(g.latency_ms_p50)),
        h("td", { class: "num" }, ms(g.latency_ms_p95)),
        h("td", { class: "num" }, ms(g.ttft_ms_p50)),
        h("td", { class: "num" }, pct(g.cache_hit_rate)),
      )) : h("tr", {}, h("td", { colspan: 10, class: "muted" }, "No requests in this range."))),
    )),
  );
}

async function overview() {
  const r = RANGES[range];
  const now = Date.now();
  const from = Math.floor(now / 1000) - r.seconds;
  const q = (group) => optional("GET", `/v1/usage?from=${from}&group_by=${group}`);
  const [series, all, providers, targets, models, keys] = await Promise.all([q(r.group), q("all"), q("provider"), q("target"), q("model"), q("key")]);
  const toolbar = h("div", { class: "toolbar" },
    h("div", { class: "segmented" }, Object.entries(RANGES).map(([name, x]) =>
      h("button", { type: "button", class: name === range ? "active" : "", onclick: () => { range = name; refresh(); } }, x.label))),
    h("span", { class: "muted" }, "Usage from the metering ledger."));
  if (series.unavailable) return h("div", {}, h("h2", {}, "Overview"), toolbar, h("p", { class: "muted" }, series.unavailable));
  const total = all.data[0] || { requests: 0, prompt_tokens: 0, completion_tokens: 0, cost_usd: 0, error_rate: 0, latency_ms_p50: null, latency_ms_p95: null, ttft_ms_p50: null, cache_hit_rate: 0 };
  const tile = (label, value) => h("div", { class: "tile", "data-tile": label }, h("div", { class: "value" }, value), h("div", { class: "label" }, label));
  const labels = bucketsOf(r, now);
  const byBucket = new Map(series.data.map((g) => [g.group, g]));
  const values = (field, empty = 0) => labels.map((l) => (byBucket.has(l) ? byBucket.get(l)[field] : empty));
  return h("div", {},
    h("h2", {}, "Overview"),
    toolbar,
    h("div", { class: "tiles" },
      tile("requests", num(total.requests)),
      tile("tokens in", num(total.prompt_tokens)),
      tile("tokens out", num(total.completion_tokens)),
      tile("spend", usd(total.cost_usd)),
      tile("error rate", pct(total.error_rate)),
      tile("p50 latency", ms(total.latency_ms_p50)),
      tile("p95 latency", ms(total.latency_ms_p95)),
      tile("TTFT p50", ms(total.ttft_ms_p50)),
      tile("cache hit rate", pct(total.cache_hit_rate)),
    ),
    h("div", { class: "charts" },
      lineChart("Requests", labels, [{ name: "requests", values: values("requests") }], num),
      lineChart("Tokens", labels, [{ name: "in", values: values("prompt_tokens") }, { name: "out", values: values("completion_tokens") }], num),
      lineChart("Spend", labels, [{ name: "USD", values: values("cost_usd") }], usd),
      lineChart("Error rate", labels, [{ name: "errors", values: values("error_rate") }], pct),
      lineChart("Latency", labels, [{ name: "p50", values: values("latency_ms_p50", null) }, { name: "p95", values: values("latency_ms_p95", null) }], ms),
      lineChart("Time to first token", labels, [{ name: "p50", values: values("ttft_ms_p50", null) }], ms),
      lineChart("Cache hit rate", labels, [{ name: "hits", values: values("cache_hit_rate") }], pct),
    ),
    breakdown("By provider", providers),
    breakdown("By provider and upstream model", targets),
    breakdown("By model", models),
    breakdown("By key", keys),
  );
}

// ---- providers --------------------------------------------------------------------------

function providerForm(existing, onDone) {
  const settings = (existing && existing.settings) || {};
  const kind = h("select", { name: "kind", disabled: !!existing }, KINDS.map((k) => h("option", { value: k, selected: k === (existing ? existing.kind : "litellm") }, k)));
  const name = h("input", { name: "name", required: true, value: existing ? existing.name : "", disabled: !!existing, placeholder: "litellm" });
  const base = h("input", { name: "api_base", value: settings.api_base || "", placeholder: "http://127.0.0.1:4000" });
  const key = h("input", { name: "api_key", type: "password", value: settings.api_key || "", autocomplete: "off", placeholder: "sk-…" });
  const models = h("input", { name: "models", value: (settings.models || []).join(", "), placeholder: "gpt-4o-mini, claude-sonnet" });
  const result = h("p", { class: "muted", "data-test-result": "" });
  const error = h("p", { class: "error", role: "alert" });
  const labels = () => {
    const litellm = kind.value === "litellm";
    base.previousSibling.textContent = litellm ? "LiteLLM proxy URL" : "API base URL";
    key.previousSibling.textContent = litellm ? "LiteLLM master key" : "API key";
    const mock = kind.value === "mock";
    base.disabled = mock;
    key.disabled = mock;
  };
  kind.addEventListener("change", labels);
  const body = () => {
    const out = Object.assign({}, settings, { kind: kind.value });
    delete out.name;
    if (kind.value !== "mock") {
      out.api_base = base.value.trim();
      if (key.value) out.api_key = key.value; else delete out.api_key;
    }
    const list = models.value.split(",").map((m) => m.trim()).filter(Boolean);
    if (list.length) out.models = list; else delete out.models;
    return out;
  };
  const test = async () => {
    error.textContent = "";
    result.textContent = "Testing…";
    result.className = "muted";
    try {
      const answer = await api("POST", "/admin/providers/test", Object.assign({ name: name.value.trim() || "test" }, body()));
      if (answer.ok) {
        result.className = "ok";
        result.textContent = `Connected in ${ms(answer.latency_ms)}: ${answer.model_count} models` + (answer.models.length ? ` (${answer.models.slice(0, 8).join(", ")}${answer.model_count > 8 ? ", …" : ""})` : "");
      } else {
        result.className = "error";
        result.textContent = `Failed after ${ms(answer.latency_ms)}: ${answer.error.message}`;
      }
    } catch (err) {
      result.textContent = "";
      error.textContent = err.message;
    }
  };
  const save = async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      if (existing) await api("PUT", "/admin/providers/" + encodeURIComponent(existing.name), body());
      else await api("POST", "/admin/providers", Object.assign({ name: name.value.trim() }, body()));
      onDone();
    } catch (err) {
      error.textContent = err.message;
    }
  };
  const form = h("form", { class: "card", id: "provider-form", onsubmit: save },
    h("h3", {}, existing ? `Edit ${existing.name}` : "Add connection"),
    h("div", { class: "row" },
      h("label", {}, "Kind", kind),
      h("label", { class: "grow" }, "Name", name),
      h("label", { class: "grow" }, "API base URL", base),
      h("label", { class: "grow" }, "API key", key),
      h("label", { class: "grow" }, "Models (comma separated)", models),
    ),
    h("div", { class: "row" },
      h("button", { type: "button", class: "secondary", onclick: test }, "Test connection"),
      h("button", { type: "submit" }, existing ? "Save changes" : "Save"),
      existing ? h("button", { type: "button", class: "secondary", onclick: onDone }, "Cancel") : null,
    ),
    result,
    error,
  );
  labels();
  return form;
}

async function providers() {
  const [list, usage] = await Promise.all([api("GET", "/admin/providers"), optional("GET", `/v1/usage?from=${Math.floor(Date.now() / 1000) - 86400}&group_by=provider`)]);
  const day = new Map(((usage && usage.data) || []).map((g) => [g.group, g]));
  const holder = h("div", {});
  const showForm = (existing) => holder.replaceChildren(providerForm(existing, () => { holder.replaceChildren(providerForm(null, refresh)); refresh(); }));
  showForm(null);
  const breaker = (p) => {
    const open = (p.breakers || []).filter((b) => b.state !== "closed");
    if (!(p.breakers || []).length) return h("span", { class: "muted" }, "–");
    return open.length ? h("span", { class: "badge bad", title: open.map((b) => `${b.target}: ${b.state}`).join("\n") }, open[0].state) : h("span", { class: "badge good" }, "closed");
  };
  const rows = list.data.map((p) => {
    const health = p.health || {};
    const used = day.get(p.name);
    const status = h("span", { class: "muted" });
    const test = async () => {
      status.textContent = "…";
      const answer = await api("POST", `/admin/providers/${encodeURIComponent(p.name)}/test`);
      status.className = answer.ok ? "ok" : "error";
      status.textContent = answer.ok ? `ok, ${ms(answer.latency_ms)}` : answer.error.message;
    };
    const remove = async () => {
      if (!confirm(`Delete provider ${p.name}?`)) return;
      try {
        await api("DELETE", "/admin/providers/" + encodeURIComponent(p.name));
        refresh();
      } catch (err) {
        status.className = "error";
        status.textContent = err.message;
      }
    };
    const editable = p.source !== "litellm_config";
    return h("tr", { "data-provider": p.name },
      h("td", {}, h("strong", {}, p.name), h("div", { class: "muted" }, p.source)),
      h("td", {}, p.kind),
      h("td", { class: "wrap" }, p.api_base),
      h("td", { class: "wrap" }, (p.models || []).join(", ")),
      h("td", { class: "num" }, num(health.requests)),
      h("td", { class: "num" }, pct(health.error_rate)),
      h("td", { class: "num" }, ms(health.p50_ms)),
      h("td", {}, breaker(p)),
      h("td", { class: "wrap" }, health.last_error ? `${health.last_error.status}: ${health.last_error.message}` : "–"),
      h("td", { class: "num" }, used ? num(used.requests) : "0"),
      h("td", { class: "num" }, used ? usd(used.cost_usd) : "$0"),
      h("td", {}, h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary", onclick: test }, "Test"),
        editable ? h("button", { type: "button", class: "secondary", onclick: () => showForm(p) }, "Edit") : null,
        editable ? h("button", { type: "button", class: "danger", onclick: remove }, "Delete") : null,
      ), status),
    );
  });
  return h("div", {},
    h("h2", {}, "Providers"),
    h("div", { class: "card scroll" }, h("table", { id: "providers-table" },
      h("thead", {}, h("tr", {}, ["provider", "kind", "address", "models"].map((c) => h("th", {}, c)), ["requests (5 min)", "errors", "p50"].map((c) => h("th", { class: "num" }, c)), h("th", {}, "breaker"), h("th", {}, "last error"), ["requests (day)", "spend (day)"].map((c) => h("th", { class: "num" }, c)), h("th", {}, ""))),
      h("tbody", {}, rows),
    )),
    holder,
  );
}

// ---- routing ----------------------------------------------------------------------------

function simpleForm(title, fields, submit) {
  const error = h("p", { class: "error", role: "alert" });
  const inputs = fields.map((f) => (f.options
    ? h("select", { name: f.name }, f.options.map((o) => h("option", { value: o, selected: o === f.value }, o)))
    : h("input", { name: f.name, value: f.value || "", placeholder: f.placeholder || "", required: !!f.required, disabled: !!f.disabled })));
  const form = h("form", { class: "card", onsubmit: async (event) => {
    event.preventDefault();
    error.textContent = "";
    const values = Object.fromEntries(inputs.map((i) => [i.name, i.value.trim()]));
    try {
      await submit(values);
      refresh();
    } catch (err) {
      error.textContent = err.message;
    }
  } },
    h("h3", {}, title),
    h("div", { class: "row" }, fields.map((f, i) => h("label", { class: "grow" }, f.label, inputs[i])), h("button", { type: "submit" }, "Save")),
    error);
  return form;
}

async function routing() {
  const [aliases, combos] = await Promise.all([api("GET", "/admin/aliases"), api("GET", "/admin/combos")]);
  const aliasHolder = h("div", {});
  const comboHolder = h("div", {});
  const aliasForm = (a) => simpleForm(a ? `Edit alias ${a.name}` : "Add alias", [
    { name: "name", label: "Name", value: a && a.name, required: true, disabled: !!a, placeholder: "fast" },
    { name: "target", label: "Target (provider/model, alias or combo)", value: a && a.target, required: true, placeholder: "openai/gpt-4o-mini" },
  ], (v) => (a ? api("PUT", "/admin/aliases/" + encodeURIComponent(a.name), { target: v.target }) : api("POST", "/admin/aliases", v)));
  const comboForm = (c) => {
    const settings = (c && c.settings) || {};
    const targets = (settings.targets || []).map((t) => (typeof t === "string" ? t : t.target)).join(", ");
    return simpleForm(c ? `Edit combo ${c.name}` : "Add combo", [
      { name: "name", label: "Name", value: c && c.name, required: true, disabled: !!c, placeholder: "smart" },
      { name: "strategy", label: "Strategy", options: STRATEGIES, value: settings.strategy || "priority" },
      { name: "targets", label: "Targets (comma separated)", value: targets, required: true, placeholder: "openai/gpt-4o, litellm/claude" },
    ], (v) => {
      const body = Object.assign({}, settings, { strategy: v.strategy, targets: v.targets.split(",").map((t) => t.trim()).filter(Boolean) });
      return c ? api("PUT", "/admin/combos/" + encodeURIComponent(c.name), body) : api("POST", "/admin/combos", Object.assign({ name: v.name }, body));
    });
  };
  aliasHolder.append(aliasForm(null));
  comboHolder.append(comboForm(null));
  const remove = (what, name) => async () => {
    if (!confirm(`Delete ${what} ${name}?`)) return;
    try { await api("DELETE", `/admin/${what === "alias" ? "aliases" : "combos"}/${encodeURIComponent(name)}`); refresh(); } catch (err) { alert(err.message); }
  };
  const editable = (x) => x.source !== "litellm_config";
  return h("div", {},
    h("h2", {}, "Routing"),
    h("div", { class: "card scroll" }, h("h3", {}, "Aliases"), h("table", { id: "aliases-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "alias"), h("th", {}, "target"), h("th", {}, "source"), h("th", {}, ""))),
      h("tbody", {}, aliases.data.map((a) => h("tr", { "data-alias": a.name },
        h("td", {}, a.name), h("td", {}, a.target), h("td", { class: "muted" }, a.source),
        h("td", {}, editable(a) ? h("div", { class: "actions" },
          h("button", { type: "button", class: "secondary", onclick: () => aliasHolder.replaceChildren(aliasForm(a)) }, "Edit"),
          h("button", { type: "button", class: "danger", onclick: remove("alias", a.name) }, "Delete")) : null)))))),
    aliasHolder,
    h("div", { class: "card scroll" }, h("h3", {}, "Combos"), h("table", { id: "combos-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "combo"), h("th", {}, "strategy"), h("th", {}, "targets"), h("th", {}, "source"), h("th", {}, ""))),
      h("tbody", {}, combos.data.map((c) => h("tr", { "data-combo": c.name },
        h("td", {}, c.name), h("td", {}, (c.settings && c.settings.strategy) || "priority"),
        h("td", { class: "wrap" }, ((c.settings && c.settings.targets) || []).map((t) => (typeof t === "string" ? t : t.target)).join(" → ")),
        h("td", { class: "muted" }, c.source),
        h("td", {}, editable(c) ? h("div", { class: "actions" },
          h("button", { type: "button", class: "secondary", onclick: () => comboHolder.replaceChildren(comboForm(c)) }, "Edit"),
          h("button", { type: "button", class: "danger", onclick: remove("combo", c.name) }, "Delete")) : null)))))),
    comboHolder,
  );
}

// ---- keys -------------------------------------------------------------------------------

async function keys() {
  const list = await optional("GET", "/key/list?return_full_object=true&size=100");
  if (list.unavailable) return h("div", {}, h("h2", {}, "Keys"), h("p", { class: "muted" }, list.unavailable));
  const created = h("div", {});
  const form = simpleForm("Create key", [
    { name: "key_alias", label: "Alias", required: true, placeholder: "my-app" },
    { name: "models", label: "Models (comma separated; empty: all)", placeholder: "fast, openai/*" },
    { name: "max_budget", label: "Budget (USD)", placeholder: "10" },
    { name: "budget_duration", label: "Budget period", placeholder: "30d" },
    { name: "rpm_limit", label: "Requests per minute", placeholder: "60" },
  ], async (v) => {
    const body = { key_alias: v.key_alias };
    const models = v.models.split(",").map((m) => m.trim()).filter(Boolean);
    if (models.length) body.models = models;
    if (v.max_budget) body.max_budget = Number(v.max_budget);
    if (v.budget_duration) body.budget_duration = v.budget_duration;
    if (v.rpm_limit) body.rpm_limit = Number(v.rpm_limit);
    const answer = await api("POST", "/key/generate", body);
    sessionStorage.setItem("llm-tower-new-key", JSON.stringify({ alias: answer.key_alias, key: answer.key }));
  });
  const fresh = sessionStorage.getItem("llm-tower-new-key");
  if (fresh) {
    const { alias, key } = JSON.parse(fresh);
    sessionStorage.removeItem("llm-tower-new-key");
    created.append(h("div", { class: "card" }, h("h3", {}, `Key ${alias} created`), h("p", {}, "Copy it now: it is not shown again."), h("div", { class: "secret", "data-new-key": "" }, key)));
  }
  const act = (path, body) => async () => { try { await api("POST", path, body); refresh(); } catch (err) { alert(err.message); } };
  const rows = list.keys.map((k) => {
    const share = k.max_budget ? Math.min(1, k.spend / k.max_budget) : 0;
    const bar = h("div", { class: "bar" + (k.max_budget && k.spend >= k.max_budget ? " over" : "") }, h("span", {}));
    bar.firstChild.style.width = (share * 100).toFixed(1) + "%";
    return h("tr", { "data-key": k.key_alias || k.token },
      h("td", {}, h("strong", {}, k.key_alias || "–"), h("div", { class: "muted" }, k.key_name)),
      h("td", { class: "wrap" }, (k.models || []).length ? k.models.join(", ") : "all"),
      h("td", {}, `${usd(k.spend)} of ${k.max_budget === null ? "no budget" : usd(k.max_budget)}`, k.max_budget ? bar : null),
      h("td", { class: "num" }, k.rpm_limit === null ? "–" : num(k.rpm_limit)),
      h("td", {}, k.blocked ? h("span", { class: "badge bad" }, "blocked") : h("span", { class: "badge good" }, "active")),
      h("td", {}, h("div", { class: "actions" },
        k.blocked
          ? h("button", { type: "button", class: "secondary", onclick: act("/key/unblock", { key: k.token }) }, "Unblock")
          : h("button", { type: "button", class: "secondary", onclick: act("/key/block", { key: k.token }) }, "Block"),
        h("button", { type: "button", class: "danger", onclick: async () => { if (confirm(`Delete key ${k.key_alias || k.key_name}?`)) await act("/key/delete", { keys: [k.token] })(); } }, "Delete"))),
    );
  });
  return h("div", {},
    h("h2", {}, "Keys"),
    created,
    h("div", { class: "card scroll" }, h("table", { id: "keys-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "key"), h("th", {}, "models"), h("th", {}, "spend"), h("th", { class: "num" }, "rpm"), h("th", {}, "state"), h("th", {}, ""))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No virtual keys yet."))))),
    form,
  );
}

// ---- requests ---------------------------------------------------------------------------

const filters = { model: "", provider: "", key: "", status: "" };

async function requests() {
  const query = new URLSearchParams({ limit: "100" });
  for (const [k, v] of Object.entries(filters)) if (v) query.set(k, v);
  const list = await optional("GET", "/v1/usage/records?" + query);
  const inputs = Object.keys(filters).map((k) => h("input", { name: k, value: filters[k], placeholder: k === "status" ? "e.g. 500" : "" }));
  const bar = h("form", { class: "card", id: "filters", onsubmit: (event) => {
    event.preventDefault();
    inputs.forEach((i) => { filters[i.name] = i.value.trim(); });
    refresh();
  } }, h("div", { class: "row" }, inputs.map((i) => h("label", { class: "grow" }, i.name, i)), h("button", { type: "submit" }, "Filter")));
  if (list.unavailable) return h("div", {}, h("h2", {}, "Requests"), h("p", { class: "muted" }, list.unavailable));
  const details = h("div", {});
  const show = (r) => details.replaceChildren(h("div", { class: "card", id: "request-details" },
    h("h3", {}, "Request " + r.request_id),
    h("dl", { class: "details" }, Object.entries(r).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v === null ? "–" : typeof v === "object" ? JSON.stringify(v) : String(v))]))));
  const rows = list.data.map((r) => h("tr", { class: "clickable", "data-request": r.request_id, onclick: () => show(r) },
    h("td", {}, when(r.started_at_ms)),
    h("td", {}, r.key),
    h("td", { class: "wrap" }, r.requested_model),
    h("td", {}, r.provider || "–"),
    h("td", {}, h("span", { class: "badge " + (r.status < 400 ? "good" : r.status === 499 ? "warn" : "bad") }, r.status)),
    h("td", { class: "num" }, ms(r.latency_ms)),
    h("td", { class: "num" }, `${num(r.prompt_tokens)} / ${num(r.completion_tokens)}`),
    h("td", { class: "num" }, usd(r.cost_usd)),
    h("td", {}, r.cache || "–"),
  ));
  return h("div", {},
    h("h2", {}, "Requests"),
    bar,
    h("div", { class: "card scroll" }, h("table", { id: "requests-table" },
      h("thead", {}, h("tr", {}, ["time", "key", "model", "provider", "status"].map((c) => h("th", {}, c)), ["latency", "tokens in / out", "cost"].map((c) => h("th", { class: "num" }, c)), h("th", {}, "cache"))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No requests match."))))),
    details,
  );
}

const RENDER = { overview, providers, routing, keys, requests };

// ---- start ------------------------------------------------------------------------------

$("sign-in-form").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
route();
