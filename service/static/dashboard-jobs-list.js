// The job list on the left: the newest jobs, refreshed every few seconds while the page is visible.

import { api } from "./api.js";
import { $, h } from "./dom.js";
import { ago, kilo, num, pct } from "./format.js";
import { state } from "./state.js";

const JOBS_REFRESH_MS = 2000;
const LIMIT = 30;

// What a click on a row does: selectJob, passed in by initJobsList. The job view imports this
// module (to refresh the list when a job ends), so this one cannot import it back.
let select = () => {};

export async function refreshJobs() {
  const list = $("#job-list");
  try {
    const { jobs } = await api(`/v1/jobs?limit=${LIMIT}`);
    const focused = document.activeElement?.dataset?.id; // rebuilding the rows must not steal the keyboard focus
    list.replaceChildren(...jobs.map(jobRow));
    $("#jobs-note").textContent = jobs.length ? `${jobs.length === LIMIT ? "newest " : ""}${jobs.length} job${jobs.length === 1 ? "" : "s"}` : "none yet";
    if (focused) list.querySelector(`li[data-id="${focused}"]`)?.focus();
  } catch (e) {
    $("#jobs-note").textContent = e.message.split("\n")[0];
  }
}

function jobRow(job) {
  const p = job.progress;
  const detail = job.result ? `test ${pct(job.result.test_acc)}`
    : p.fraction != null ? `${pct(p.fraction, 0)} of ${kilo(p.examples_total)}` : `${num(p.examples_seen)} examples`;
  const pick = () => select(job.id);
  return h("li", { class: job.id === state.current?.id ? "selected" : "", dataset: { id: job.id, status: job.status },
                   tabIndex: 0, onclick: pick, onkeydown: (e) => e.key === "Enter" && pick() },
    h("span", { class: "name", title: job.id }, job.name || job.id),
    h("span", { class: `pill ${job.status}` }, job.status),
    h("span", { class: "muted small" }, detail),
    h("span", { class: "muted small right-align" }, ago(job.created_at)));
}

/** Show the list now and keep it fresh; `onSelect(id)` shows a job when its row is picked. */
export function initJobsList(onSelect) {
  select = onSelect;
  refreshJobs();
  setInterval(() => document.hidden || refreshJobs(), JOBS_REFRESH_MS);
}
