// The loss and accuracy charts: metric series against examples seen, drawn on a canvas. They take
// the job's history in buckets first (GET /v1/jobs/{id}/metrics) and then each live point.

import { kilo, pct, short } from "./format.js";

// A chart is a few hundred pixels wide: past this many buckets, pairs merge (compact), so a long
// run costs the same to draw as a short one.
const MAX_BUCKETS = 600;

/** A line chart of metric series against examples seen: each series a min/max band and a line through the last values. */
export class Chart {
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
    // Points can arrive many times a frame; draw once per frame at most.
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
