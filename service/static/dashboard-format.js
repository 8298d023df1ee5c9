// How the dashboard writes numbers and times. One set of formats for every part of the page, so
// the job list, the facts, the charts and the layer cards agree; "–" stands for a missing value.

/** A count with thousands separators: 5,994. */
export const num = (x) => (x == null ? "–" : Number(x).toLocaleString("en-US"));

/** A fraction as a percentage: 0.981 -> 98.1%. */
export const pct = (x, digits = 1) => (x == null ? "–" : `${(100 * x).toFixed(digits)}%`);

/** Three significant digits, or an exponent for the tiny and huge values of losses and gradients. */
export function short(x) {
  if (x == null || !Number.isFinite(x)) return "–";
  const a = Math.abs(x);
  if (a !== 0 && (a < 0.001 || a >= 1e5)) return x.toExponential(1);
  return String(+x.toPrecision(3));
}

/** Examples in thousands, short enough for a chart axis: 30000 -> 30k. */
export function kilo(x) {
  return x >= 1000 ? `${+(x / 1000).toFixed(1)}k` : String(+x.toFixed(2));
}

/** A Unix time as how long ago, then as a date once it is a day old. */
export function ago(seconds) {
  if (!seconds) return "";
  const s = Math.max(0, Date.now() / 1000 - seconds);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(seconds * 1000).toLocaleDateString();
}
