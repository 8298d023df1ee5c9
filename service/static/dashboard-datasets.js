// The dataset of the "New job" form: a picker of the built-in datasets and your own uploads (from
// GET /v1/datasets), and an upload box that sends a zip of class folders, an .npz or IDX files.

import { api } from "./api.js";
import { $, h } from "./dom.js";
import { num } from "./format.js";

/** The name of the dataset picked in the form (mnist until the list has arrived). */
export function chosenDataset() {
  return $("#dataset").value || "mnist";
}

function label(d) {
  return `${d.name} (${d.width}×${d.height}×${d.depth}, ${d.num_classes} classes${d.builtin ? "" : ", yours"})`;
}

/** Fill the picker from the API, keeping `selected` (or the current pick) where it is still listed. */
async function refreshDatasets(selected) {
  const { datasets } = await api("/v1/datasets");
  const select = $("#dataset");
  const keep = selected ?? select.value;
  select.replaceChildren(...datasets.map((d) =>
    h("option", { value: d.name, title: d.title || d.name }, label(d))));
  if (datasets.some((d) => d.name === keep)) select.value = keep;
}

/** Upload the picked file under the given name; the answer (shape, classes, counts) or the problem is shown. */
async function upload(event, onChange) {
  event.preventDefault();
  const note = $("#dataset-note");
  const file = $("#dataset-file").files[0];
  const name = $("#dataset-name").value.trim();
  if (!file || !name) {
    note.textContent = "Pick a file and give the dataset a name.";
    return;
  }
  const form = new FormData();
  form.append("name", name);
  form.append("file", file);
  note.textContent = "Uploading…";
  $("#dataset-upload").disabled = true;
  try {
    const d = await api("/v1/datasets", { method: "POST", body: form });
    note.textContent = `✓ ${d.name}: ${num(d.train_size)} training and ${num(d.test_size)} test images of `
      + `${d.width}×${d.height}×${d.depth}; classes ${d.class_names.join(", ")}`;
    await refreshDatasets(d.name);
    onChange();
  } catch (e) {
    note.textContent = e.message;
  } finally {
    $("#dataset-upload").disabled = false;
  }
}

/** Fill the picker, and call `onChange` when the pick changes (the editor validates against it). */
export function initDatasets(onChange) {
  $("#dataset").addEventListener("change", onChange);
  $("#dataset-upload-form").addEventListener("submit", (event) => upload(event, onChange));
  refreshDatasets().catch(() => {}); // signed out or offline: the picker keeps mnist, the API says why on Train
}
