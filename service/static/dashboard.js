// The convtrain dashboard: the job list, a network editor that validates as you type, and a live
// view of one job (charts, layer pictures, predictions, controls). Plain DOM and canvas, no
// dependencies; no inline code, no eval and no innerHTML, so a CSP of 'self' alone is enough.

const DEFAULT_JS = `layer_defs = [];
layer_defs.push({type:'input', out_sx:24, out_sy:24, out_depth:1});
layer_defs.push({type:'conv', sx:5, filters:8, stride:1, pad:2, activation:'relu'});
layer_defs.push({type:'pool', sx:2, stride:2});
layer_defs.push({type:'conv', sx:5, filters:16, stride:1, pad:2, activation:'relu'});
layer_defs.push({type:'pool', sx:3, stride:3});
layer_defs.push({type:'softmax', num_classes:10});

net = new convnetjs.Net();
net.makeLayers(layer_defs);

trainer = new convnetjs.SGDTrainer(net, {method:'adadelta', batch_size:20, l2_decay:0.001});
`;

const DEFAULT_JSON = `{
  "network": {
    "layers": [
      {"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1},
      {"type": "conv", "sx": 5, "filters": 8, "stride": 1, "pad": 2, "activation": "relu"},
      {"type": "pool", "sx": 2, "stride": 2},
      {"type": "conv", "sx": 5, "filters": 16, "stride": 1, "pad": 2, "activation": "relu"},
      {"type": "pool", "sx": 3, "stride": 3},
      {"type": "softmax", "num_classes": 10}
    ]
  },
  "trainer": {"method": "adadelta", "batch_size": 20, "l2_decay": 0.001}
}
`;

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const TRAINER_FIELDS = ["learning_rate", "momentum", "batch_size", "l1_decay", "l2_decay"];
const VALIDATE_DELAY_MS = 300;
const JOBS_REFRESH_MS = 2000;

// --- small helpers -------------------------------------------------------------------------------

const $ = (selector) => document.querySelector(selector);

/** An element with properties (class, dataset, on<event>, anything else as a property) and children. */
function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node[key] = value;
  }
  node.append(...children.flat().filter((c) => c != null && c !== false).map((c) => (c instanceof Node ? c : String(c))));
  return node;
}

const num = (x) => (x == null ? "–" : Number(x).toLocaleString("en-US"));
const pct = (x, digits = 1) => (x == null ? "–" : `${(100 * x).toFixed(digits)}%`);
function short(x) {
  if (x == null || !Number.isFinite(x)) return "–";
  const a = Math.abs(x);
  if (a !== 0 && (a < 0.001 || a >= 1e5)) return x.toExponential(1);
  return String(+x.toPrecision(3));
}
function kilo(x) {
  return x >= 1000 ? `${+(x / 1000).toFixed(1)}k` : String(+x.toFixed(2));
}
function ago(seconds) {
  if (!seconds) return "";
  const s = Math.max(0, Date.now() / 1000 - seconds);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(seconds * 1000).toLocaleDateString();
}

// --- the API -------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    super(problemText(problem, status));
    this.status = status;
    this.problem = problem;
  }
}

/** The text of a problem+json body: title, detail and each field error on its own line. */
function problemText(problem, status) {
  const head = problem.detail ? `${problem.title}: ${problem.detail}` : problem.title || `HTTP ${status}`;
  return [head, ...(problem.errors || []).map((e) => (e.path ? `${e.path}: ${e.message}` : e.message))].join("\n");
}

async function api(path, { method = "GET", json, body, headers = {} } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, { title: "The API did not answer", detail: e.message });
  }
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json().catch(() => null) : null;
  if (response.status === 401) $("#signin").classList.remove("hidden");
  if (!response.ok) throw new ApiError(response.status, data || { title: `${response.status} ${response.statusText}` });
  return data;
}

// --- signing in, when the server wants tokens ----------------------------------------------------

async function showSession() {
  try {
    const who = await api("/v1/whoami");
    $("#who").textContent = who.tokens_required ? `signed in as ${who.principal}` : "";
    $("#signout").classList.toggle("hidden", !who.tokens_required);
  } catch (e) {
    // 401 shows the sign-in form (see api); any other answer means there is nothing to sign in to.
  }
}

