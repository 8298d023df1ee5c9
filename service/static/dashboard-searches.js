// Architecture searches: the newest ones in a list on the left, and the picked one above the job
// view: its progress, the figure of every trial's validation accuracy against examples (pruned
// trials end in a cross), refreshed while it runs, and the leaderboard, whose rows open the trial's job.

import { api } from "./api.js";
import { $, h } from "./dom.js";
import { ago, num, pct } from "./format.js";

const REFRESH_MS = 3000;
const LIMIT = 10;

let openJob = () => {}; // selectJob, passed in by initSearches (the job view does not import this module)
let shown = null; // the id of the search on show

async function refreshList() {
  try {
    const { searches } = await api(`/v1/searches?limit=${LIMIT}`);
    $("#search-list").replaceChildren(...searches.map((s) => {
      const pick = () => showSearch(s.id);
      return h("li", { class: s.id === shown ? "selected" : "", dataset: { id: s.id }, tabIndex: 0, onclick: pick,
                       onkeydown: (e) => e.key === "Enter" && pick() },
        h("span", { class: "name", title: s.id }, s.name || s.id),
        h("span", { class: `pill ${s.status}` }, s.status),
        h("span", { class: "muted small" }, `${s.trials_asked}/${s.trials_total} trials`),
        h("span", { class: "muted small right-align" }, ago(s.created_at)));
    }));
    $("#searches-note").textContent = searches.length ? "" : "none yet";
  } catch (e) {
    $("#searches-note").textContent = e.message.split("\n")[0];
  }
}

function values(params) {
  return Object.entries(params).map(([path, v]) => `${path.replace(/^network\./, "")}=${typeof v === "number" ? +v.toPrecision(3) : v}`).join(", ");
}

function leaderboard(search) {
  const ranked = [...search.trials].sort((a, b) => (b.val_acc ?? -1) - (a.val_acc ?? -1) || a.number - b.number);
  return h("table", { class: "leaderboard" },
    h("thead", {}, h("tr", {}, ...["#", "architecture", "values", "status", "val_acc", "test_acc", "examples"].map((t) => h("th", {}, t)))),
    h("tbody", {}, ...ranked.map((t) => {
      const open = () => t.job && openJob(t.job);
      return h("tr", { class: t.job ? "clickable" : "", title: t.job ? "open this trial's job" : t.errors.map((e) => e.message).join("; "),
                       tabIndex: t.job ? 0 : -1, onclick: open, onkeydown: (e) => e.key === "Enter" && open() },
        h("td", {}, t.number), h("td", {}, t.architecture), h("td", { class: "small" }, values(t.params)),
        h("td", {}, h("span", { class: `pill ${t.status}` }, t.status)), h("td", {}, pct(t.val_acc, 2)),
        h("td", {}, pct(t.test_acc, 2)), h("td", {}, num(t.examples)));
    })));
}

/** Show search `id` above the job view, and keep it fresh while it runs. */
export async function showSearch(id) {
  shown = id;
  $("#search").classList.remove("hidden");
  document.querySelectorAll("#search-list li").forEach((li) => li.classList.toggle("selected", li.dataset.id === id));
  try {
    const search = await api(`/v1/searches/${id}`);
    if (shown !== id) return;
    const p = search.progress;
    const best = search.best ? ` · best trial ${search.best.number}: val ${pct(search.best.val_acc, 2)}, test ${pct(search.best.test_acc, 2)}` : "";
    $("#search-title").textContent = `Search ${search.name || search.id}`;
    $("#search-facts").textContent = `${search.status} · ${p.trials_done}/${search.trials_total} trials done, ${p.trials_running} running, `
      + `${p.pruned} pruned, ${p.invalid} invalid · ${num(p.examples_spent)} examples${best}`;
    $("#search-figure").src = `/v1/searches/${id}/report?format=png&at=${p.trials_done}-${p.examples_spent}`;
    $("#search-table").replaceChildren(leaderboard(search));
    if (search.status === "running") setTimeout(() => shown === id && !document.hidden && showSearch(id), REFRESH_MS);
  } catch (e) {
    $("#search-facts").textContent = e.message.split("\n")[0];
  }
}

/** The search list, kept fresh; `onOpenJob(id)` opens a trial's job from the leaderboard. */
export function initSearches(onOpenJob) {
  openJob = onOpenJob;
  $("#search-close").addEventListener("click", () => { shown = null; $("#search").classList.add("hidden"); });
  refreshList();
  setInterval(() => document.hidden || refreshList(), REFRESH_MS);
}
