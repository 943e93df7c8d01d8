// The console of `dynadex serve`: plain JS over the same REST API any client uses (no build step, nothing
// fetched from elsewhere). The API key lives in this tab's sessionStorage only and goes out as
// `Authorization: ApiKey <key>`. Everything the server answers is shown as text (textContent), never as HTML.
"use strict";

const KEY = "dynadex.apiKey";
const TYPES = ["string", "int", "float", "bool", "date", "datetime", "timestamp", "time"];
const $ = (id) => document.getElementById(id);

function key() { return sessionStorage.getItem(KEY) || ""; }

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

// One call to the API: the parsed JSON answer, or an Error whose message says what the server refused and why.
async function api(method, path, body) {
  if (!key()) throw new Error("Enter an API key first (dynadex keys create NAME prints one).");
  const init = { method, headers: { "Authorization": "ApiKey " + key(), "Accept": "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new Error("The server did not answer: " + e.message);
  }
  const text = await response.text();
  let doc = null;
  try { doc = text ? JSON.parse(text) : null; } catch (e) { doc = null; }
  if (!response.ok) {
    const kind = doc && doc.type ? doc.type : response.statusText;
    const message = doc && doc.message ? doc.message : text;
    if (response.status === 401) {
      $("key-state").textContent = "key refused";
      $("key-state").className = "bad";
    }
    const hint = response.status === 401 ? " Check the API key: it is wrong, revoked or missing."
      : response.status === 403 ? " This key may not read that." : "";
    throw new Error(`${response.status} ${kind}: ${String(message).replace(/\.?\s*$/, ".")}${hint}`);
  }
  return doc;
}

function cell(value) {
  if (value === null || value === undefined) return el("td", "null", "null");
  return el("td", typeof value === "object" ? JSON.stringify(value) : String(value));
}

function showRows(title, doc) {
  const table = $("results");
  const head = table.tHead, body = table.tBodies[0];
  head.replaceChildren();
  body.replaceChildren();
  const names = (doc.column_fields || []).map((f) => f.name);
  const rows = doc.results || [];
  if (!names.length && rows.length) names.push(...Object.keys(rows[0]));
  const tr = el("tr");
  for (const n of names) tr.appendChild(el("th", n));
  head.appendChild(tr);
  for (const row of rows) {
    const line = el("tr");
    for (const n of names) line.appendChild(cell(row[n]));
    body.appendChild(line);
  }
  $("result-title").textContent = title;
  const about = doc.dynadex || {};
  const parts = [`${rows.length} row${rows.length === 1 ? "" : "s"}`];
  if (doc.stats && doc.stats.elapsed_time_ms !== undefined) parts.push(`${doc.stats.elapsed_time_ms} ms`);
  if (about.snapshot !== undefined) parts.push(`snapshot ${about.snapshot}`);
  if (about.snapshot_committed_at) parts.push(`committed ${about.snapshot_committed_at}`);
  for (const w of doc.warnings || []) parts.push("warning: " + w);
  $("result-meta").textContent = parts.join(" · ");
}

async function runQuery() {
  showError("");
  const sql = $("sql").value;
  try {
    const doc = await api("POST", "/v1/orgs/self/queries", { sql: { query: sql, parameters: [] } });
    showRows("query", doc);
  } catch (e) {
    showError(e.message);
  }
}

function seconds(s) {
  if (s === null || s === undefined) return "—";
  return s < 120 ? `${Number(s).toFixed(1)} s` : s < 7200 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`;
}

async function loadTables() {
  const body = $("tables").tBodies[0];
  try {
    const doc = await api("GET", "/v1/dynadex/tables");
    body.replaceChildren();
    for (const t of doc.tables) {
      const tr = el("tr");
      tr.dataset.table = t.table;
      tr.appendChild(el("td", t.table));
      tr.appendChild(el("td", String(t.items)));
      const lag = el("td", t.lag_seconds === null ? "not followed" : seconds(t.lag_seconds),
                     t.lag_seconds === null ? "muted" : t.lag_seconds > 60 ? "lag-late" : "lag-ok");
      lag.className += " lag";
      lag.title = "how far the index is behind its table's stream, as the sync last saw it";
      tr.appendChild(lag);
      tr.appendChild(el("td", t.checked_seconds_ago === null ? "—" : seconds(t.checked_seconds_ago) + " ago"));
      body.appendChild(tr);
    }
  } catch (e) {
    body.replaceChildren();
    showError(e.message);
  }
}

// The parameters a lambda's SQL names (`:name`, not a `::type` cast), each with its default when it has one.
function lambdaParameters(version) {
  const defaults = (version.sql && version.sql.default_parameters) || [];
  const out = defaults.map((p) => ({ name: p.name, type: p.type || "string", value: p.value }));
  const seen = new Set(out.map((p) => p.name));
  const query = (version.sql && version.sql.query) || "";
  for (const m of query.matchAll(/(^|[^:\w]):([A-Za-z_]\w*)/g)) {
    if (!seen.has(m[2])) { seen.add(m[2]); out.push({ name: m[2], type: "string", value: "" }); }
  }
  return out;
}

let chosen = null;

function openLambda(item) {
  const version = item.latest_version;
  chosen = item;
  $("lambda-form").hidden = false;
  $("lambda-name").textContent = `${item.workspace}.${item.name} (version ${version.version})`;
  $("lambda-sql").textContent = version.sql.query;
  const box = $("lambda-params");
  box.replaceChildren();
  for (const p of lambdaParameters(version)) {
    const row = el("div", undefined, "param");
    const label = el("label", p.name);
    const input = el("input");
    input.name = "param-" + p.name;
    input.id = "param-" + p.name;
    input.value = p.value === null || p.value === undefined ? "" : String(p.value);
    label.htmlFor = input.id;
    const type = el("select");
    type.name = "type-" + p.name;
    for (const t of TYPES) {
      const o = el("option", t);
      o.value = t;
      type.appendChild(o);
    }
    type.value = p.type;
    row.dataset.param = p.name;
    row.append(label, input, type);
    box.appendChild(row);
  }
}

async function runLambda(event) {
  event.preventDefault();
  showError("");
  if (!chosen) return;
  const parameters = [];
  for (const row of $("lambda-params").querySelectorAll(".param")) {
    parameters.push({ name: row.dataset.param, type: row.querySelector("select").value,
                      value: row.querySelector("input").value });
  }
  const path = `/v1/orgs/self/ws/${encodeURIComponent(chosen.workspace)}/lambdas/` +
               `${encodeURIComponent(chosen.name)}/versions/${encodeURIComponent(chosen.latest_version.version)}`;
  try {
    const doc = await api("POST", path, { parameters });
    showRows(`lambda ${chosen.name}:${chosen.latest_version.version}`, doc);
  } catch (e) {
    showError(e.message);
  }
}

async function loadLambdas() {
  const list = $("lambdas");
  try {
    const doc = await api("GET", "/v1/orgs/self/lambdas");
    list.replaceChildren();
    if (!doc.data.length) list.appendChild(el("li", "none yet (an admin key creates them)", "muted"));
    for (const item of doc.data) {
      const li = el("li");
      const a = el("a", item.name);
      a.dataset.lambda = item.name;
      a.addEventListener("click", () => openLambda(item));
      li.append(a, el("span", `  v${item.latest_version.version} · ${item.collections.join(", ")}`, "muted"));
      list.appendChild(li);
    }
  } catch (e) {
    list.replaceChildren();
    showError(e.message);
  }
}

function showKeyState() {
  const state = $("key-state");
  state.textContent = key() ? "key set (this tab only)" : "no key";
  state.className = key() ? "ok" : "muted";
}

async function refresh() {
  showError("");
  showKeyState();
  if (!key()) { showError("Enter an API key to query the index."); return; }
  await loadTables();
  await loadLambdas();
}

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("api-key").value.trim());
    $("api-key").value = "";
    refresh();
  });
  $("forget-key").addEventListener("click", () => { sessionStorage.removeItem(KEY); refresh(); });
  $("run-query").addEventListener("click", runQuery);
  $("sql").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) runQuery(); });
  $("refresh-tables").addEventListener("click", () => { showError(""); loadTables(); });
  $("refresh-lambdas").addEventListener("click", () => { showError(""); loadLambdas(); });
  $("lambda-form").addEventListener("submit", runLambda);
  refresh();
});