/** Trade the token for the API's HttpOnly session cookie, which images and event streams carry too. */
async function signIn(event) {
  event.preventDefault();
  try {
    await api("/v1/session", { method: "POST", json: { token: $("#token").value } });
    location.reload();
  } catch (e) {
    $("#signin-error").textContent = e.problem.detail || e.message;
  }
}

async function signOut() {
  await api("/v1/session", { method: "DELETE" }).catch(() => {});
  location.reload();
}

// --- the job list --------------------------------------------------------------------------------

let current = null; // the job on the right: {id, job, source, layers: {...}, trainer}

async function refreshJobs() {
  const list = $("#job-list");
  try {
    const { jobs } = await api("/v1/jobs?limit=30");
    const focused = document.activeElement?.dataset?.id;
    list.replaceChildren(...jobs.map(jobRow));
    $("#jobs-note").textContent = jobs.length ? `${jobs.length === 30 ? "newest " : ""}${jobs.length} job${jobs.length === 1 ? "" : "s"}` : "none yet";
    if (focused) list.querySelector(`li[data-id="${focused}"]`)?.focus();
  } catch (e) {
    $("#jobs-note").textContent = e.message.split("\n")[0];
  }
}

function jobRow(job) {
  const p = job.progress;
  const detail = job.result ? `test ${pct(job.result.test_acc)}`
    : p.fraction != null ? `${pct(p.fraction, 0)} of ${kilo(p.examples_total)}` : `${num(p.examples_seen)} examples`;
  const select = () => selectJob(job.id);
  return h("li", { class: job.id === current?.id ? "selected" : "", dataset: { id: job.id, status: job.status },
                   tabIndex: 0, onclick: select, onkeydown: (e) => e.key === "Enter" && select() },
    h("span", { class: "name", title: job.id }, job.name || job.id),
    h("span", { class: `pill ${job.status}` }, job.status),
    h("span", { class: "muted small" }, detail),
    h("span", { class: "muted small right-align" }, ago(job.created_at)));
}

// --- the editor ----------------------------------------------------------------------------------

const editor = { mode: "js", texts: { js: DEFAULT_JS, json: DEFAULT_JSON }, timer: 0, seq: 0, errorLines: new Set() };

function setMode(mode) {
  const spec = $("#spec");
  editor.texts[editor.mode] = spec.value;
  editor.mode = mode;
  spec.value = editor.texts[mode];
  $("#mode-js").classList.toggle("on", mode === "js");
  $("#mode-json").classList.toggle("on", mode === "json");
  renderGutter();
  validateSoon(0);
}

function renderGutter() {
  const spec = $("#spec");
  const lines = spec.value.split("\n").length;
  $("#gutter").replaceChildren(...Array.from({ length: lines }, (_, i) =>
    h("div", { class: editor.errorLines.has(i + 1) ? "bad" : "" }, i + 1)));
  $("#gutter").scrollTop = spec.scrollTop;
}

function validateSoon(delay = VALIDATE_DELAY_MS) {
  clearTimeout(editor.timer);
  editor.timer = setTimeout(validate, delay);
}

/** The validate request for the editor's text: demo JS goes inside JSON; JSON goes as typed, so its parse errors carry lines. */
function validateRequest() {
  const text = $("#spec").value;
  if (editor.mode === "js") return { json: { convnetjs: text } };
  return { body: text, headers: { "Content-Type": "application/json" } };
}

async function validate() {
  const seq = ++editor.seq;
  let network = null;
  let error = null;
  try {
    network = await api("/v1/networks/validate", { method: "POST", ...validateRequest() });
  } catch (e) {
    error = e;
  }
  if (seq !== editor.seq) return; // the text changed while this answer was on its way
  if (error) showSpecErrors(error);
  else showShapes(network);
}

