// The controls of the shown job: pause, resume, cancel, and the form that changes trainer options
// while it trains. The form's fields are not written here: they are the properties of the request
// body of PATCH /v1/jobs/{job_id}/trainer in the served OpenAPI document, so the server's list of
// the options that may change live is the only list.

import { api, requestSchema } from "./api.js";
import { $, h } from "./dom.js";
import { refreshJobs } from "./jobs-list.js";
import { state, TERMINAL } from "./state.js";

const TRAINER_PATCH = ["/v1/jobs/{job_id}/trainer", "patch"];

// showJob, passed in by initControls: the job view imports this module, so this one cannot import it.
let showJob = () => {};
// The trainer form's field names, in the document's order; empty until the document has arrived.
let fields = [];

/** Enable the buttons and the trainer form as the job's status allows. */
export function showControls(job) {
  const s = job.status;
  $("#btn-pause").disabled = !(s === "running" || s === "queued") || job.status_detail === "pausing";
  $("#btn-resume").disabled = s !== "paused";
  $("#btn-cancel").disabled = TERMINAL.has(s) || job.status_detail === "cancelling";
  $("#trainer-form").querySelectorAll("input, button").forEach((input) => { input.disabled = TERMINAL.has(s); });
}

/** Show the job's trainer options in the form; Apply then sends only the ones changed from these. */
export function fillTrainer(job) {
  const trainer = job.request?.trainer || {};
  state.current.trainer = trainer;
  writeTrainer(trainer);
}

function writeTrainer(trainer) {
  const form = $("#trainer-form");
  for (const field of fields) form.elements[field].value = trainer?.[field] ?? "";
}

async function control(action) {
  $("#control-error").textContent = "";
  try {
    showJob(await api(`/v1/jobs/${state.current.id}/${action}`, { method: "POST" }));
    refreshJobs();
  } catch (e) {
    $("#control-error").textContent = e.message;
  }
}

async function applyTrainer(event) {
  event.preventDefault();
  const form = $("#trainer-form");
  const changes = {};
  for (const field of fields) {
    const raw = form.elements[field].value;
    if (raw !== "" && Number(raw) !== state.current.trainer?.[field]) changes[field] = Number(raw);
  }
  $("#control-error").textContent = Object.keys(changes).length ? "" : "Nothing changed.";
  if (!Object.keys(changes).length) return;
  try {
    const job = await api(`/v1/jobs/${state.current.id}/trainer`, { method: "PATCH", json: changes });
    showJob(job);
    fillTrainer(job);
  } catch (e) {
    $("#control-error").textContent = e.message;
  }
}

/** Put one labelled number field per property of the trainer-patch schema before the Apply button. */
async function buildTrainerForm() {
  const apply = $("#btn-trainer");
  let schema;
  try {
    schema = await requestSchema(...TRAINER_PATCH);
  } catch (e) {
    apply.before(h("span", { class: "error" }, `No trainer options: ${e.message}`));
    return;
  }
  fields = Object.keys(schema.properties);
  apply.before(...fields.map((name) => trainerField(name, schema.properties[name])));
  // The document may arrive after a job was shown: fill its options in now. The new inputs took
  // the Apply button's disabled state, which showControls keeps for the shown job.
  if (state.current) writeTrainer(state.current.trainer);
}

/**
 * A field for one trainer option. The live options are all numbers (Apply sends Number(value));
 * the schema's bounds become the input's, so the browser flags a value out of range at once. HTML
 * has no exclusive bounds: those become inclusive here, and the API still refuses the bound itself.
 */
function trainerField(name, schema) {
  const types = [schema.type ?? []].flat();
  const input = h("input", { name, type: "number", step: types.includes("integer") ? "1" : "any",
                             disabled: $("#btn-trainer").disabled });
  const min = schema.minimum ?? schema.exclusiveMinimum, max = schema.maximum ?? schema.exclusiveMaximum;
  if (min != null) input.min = String(min);
  if (max != null) input.max = String(max);
  const label = schema.title ?? name.replaceAll("_", " "); // learning_rate -> "learning rate"
  return h("label", schema.description ? { title: schema.description } : {}, `${label} `, input);
}

/** Wire the buttons and the form; `onJob(job)` shows a job that a control changed. */
export function initControls(onJob) {
  showJob = onJob;
  $("#btn-pause").addEventListener("click", () => control("pause"));
  $("#btn-resume").addEventListener("click", () => control("resume"));
  $("#btn-cancel").addEventListener("click", () => control("cancel"));
  $("#trainer-form").addEventListener("submit", applyTrainer);
  buildTrainerForm();
}
