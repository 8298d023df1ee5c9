// One job on the right: picking it, following its event stream while it trains, and its header
// (status, progress and facts). The charts, layer pictures, predictions and controls draw their
// own parts; this module tells them when.

import { api } from "./api.js";
import { Chart } from "./charts.js";
import { fillTrainer, showControls } from "./controls.js";
import { $, h } from "./dom.js";
import { num, pct, short } from "./format.js";
import { refreshJobs } from "./jobs-list.js";
import { loadLayers } from "./layers.js";
import { loadPredictions, showPredictionCards } from "./predictions.js";
import { isCurrent, state, TERMINAL } from "./state.js";

let charts = null; // {loss, acc}, made once by initJobView and reset for each job

/** Show job `id`: its state and history first, then live events until it ends. */
export async function selectJob(id) {
  if (state.current?.id === id) return;
  state.current?.source?.close();
  state.current = { id, job: null, source: null, layers: { loading: false, pending: undefined } };
  const mine = () => isCurrent(id); // each await below may return after another job was picked
  history.replaceState(null, "", `#job=${id}`); // a link to the page with this job open
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
  state.current.source = source;
  const on = (kind, handle) => source.addEventListener(kind, (e) => {
    if (isCurrent(id)) handle(JSON.parse(e.data));
  });
  on("metrics", (point) => {
    charts.loss.add(point);
    charts.acc.add(point);
    // Progress from the point itself: a GET of the job for every point would cost a request each.
    const job = state.current.job;
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
    if (source.readyState === EventSource.CLOSED && isCurrent(id)) {
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

/** Fetch the shown job again, after a status event (and its trainer too, after a trainer change). */
async function refreshJob(withTrainer = false) {
  const id = state.current.id;
  try {
    const job = await api(`/v1/jobs/${id}`);
    if (!isCurrent(id)) return;
    showJob(job);
    if (withTrainer) fillTrainer(job);
  } catch (e) {
    $("#control-error").textContent = e.message;
  }
}

/** Show the job's header and facts, and enable what its status allows. */
export function showJob(job) {
  state.current.job = job;
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
  showControls(job);
  showPredictionCards(job);
}

export function initJobView() {
  charts = {
    loss: new Chart($("#chart-loss"), [
      { key: "class_loss", label: "loss", color: "#d9480f" },
      { key: "l2_loss", label: "L2 loss", color: "#868e96" }]),
    acc: new Chart($("#chart-acc"), [
      { key: "train_acc", label: "training", color: "#1c7ed6" },
      { key: "val_acc", label: "validation", color: "#2b8a3e" }], { range: [0, 1], percent: true }),
  };
}