function showShapes(network) {
  editor.errorLines = new Set();
  renderGutter();
  let previous = -1;
  const rows = network.layers.map((layer, i) => {
    const derived = layer.source === previous; // added by desugaring: an activation, an fc before softmax
    previous = layer.source;
    return h("tr", { class: derived ? "derived" : "" },
      h("td", { class: "muted" }, i),
      h("td", {}, h("b", {}, layer.type), " ", h("span", { class: "muted" }, describeLayer(layer))),
      h("td", { class: "mono" }, `${layer.out_sx}×${layer.out_sy}×${layer.out_depth}`),
      h("td", { class: "num" }, num(layer.params)),
      h("td", { class: "num" }, num(layer.macs)));
  });
  $("#validation").dataset.state = "valid";
  $("#validation").replaceChildren(
    h("div", { class: "ok" }, `✓ valid: ${network.layers.length} layers, ${num(network.params)} parameters, `
      + `${num(network.macs)} multiply-adds per example`),
    h("table", { class: "shapes" },
      h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "layer"), h("th", {}, "output"),
        h("th", { class: "num" }, "params"), h("th", { class: "num" }, "mult-adds"))),
      h("tbody", {}, rows)));
}

function describeLayer(l) {
  switch (l.type) {
    case "conv": return `${l.sx}×${l.sy}, ${l.filters} filters, stride ${l.stride}, pad ${l.pad}`;
    case "pool": return `${l.sx}×${l.sy}, stride ${l.stride}${l.pad ? `, pad ${l.pad}` : ""}`;
    case "fc": return `${l.num_neurons} neurons`;
    case "softmax": case "svm": return `${l.num_classes} classes`;
    case "dropout": return `p=${l.drop_prob}`;
    case "maxout": return `groups of ${l.group_size}`;
    default: return "";
  }
}

function showSpecErrors(error) {
  const text = $("#spec").value;
  const found = error.problem.errors?.length ? error.problem.errors : [{ path: "", message: error.problem.detail || error.message }];
  const items = found.map((e) => {
    const line = e.line ?? (editor.mode === "json" ? lineOfPath(text, e.path) : null) ?? lineInMessage(e.message);
    const message = e.message.replace(/^line \d+: /, "");
    return { line, path: e.path, message };
  });
  editor.errorLines = new Set(items.map((e) => e.line).filter(Boolean));
  renderGutter();
  $("#validation").dataset.state = "invalid";
  $("#validation").replaceChildren(
    h("div", { class: "bad" }, `✗ ${items.length} problem${items.length === 1 ? "" : "s"}`),
    h("ul", { class: "errors" }, items.map((e) =>
      h("li", { onclick: () => e.line && selectLine(e.line), class: e.line ? "has-line" : "" },
        e.line ? h("span", { class: "line" }, `line ${e.line}`) : null,
        e.path ? h("code", {}, e.path) : null, " ", e.message))));
}

function lineInMessage(message) {
  const m = /\bline (\d+)/.exec(message || "");
  return m ? Number(m[1]) : null;
}

const lineAt = (text, index) => text.slice(0, index).split("\n").length;

/** The line of `layers[i]` (or of its field, `layers[i].sx`) in JSON text; null when it cannot be found. */
function lineOfPath(text, path) {
  const m = /layers\[(\d+)\](?:\.(\w+))?/.exec(path || "");
  const start = text.search(/"layers"\s*:\s*\[/);
  if (!m || start < 0) return null;
  let depth = 0, count = -1, inString = false, objectStart = -1;
  for (let i = text.indexOf("[", start); i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
    } else if (c === "[" || c === "{") {
      depth++;
      if (depth === 2 && c === "{" && ++count === Number(m[1])) objectStart = i;
    } else if (c === "]" || c === "}") {
      depth--;
      if (depth === 1 && objectStart >= 0) {
        const field = m[2] ? text.slice(objectStart, i).indexOf(`"${m[2]}"`) : -1;
        return lineAt(text, field >= 0 ? objectStart + field : objectStart);
      }
      if (depth === 0) break;
    }
  }
  return null;
}

function selectLine(line) {
  const spec = $("#spec");
  const lines = spec.value.split("\n");
  const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
  spec.focus();
  spec.setSelectionRange(start, start + (lines[line - 1] || "").length);
  const lineHeight = parseFloat(getComputedStyle(spec).lineHeight) || 18;
  spec.scrollTop = Math.max(0, (line - 3) * lineHeight);
}

