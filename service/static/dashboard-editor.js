// The "New job" editor: the spec as demo JS or JSON, validated by the API as you type (the shape
// table, or each error at its line in the gutter), and the Train button that submits it.

import { api } from "./api.js";
import { chosenDataset, initDatasets } from "./datasets.js";
import { $, h } from "./dom.js";
import { num } from "./format.js";
import { selectJob } from "./job.js";
import { refreshJobs } from "./jobs-list.js";
import { lineInMessage, lineOfPath } from "./spec-lines.js";

// The first network of the assignment, in both forms the editor takes.
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

const VALIDATE_DELAY_MS = 300; // wait for a pause in the typing, so a burst of keys costs one request

// The editor's state: the text of each mode (switching keeps both), the pending validation, the
// number of the newest validate request (older answers are dropped) and the lines to mark red.
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

/** The validate request for the editor's text: demo JS goes inside JSON, checked against the picked dataset;
 * JSON goes as typed, so its parse errors carry lines. */
function validateRequest() {
  const text = $("#spec").value;
  if (editor.mode === "js") return { json: { convnetjs: text, data: { dataset: chosenDataset() } } };
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

/** Select a line of the spec and scroll it into view: clicking an error shows where it is. */
function selectLine(line) {
  const spec = $("#spec");
  const lines = spec.value.split("\n");
  const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
  spec.focus();
  spec.setSelectionRange(start, start + (lines[line - 1] || "").length);
  const lineHeight = parseFloat(getComputedStyle(spec).lineHeight) || 18;
  spec.scrollTop = Math.max(0, (line - 3) * lineHeight);
}

/** Submit the spec as a job. The budget field replaces any budget in the JSON; a bare network ({"layers": ...}) is taken too. */
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
  if (!body.data?.dataset) body.data = { ...(body.data || {}), dataset: chosenDataset() }; // the JSON's own wins
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

/** Fill the editor with the first network, validate it, and validate again whenever it changes. */
export function initEditor() {
  const spec = $("#spec");
  spec.value = DEFAULT_JS;
  spec.addEventListener("input", () => { renderGutter(); validateSoon(); });
  spec.addEventListener("scroll", () => { $("#gutter").scrollTop = spec.scrollTop; });
  $("#mode-js").addEventListener("click", () => editor.mode !== "js" && setMode("js"));
  $("#mode-json").addEventListener("click", () => editor.mode !== "json" && setMode("json"));
  $("#submit-form").addEventListener("submit", submitJob);
  initDatasets(() => validateSoon(0));
  renderGutter();
  validate();
}
