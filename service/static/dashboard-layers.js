// The layer pictures: for each layer of the shown job, its shape, value ranges and pictures of its
// activations, gradients and filters, refreshed at each snapshot the worker takes while training.

import { api } from "./api.js";
import { $, h } from "./dom.js";
import { num, short } from "./format.js";
import { isCurrent, state } from "./state.js";

/** Load the layer pictures (the newest, or snapshot k); while one load runs, keep only the latest request. */
export async function loadLayers(k) {
  const loads = state.current.layers, id = state.current.id;
  if (loads.loading) {
    loads.pending = k;
    return;
  }
  loads.loading = true;
  try {
    const data = await api(`/v1/jobs/${id}/layers${k == null ? "" : `?snapshot=${k}`}`);
    if (isCurrent(id)) showLayers(data);
  } catch (e) {
    if (isCurrent(id)) $("#layers-note").textContent = e.status === 404 ? "no pictures yet: they appear a few seconds into training" : e.message;
  } finally {
    loads.loading = false;
    if (loads.pending !== undefined && isCurrent(id)) {
      const next = loads.pending;
      loads.pending = undefined;
      loadLayers(next);
    }
  }
}

// Cards and images are reused by layer index and kind, and an image whose URL is unchanged is left
// alone: a refresh then swaps pictures in place instead of flashing the whole grid.
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