async function submitJob(event) {
  event.preventDefault();
  const error = $("#submit-error");
  error.textContent = "";
  const name = $("#job-name").value.trim();
  const budget = { [$("#budget-unit").value]: Number($("#budget").value) };
  let body;
  if (editor.mode === "js") {
    body = { convnetjs: $("#spec").value };
  } else {
    try {
      const parsed = JSON.parse($("#spec").value);
      body = parsed && "layers" in parsed ? { network: parsed } : parsed;
    } catch (e) {
      error.textContent = `The JSON does not parse: ${e.message}`;
      return;
    }
  }
  body = { ...body, budget, ...(name ? { name } : {}) };
  $("#submit").disabled = true;
  try {
    const job = await api("/v1/jobs", { method: "POST", json: body });
    await selectJob(job.id);
    refreshJobs();
  } catch (e) {
    error.textContent = e.message;
    if (e.status === 422) showSpecErrors(e);
  } finally {
    $("#submit").disabled = false;
  }
}

// --- charts --------------------------------------------------------------------------------------

const MAX_BUCKETS = 600;

/** A line chart of metric series against examples seen: each series a min/max band and a line through the last values. */
class Chart {
  constructor(canvas, series, { range = null, percent = false } = {}) {
    Object.assign(this, { canvas, series, range, percent, buckets: [], count: 0, pending: false });
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  reset() {
    this.buckets = [];
    this.setCount(0);
    this.draw();
  }

  setCount(count) {
    this.count = count;
    this.canvas.dataset.points = String(count); // read by the browser test
  }

  setHistory(buckets) {
    this.buckets = buckets.map((b) => ({ x: b.examples, min: b.min, max: b.max, last: b.last }));
    this.setCount(buckets.reduce((n, b) => n + b.count, 0));
    this.draw();
  }

  add(point) {
    this.buckets.push({ x: point.examples, min: point, max: point, last: point });
    if (this.buckets.length > MAX_BUCKETS) this.compact();
    this.setCount(this.count + 1);
    if (!this.pending) {
      this.pending = true;
      requestAnimationFrame(() => { this.pending = false; this.draw(); });
    }
  }

  /** Halve the buckets, keeping each pair's extremes, so a long run stays cheap to draw. */
  compact() {
    const merged = [];
    for (let i = 0; i + 1 < this.buckets.length; i += 2) {
      const [a, b] = [this.buckets[i], this.buckets[i + 1]];
      const min = {}, max = {};
      for (const { key } of this.series) {
        min[key] = Math.min(a.min[key] ?? Infinity, b.min[key] ?? Infinity);
        max[key] = Math.max(a.max[key] ?? -Infinity, b.max[key] ?? -Infinity);
      }
      merged.push({ x: b.x, min, max, last: b.last });
    }
    if (this.buckets.length % 2) merged.push(this.buckets.at(-1));
    this.buckets = merged;
  }

  draw() {
    const canvas = this.canvas, dpr = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    if (!width || !height) return;
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    const g = canvas.getContext("2d");
    g.scale(dpr, dpr);
    g.font = "11px system-ui, sans-serif";
    const box = { left: 46, right: width - 10, top: 26, bottom: height - 22 };
    const finite = (v) => typeof v === "number" && Number.isFinite(v);
    const values = this.buckets.flatMap((b) => this.series.flatMap(({ key }) => [b.min[key], b.max[key]])).filter(finite);
    let [lo, hi] = this.range || [Math.min(0, ...values), Math.max(...values, 1e-6)];
    if (!this.range) hi *= 1.05;
    const xMax = Math.max(1, ...this.buckets.map((b) => b.x));
    const X = (x) => box.left + (x / xMax) * (box.right - box.left);
    const Y = (y) => box.bottom - ((y - lo) / (hi - lo)) * (box.bottom - box.top);

    g.strokeStyle = "#e6e9ef";
    g.fillStyle = "#6b7380";
    g.lineWidth = 1;
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (const t of ticks(lo, hi, 5)) {
      g.beginPath(); g.moveTo(box.left, Y(t)); g.lineTo(box.right, Y(t)); g.stroke();
      g.fillText(this.percent ? `${Math.round(t * 100)}%` : short(t), box.left - 6, Y(t));
    }
    g.textAlign = "center";
    g.textBaseline = "top";
    for (const t of ticks(0, xMax, 6)) g.fillText(kilo(t), X(t), box.bottom + 6);
    g.strokeStyle = "#b9c0cc";
    g.beginPath(); g.moveTo(box.left, box.top); g.lineTo(box.left, box.bottom); g.lineTo(box.right, box.bottom); g.stroke();

    if (!this.buckets.length) {
      g.fillStyle = "#8a93a2";
      g.textBaseline = "middle";
      g.fillText("waiting for the first metrics…", (box.left + box.right) / 2, (box.top + box.bottom) / 2);
    }
    let legendX = box.left;
    for (const { key, label, color } of this.series) {
      const points = this.buckets.filter((b) => finite(b.last[key]));
      if (points.some((b) => b.min[key] !== b.max[key])) {
        g.globalAlpha = 0.18;
        g.fillStyle = color;
        g.beginPath();
        points.forEach((b, i) => g[i ? "lineTo" : "moveTo"](X(b.x), Y(b.max[key])));
        [...points].reverse().forEach((b) => g.lineTo(X(b.x), Y(b.min[key])));
        g.fill();
        g.globalAlpha = 1;
      }
      g.strokeStyle = color;
      g.lineWidth = 1.6;
      g.beginPath();
      points.forEach((b, i) => g[i ? "lineTo" : "moveTo"](X(b.x), Y(b.last[key])));
      g.stroke();
      const latest = points.at(-1)?.last[key];
      const text = `${label} ${this.percent ? pct(latest) : short(latest)}`;
      g.fillStyle = color;
      g.fillRect(legendX, 8, 10, 10);
      g.fillStyle = "#1d2330";
      g.textAlign = "left";
      g.textBaseline = "middle";
      g.fillText(text, legendX + 14, 13);
      legendX += g.measureText(text).width + 30;
    }
  }
}

/** About `count` round tick values between lo and hi. */
function ticks(lo, hi, count) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / count, power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(+t.toPrecision(12));
  return out;
}

