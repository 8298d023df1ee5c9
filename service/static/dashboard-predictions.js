// Test predictions of a succeeded job, and the upload box that classifies your own image.

import { api } from "./api.js";
import { $, h } from "./dom.js";
import { pct } from "./format.js";
import { isCurrent, state } from "./state.js";

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

/** Show 40 test images of the shown job with its top guesses, the wrong ones marked. */
export async function loadPredictions() {
  const id = state.current.id;
  try {
    const data = await api(`/v1/jobs/${id}/predictions?limit=40`);
    if (!isCurrent(id)) return;
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
    if (isCurrent(id)) $("#predictions-note").textContent = e.status === 409 ? "when the job has succeeded" : e.message;
  }
}

/** Classify a dropped or chosen image with the shown job's model, sent as the multipart field 'image'. */
async function classify(file) {
  const out = $("#upload-result");
  if (!file) return;
  if (state.current?.job?.status !== "succeeded") {
    out.replaceChildren(h("div", { class: "error" }, "Your own images can be classified once the job has succeeded."));
    return;
  }
  const preview = h("canvas", { class: "digit large" });
  drawBlob(preview, file).catch(() => {});
  out.replaceChildren(preview, h("span", { class: "muted" }, "classifying…"));
  try {
    const answer = await api(`/v1/jobs/${state.current.id}/predict`, { method: "POST", body: formWith(file) });
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

/** Only a succeeded job has a model to predict with: enable the upload box and show the predictions then. */
export function showPredictionCards(job) {
  const s = job.status;
  $("#upload").disabled = s !== "succeeded";
  $("#upload-card").classList.toggle("disabled", s !== "succeeded");
  $("#upload-hint").textContent = s === "succeeded" ? "" : "(once the job has succeeded)";
  $("#predictions-card").classList.toggle("hidden", s !== "succeeded");
}

export function initPredictions() {
  $("#upload").addEventListener("change", (e) => classify(e.target.files[0]));
  const drop = $("#drop");
  // preventDefault on dragover and drop: otherwise the browser opens the dropped file itself.
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    classify(e.dataTransfer.files[0]);
  });
}