let charts = null;

// --- one job -------------------------------------------------------------------------------------

async function selectJob(id) {
  if (current?.id === id) return;
  current?.source?.close();
  current = { id, job: null, source: null, layers: { loading: false, pending: undefined } };
  const mine = () => current?.id === id;
  history.replaceState(null, "", `#job=${id}`);
  document.querySelectorAll("#job-list li").forEach((li) => li.classList.toggle("selected", li.dataset.id === id));
  $("#empty").classList.add("hidden");
  $("#job").classList.remove("hidden");
  for (const selector of ["#job-error", "#control-error", "#upload-result", "#predictions", "#layers", "#predictions-note", "#layers-note"]) {
    $(selector).replaceChildren();
  }
  $("#layers").dataset.snapshot = "";
  charts.loss.reset();
  charts.acc.reset();
  try {
    const job = await api(`/v1/jobs/${id}`);
    if (!mine()) return;
    showJob(job);
    fillTrainer(job);
    const metrics = await api(`/v1/jobs/${id}/metrics?points=300`);
    if (!mine()) return;
    charts.loss.setHistory(metrics.buckets);
    charts.acc.setHistory(metrics.buckets);
    loadLayers();
    if (job.status === "succeeded") loadPredictions();
    if (!TERMINAL.has(job.status)) follow(id, metrics.next);
  } catch (e) {
    if (mine()) $("#job-error").textContent = e.message;
  }
}

/** Follow the job's event stream; EventSource reconnects by itself and resumes after the last event id. */
function follow(id, after) {
  const source = new EventSource(`/v1/jobs/${id}/events?after=${after}`);
  current.source = source;
  const on = (kind, handle) => source.addEventListener(kind, (e) => {
    if (current?.id === id) handle(JSON.parse(e.data));
  });
  on("metrics", (point) => {
    charts.loss.add(point);
    charts.acc.add(point);
    const job = current.job;
    job.metrics = point;
    job.progress.examples_seen = point.examples;
    const total = job.progress.examples_total;
    if (total) {
      job.progress.fraction = Math.min(1, point.examples / total);
      job.progress.eta_seconds = point.examples_per_second ? Math.max(0, total - point.examples) / point.examples_per_second : null;
    }
    showJob(job);
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED && current?.id === id) {
      $("#control-error").textContent = "The event stream was refused; pick the job again to retry.";
    }
  });
  on("status", () => refreshJob());
  on("trainer", () => refreshJob(true));
  on("snapshot", (event) => loadLayers(event.snapshot));
  on("end", (job) => {
    source.close();
    showJob(job);
    loadLayers();
    if (job.status === "succeeded") loadPredictions();
    refreshJobs();
  });
}

async function refreshJob(withTrainer = false) {
  const id = current.id;
  try {
    const job = await api(`/v1/jobs/${id}`);
    if (current?.id !== id) return;
    showJob(job);
    if (withTrainer) fillTrainer(job);
  } catch (e) {
    $("#control-error").textContent = e.message;
  }
}

function showJob(job) {
  current.job = job;
  const { progress: p, metrics: m, result: r } = job;
  $("#job-title").replaceChildren(job.name || "job", " ", h("span", { class: "muted mono small" }, job.id));
  const status = $("#job-status");
  status.textContent = job.status_detail || job.status;
  status.className = `pill ${job.status}`;
  $("#job").dataset.status = job.status;
  $("#progress-bar").style.width = `${100 * (p.fraction ?? 0)}%`;
  const fact = (label, value) => (value == null ? null : h("span", { class: "fact" }, h("small", {}, label), value));
  $("#job-facts").replaceChildren(...[
    fact("examples", `${num(p.examples_seen)}${p.examples_total ? ` / ${num(p.examples_total)}` : ""}`),
    p.eta_seconds != null && job.status === "running" ? fact("eta", `${Math.round(p.eta_seconds)} s`) : null,
    r ? fact("test accuracy", pct(r.test_acc, 2)) : null,
    m ? fact("loss", short(m.class_loss)) : null,
    m ? fact("train acc", pct(m.train_acc)) : null,
    m?.val_acc != null ? fact("val acc", pct(m.val_acc)) : null,
    m ? fact("examples/s", num(Math.round(m.examples_per_second))) : null,
    m ? fact("fwd / bwd", `${short(m.forward_ms)} / ${short(m.backward_ms)} ms`) : null,
    m ? fact("lr / batch", `${short(m.learning_rate)} / ${m.batch_size}`) : null,
    job.network ? fact("params", num(job.network.params)) : null,
    fact("device", job.worker ? `${job.device} · ${job.worker}` : job.device),
  ].filter(Boolean));
  $("#job-error").textContent = job.error ? `${job.error.type}: ${job.error.message}` : "";
  const s = job.status;
  $("#btn-pause").disabled = !(s === "running" || s === "queued") || job.status_detail === "pausing";
  $("#btn-resume").disabled = s !== "paused";
  $("#btn-cancel").disabled = TERMINAL.has(s) || job.status_detail === "cancelling";
  $("#trainer-form").querySelectorAll("input, button").forEach((input) => { input.disabled = TERMINAL.has(s); });
  $("#upload").disabled = s !== "succeeded";
  $("#upload-card").classList.toggle("disabled", s !== "succeeded");
  $("#upload-hint").textContent = s === "succeeded" ? "" : "(once the job has succeeded)";
  $("#predictions-card").classList.toggle("hidden", s !== "succeeded");
}

function fillTrainer(job) {
  const trainer = job.request?.trainer || {};
  current.trainer = trainer;
  for (const field of TRAINER_FIELDS) $("#trainer-form").elements[field].value = trainer[field] ?? "";
}

async function control(action) {
  $("#control-error").textContent = "";
  try {
    showJob(await api(`/v1/jobs/${current.id}/${action}`, { method: "POST" }));
    refreshJobs();
  } catch (e) {
    $("#control-error").textContent = e.message;
  }
}

async function applyTrainer(event) {
  event.preventDefault();
  const form = $("#trainer-form");
  const changes = {};
  for (const field of TRAINER_FIELDS) {
    const raw = form.elements[field].value;
    if (raw !== "" && Number(raw) !== current.trainer?.[field]) changes[field] = Number(raw);
  }
  $("#control-error").textContent = Object.keys(changes).length ? "" : "Nothing changed.";
  if (!Object.keys(changes).length) return;
  try {
    const job = await api(`/v1/jobs/${current.id}/trainer`, { method: "PATCH", json: changes });
    showJob(job);
    fillTrainer(job);
  } catch (e) {
    $("#control-error").textContent = e.message;
  }
}

// --- layer pictures ------------------------------------------------------------------------------

/** Load the layer pictures (the newest, or snapshot k); while one load runs, keep only the latest request. */
async function loadLayers(k) {
  const state = current.layers, id = current.id;
  if (state.loading) {
    state.pending = k;
    return;
  }
  state.loading = true;
  try {
    const data = await api(`/v1/jobs/${id}/layers${k == null ? "" : `?snapshot=${k}`}`);
    if (current?.id === id) showLayers(data);
  } catch (e) {
    if (current?.id === id) $("#layers-note").textContent = e.status === 404 ? "no pictures yet: they appear a few seconds into training" : e.message;
  } finally {
    state.loading = false;
    if (state.pending !== undefined && current?.id === id) {
      const next = state.pending;
      state.pending = undefined;
      loadLayers(next);
    }
  }
}

function showLayers(data) {
  const grid = $("#layers");
  grid.dataset.snapshot = String(data.snapshot);
  $("#layers-note").textContent = `snapshot ${data.snapshot} of ${data.snapshots} · after ${num(data.examples)} examples`;
  const cards = data.layers.map((layer) => {
    const card = grid.querySelector(`[data-index="${layer.index}"]`) || h("div", { class: "layer", dataset: { index: layer.index } });
    const range = (lo, hi) => (lo == null ? "–" : `${short(lo)} … ${short(hi)}`);
    const stats = h("div", { class: "stats" },
      h("div", {}, h("b", {}, `${layer.index} ${layer.type}`), " ",
        h("span", { class: "mono" }, `${layer.out_sx}×${layer.out_sy}×${layer.out_depth}`)),
      h("div", {}, h("small", {}, "activations "), range(layer.act_min, layer.act_max)),
      h("div", {}, h("small", {}, "gradients "), range(layer.grad_min, layer.grad_max)),
      layer.weight_min != null ? h("div", {}, h("small", {}, "weights "), range(layer.weight_min, layer.weight_max)) : null,
      layer.params ? h("div", {}, h("small", {}, "params "), num(layer.params)) : null);
    const images = card.querySelector(".images") || h("div", { class: "images" });
    for (const kind of ["activations", "gradients", "filters"]) {
      const url = layer.images?.[kind];
      let figure = images.querySelector(`[data-kind="${kind}"]`);
      if (!url) {
        figure?.remove();
        continue;
      }
      if (!figure) {
        const img = h("img", { alt: `${kind} of layer ${layer.index}`, onload: () => pixelScale(img) });
        figure = h("figure", { dataset: { kind } }, img, h("figcaption", {}, kind));
        images.append(figure);
      }
      const img = figure.querySelector("img");
      if (img.getAttribute("src") !== url) img.src = url;
    }
    card.replaceChildren(stats, images);
    return card;
  });
  grid.replaceChildren(...cards);
}

/** Size a picture to about the same area as the others: small ones at a whole multiple (sharp pixels), big ones shrunk. */
function pixelScale(img) {
  const w = img.naturalWidth, h = img.naturalHeight;
  const scale = Math.min(4, 300 / w, 240 / h, 160 / Math.sqrt(w * h));
  img.width = Math.round(w * (scale >= 1 ? Math.floor(scale) : scale));
  img.height = Math.round(h * (scale >= 1 ? Math.floor(scale) : scale));
}

// --- predictions and your own image ----------------------------------------------------------------

/** Draw a data: URL into a canvas without an <img>, so the page needs no img-src data: in its CSP. */
async function drawDataUrl(canvas, url) {
  const [head, base64] = url.split(",");
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  await drawBlob(canvas, new Blob([bytes], { type: head.slice(5).split(";")[0] }));
}

async function drawBlob(canvas, blob) {
  const bitmap = await createImageBitmap(blob);
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  canvas.getContext("2d").drawImage(bitmap, 0, 0);
}

async function loadPredictions() {
  const id = current.id;
  try {
    const data = await api(`/v1/jobs/${id}/predictions?limit=40`);
    if (current?.id !== id) return;
    const wrong = data.predictions.filter((p) => p.top[0].class !== p.label).length;
    $("#predictions-note").textContent = `test accuracy ${pct(data.test_acc, 2)} · ${wrong} of these ${data.predictions.length} wrong`;
    $("#predictions").replaceChildren(...data.predictions.map((p) => {
      const canvas = h("canvas", { class: "digit" });
      drawDataUrl(canvas, p.image).catch(() => {});
      const ok = p.top[0].class === p.label;
      return h("div", { class: `prediction ${ok ? "right" : "wrong"}`, title: `test image ${p.index}, label ${p.label}` },
        canvas,
        h("div", { class: "guess" }, String(p.top[0].class), h("small", {}, ` ${pct(p.top[0].probability, 0)}`)),
        h("div", { class: "others" }, p.top.slice(1).filter((t) => t.probability >= 0.01)
          .map((t) => `${t.class} ${pct(t.probability, 0)}`).join(" · ")));
    }));
  } catch (e) {
    if (current?.id === id) $("#predictions-note").textContent = e.status === 409 ? "when the job has succeeded" : e.message;
  }
}

async function classify(file) {
  const out = $("#upload-result");
  if (!file) return;
  if (current?.job?.status !== "succeeded") {
    out.replaceChildren(h("div", { class: "error" }, "Your own images can be classified once the job has succeeded."));
    return;
  }
  const preview = h("canvas", { class: "digit large" });
  drawBlob(preview, file).catch(() => {});
  out.replaceChildren(preview, h("span", { class: "muted" }, "classifying…"));
  try {
    const answer = await api(`/v1/jobs/${current.id}/predict`, { method: "POST", body: formWith(file) });
    out.replaceChildren(preview, h("div", { class: "bars" }, answer.top.map((t) => {
      const bar = h("div", { class: "bar" });
      bar.style.width = `${100 * t.probability}%`;
      return h("div", { class: "bar-row" }, h("b", {}, t.class), h("div", { class: "track" }, bar), pct(t.probability));
    })));
  } catch (e) {
    out.replaceChildren(preview, h("div", { class: "error" }, e.message));
  }
}

function formWith(file) {
  const form = new FormData();
  form.append("image", file);
  return form;
}

// --- start ---------------------------------------------------------------------------------------

function start() {
  charts = {
    loss: new Chart($("#chart-loss"), [
      { key: "class_loss", label: "loss", color: "#d9480f" },
      { key: "l2_loss", label: "L2 loss", color: "#868e96" }]),
    acc: new Chart($("#chart-acc"), [
      { key: "train_acc", label: "training", color: "#1c7ed6" },
      { key: "val_acc", label: "validation", color: "#2b8a3e" }], { range: [0, 1], percent: true }),
  };
  const spec = $("#spec");
  spec.value = DEFAULT_JS;
  spec.addEventListener("input", () => { renderGutter(); validateSoon(); });
  spec.addEventListener("scroll", () => { $("#gutter").scrollTop = spec.scrollTop; });
  $("#mode-js").addEventListener("click", () => editor.mode !== "js" && setMode("js"));
  $("#mode-json").addEventListener("click", () => editor.mode !== "json" && setMode("json"));
  $("#submit-form").addEventListener("submit", submitJob);
  $("#btn-pause").addEventListener("click", () => control("pause"));
  $("#btn-resume").addEventListener("click", () => control("resume"));
  $("#btn-cancel").addEventListener("click", () => control("cancel"));
  $("#trainer-form").addEventListener("submit", applyTrainer);
  $("#upload").addEventListener("change", (e) => classify(e.target.files[0]));
  const drop = $("#drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    classify(e.dataTransfer.files[0]);
  });
  $("#signin").addEventListener("submit", signIn);
  $("#signout").addEventListener("click", signOut);
  showSession();
  renderGutter();
  validate();
  refreshJobs();
  setInterval(() => document.hidden || refreshJobs(), JOBS_REFRESH_MS);
  const linked = /^#job=([0-9a-f]{8,40})$/.exec(location.hash);
  if (linked) selectJob(linked[1]);
}

start();
