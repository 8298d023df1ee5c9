"""A sweep's comparison: one row per variant (Markdown, CSV) and a figure of loss curves and test accuracies (PNG).

Torch-free and numpy-free: the API draws the figure with Pillow.
"""

from __future__ import annotations

import csv
import io
import math
import statistics

from service.text import duration

# key, Markdown header, how the Markdown cell shows it
COLUMNS = (
    ("variant", "variant", "text"),
    ("params", "params", "count"),
    ("macs", "multiply-adds", "count"),
    ("examples_per_second", "examples/s", "count"),
    ("train_loss", "train loss", "loss"),
    ("train_acc", "train acc", "acc2"),
    ("val_acc", "val acc", "acc"),
    ("test_acc_mean", "test acc", "test"),
    ("seconds", "time (s)", "seconds"),
)
CSV_COLUMNS = ("variant", "params", "macs", "jobs", "succeeded", "examples_per_second", "train_loss", "train_acc",
               "val_acc", "test_acc_mean", "test_acc_std", "test_acc_min", "test_acc_max", "seconds")
NOTE = ("train loss and train acc: the last 100 training examples (the ConvNetJS demo's window); val acc: the "
        "held-out validation split; test acc: the 10,000 test images, mean ± standard deviation over the repeats; "
        "examples/s and time: training only; every column the mean over the repeats that succeeded.")


def _mean(values: list) -> float | None:
    values = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    return round(statistics.fmean(values), 6) if values else None


def rows(variants: list[dict], jobs: dict[str, dict | None]) -> list[dict]:
    """One row per variant, from its jobs' records (as service.store.jobs.present shows them): means over the repeats
    that succeeded; the network's size is known from the start."""
    out = []
    for variant in variants:
        its = [jobs.get(job_id) for job_id in variant["jobs"]]
        network = next((j["network"] for j in its if j and j.get("network")), None) or {}
        results = [j["result"] for j in its if j and j["status"] == "succeeded" and j.get("result")]
        test = [round(r["test_acc"], 6) for r in results if isinstance(r.get("test_acc"), (int, float))]
        out.append({
            "variant": variant["name"],
            "params": network.get("params"),
            "macs": network.get("macs"),
            "jobs": len(its),
            "succeeded": len(results),
            "examples_per_second": _mean([r.get("examples_per_second") for r in results]),
            "train_loss": _mean([r.get("class_loss") for r in results]),
            "train_acc": _mean([r.get("train_acc") for r in results]),
            "val_acc": _mean([r.get("val_acc") for r in results]),
            "test_acc_mean": _mean(test),
            "test_acc_std": round(statistics.stdev(test), 6) if len(test) > 1 else None,
            "test_acc_min": min(test) if test else None,
            "test_acc_max": max(test) if test else None,
            "test_accs": test,
            "seconds": _mean([r.get("seconds") for r in results]),
        })
    return out


# --- text ------------------------------------------------------------------------------------------


def _cell(row: dict, key: str, kind: str) -> str:
    value = row.get(key)
    if kind == "text":
        return str(value).replace("|", "\\|").replace("\n", " ")
    if value is None:
        return "–"
    if kind == "count":
        return f"{value:,.0f}"
    if kind == "loss":
        return f"{value:.3f}"
    if kind == "acc2":
        return f"{value:.2f}"
    if kind == "acc":
        return f"{value:.4f}"
    if kind == "seconds":
        return f"{value:.1f}"
    # test: mean ± sd, and how many repeats when that differs from the row's jobs
    text = f"{value:.4f}"
    if row.get("test_acc_std") is not None:
        text += f" ± {row['test_acc_std']:.4f}"
    if row["succeeded"] != row["jobs"]:
        text += f" ({row['succeeded']} of {row['jobs']})"
    return text


def markdown_table(table: list[dict]) -> str:
    lines = ["| " + " | ".join(header for _, header, _ in COLUMNS) + " |",
             "|" + "|".join(":--" if kind == "text" else "--:" for _, _, kind in COLUMNS) + "|"]
    for row in table:
        lines.append("| " + " | ".join(_cell(row, key, kind) for key, _, kind in COLUMNS) + " |")
    return "\n".join(lines)


def markdown(sweep: dict) -> str:
    """The sweep's table as a Markdown section: a heading, one line of context, the table and what it measures."""
    jobs = sweep["progress"]["jobs"]
    heading = f"## Sweep {sweep['name']}" if sweep.get("name") else f"## Sweep {sweep['id']}"
    context = (f"{len(sweep['variants'])} variants × {sweep['repeats']} repeats = {jobs} jobs, {sweep['status']}; "
               f"wall time {duration(sweep.get('wall_seconds'), words=True)} from submit to "
               + ("the last job's end." if sweep["status"] != "running" else "now (still running)."))
    return "\n".join([heading, "", context, "", markdown_table(sweep["table"]), "", NOTE, ""])


def csv_text(table: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in table:
        writer.writerow(["" if row.get(key) is None else row[key] for key in CSV_COLUMNS])
    return out.getvalue()


# --- the figure --------------------------------------------------------------------------------------

# Colour-blind-safe (Okabe-Ito), then Tableau's; cycled beyond that.
PALETTE = ((0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167), (230, 159, 0), (86, 180, 233),
           (120, 120, 120), (240, 228, 66), (148, 103, 189), (140, 86, 75))
BINS = 60


def curve(runs: list[list[dict]], bins: int = BINS) -> list[tuple[float, float]]:
    """One loss curve from a variant's repeats: their metric points (events skipped) pooled, split into `bins`
    equal spans of examples seen, and each span's mean class loss at its mean example count.

    The repeats' points line up by examples, not by sequence number, so spans of examples average them
    properly; service.spec.series.downsample keeps min and max for spikes, which a comparison does not need."""
    points = [(p["examples"], p["class_loss"]) for run in runs for p in run
              if "event" not in p and isinstance(p.get("examples"), (int, float))
              and isinstance(p.get("class_loss"), (int, float)) and math.isfinite(p["class_loss"])]
    if not points:
        return []
    top = max(x for x, _ in points) or 1
    spans: dict[int, list[tuple[float, float]]] = {}
    for x, y in points:
        spans.setdefault(min(bins - 1, int(bins * x / top)), []).append((x, y))
    return [(statistics.fmean(x for x, _ in span), statistics.fmean(y for _, y in span))
            for _, span in sorted(spans.items())]


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow built without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _nice_step(span: float, target: int = 6) -> float:
    raw = span / max(1, target)
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 2.5, 5, 10):
        if m * power >= raw:
            return m * power
    return 10 * power


def _linear_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    step = _nice_step(hi - lo, target)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, t = [], first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _log_ticks(lo: float, hi: float) -> list[float]:
    ticks = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            t = m * 10 ** e
            if lo * 0.999 <= t <= hi * 1.001:
                ticks.append(t)
    return ticks


def _tick_label(t: float) -> str:
    if abs(t) >= 1000:
        return f"{t / 1000:g}k"
    return f"{t:g}"


class _Panel:
    """A plotting area inside the image with data limits; maps data to pixels."""

    def __init__(self, box, xlim, ylim, ylog=False):
        self.left, self.top, self.right, self.bottom = box
        self.xlim, self.ylim, self.ylog = xlim, ylim, ylog

    def x(self, value: float) -> float:
        lo, hi = self.xlim
        return self.left + (value - lo) / ((hi - lo) or 1) * (self.right - self.left)

    def y(self, value: float) -> float:
        lo, hi = self.ylim
        if self.ylog:
            value, lo, hi = math.log10(max(value, 1e-12)), math.log10(lo), math.log10(hi)
        return self.bottom - (value - lo) / ((hi - lo) or 1) * (self.bottom - self.top)


GRID = (232, 232, 232)
AXIS = (90, 90, 90)
TEXT = (30, 30, 30)


def _frame(draw, panel: _Panel, xticks, yticks, font, xfmt=_tick_label, yfmt=_tick_label):
    for t in xticks:
        x = panel.x(t)
        draw.line([(x, panel.top), (x, panel.bottom)], fill=GRID)
        label = xfmt(t)
        w = draw.textlength(label, font=font)
        draw.text((x - w / 2, panel.bottom + 6), label, fill=TEXT, font=font)
    for t in yticks:
        y = panel.y(t)
        draw.line([(panel.left, y), (panel.right, y)], fill=GRID)
        label = yfmt(t)
        w = draw.textlength(label, font=font)
        draw.text((panel.left - 8 - w, y - getattr(font, "size", 11) / 2), label, fill=TEXT, font=font)
    draw.rectangle([panel.left, panel.top, panel.right, panel.bottom], outline=AXIS)


def _empty(draw, panel: _Panel, message: str, small, medium) -> None:
    """A framed panel without data, saying why."""
    _frame(draw, panel, [], [], small)
    draw.text((panel.left + 20, (panel.top + panel.bottom) / 2), message, fill=AXIS, font=medium)


def _x_label(draw, panel: _Panel, label: str, font) -> None:
    """The label centred under the panel's x axis."""
    draw.text(((panel.left + panel.right) / 2 - draw.textlength(label, font=font) / 2, panel.bottom + 30), label,
              fill=TEXT, font=font)


def figure(table: list[dict], curves: dict[str, list[tuple[float, float]]], title: str = "") -> bytes:
    """A PNG: the loss curves of every variant (left, log scale) and their test accuracies (right: each repeat
    a ring, the mean a dot, ± one standard deviation a bar), in the same colour per variant."""
    from PIL import Image, ImageDraw

    width, height = 1500, 620
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    small, medium, large = _font(15), _font(17), _font(21)
    colour = {row["variant"]: PALETTE[i % len(PALETTE)] for i, row in enumerate(table)}
    if title:
        draw.text((30, 18), title, fill=TEXT, font=large)

    # Left: loss curves.
    left = _Panel((95, 80, 840, height - 80), (0, 1), (0.01, 10), ylog=True)
    xs = [x for c in curves.values() for x, _ in c]
    ys = [y for c in curves.values() for _, y in c if y > 0]
    draw.text((left.left, left.top - 30), "training loss (class loss over 100 examples, mean over repeats)",
              fill=TEXT, font=medium)
    if xs and ys:
        left.xlim = (0, max(xs) * 1.02)
        left.ylim = (min(ys) / 1.25, max(ys) * 1.25)
        _frame(draw, left, _linear_ticks(*left.xlim), _log_ticks(*left.ylim), small)
        for name, points in curves.items():
            pixels = [(left.x(x), left.y(y)) for x, y in points if y > 0]
            if len(pixels) > 1:
                draw.line(pixels, fill=colour.get(name, AXIS), width=3, joint="curve")
            for px, py in pixels[-1:] if len(pixels) > 1 else pixels:
                draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour.get(name, AXIS))
        # Legend, top right of the panel.
        lx, ly = left.right - 12, left.top + 12
        widest = max((draw.textlength(name, font=small) for name in colour), default=0)
        box_left = lx - widest - 44
        draw.rectangle([box_left, ly - 6, lx + 4, ly + 22 * len(colour) + 2], fill="white", outline=GRID)
        for i, name in enumerate(colour):
            y = ly + 22 * i + 8
            draw.line([(box_left + 8, y), (box_left + 32, y)], fill=colour[name], width=4)
            draw.text((box_left + 38, y - 9), name, fill=TEXT, font=small)
    else:
        _empty(draw, left, "no metric points yet", small, medium)
    _x_label(draw, left, "examples seen", medium)

    # Right: test accuracy per variant.
    names_width = max((draw.textlength(row["variant"], font=small) for row in table), default=0)
    right = _Panel((min(1200, 930 + names_width + 10), 80, width - 40, height - 80), (0, 1), (0, 1))
    draw.text((right.left - names_width - 10, right.top - 30), "test accuracy (10,000 images)", fill=TEXT,
              font=medium)
    accs = [a for row in table for a in row.get("test_accs") or []]
    if accs:
        lo, hi = min(accs), max(accs)
        pad = max(0.002, 0.15 * (hi - lo))
        right.xlim = (max(0.0, lo - pad), min(1.0, hi + pad) if hi + pad > lo - pad else lo + pad)
        ticks = _linear_ticks(*right.xlim, target=6)
        _frame(draw, right, ticks, [], small, xfmt=lambda t: f"{t:.3f}".rstrip("0").rstrip(".") if t < 1 else "1")
    else:
        _frame(draw, right, [], [], small)
        draw.text((right.left + 10, (right.top + right.bottom) / 2), "no test accuracy yet", fill=AXIS, font=medium)
    n = max(1, len(table))
    step = (right.bottom - right.top) / n
    for i, row in enumerate(table):
        y = right.top + step * (i + 0.5)
        c = colour[row["variant"]]
        w = draw.textlength(row["variant"], font=small)
        draw.text((right.left - 10 - w, y - 9), row["variant"], fill=TEXT, font=small)
        if not accs:
            continue
        mean, sd = row.get("test_acc_mean"), row.get("test_acc_std")
        if mean is not None and sd is not None:
            a, b = right.x(max(right.xlim[0], mean - sd)), right.x(min(right.xlim[1], mean + sd))
            draw.line([(a, y), (b, y)], fill=c, width=3)
            draw.line([(a, y - 7), (a, y + 7)], fill=c, width=2)
            draw.line([(b, y - 7), (b, y + 7)], fill=c, width=2)
        for acc in row.get("test_accs") or []:
            x = right.x(acc)
            draw.ellipse([x - 6, y - 6 - 10, x + 6, y + 6 - 10], outline=c, width=2)
        if mean is not None:
            x = right.x(mean)
            draw.ellipse([x - 7, y - 7, x + 7, y + 7], fill=c)
    _x_label(draw, right, "test accuracy: rings each repeat, dot the mean, bar ± 1 sd", small)

    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def figure_for(sweep: dict, points: dict[str, list[dict]]) -> bytes:
    """The figure of a sweep as GET /v1/sweeps/{id} shows it, with each job's metric points by job id."""
    curves = {v["name"]: curve([points.get(j["id"]) or [] for j in v["jobs"]]) for v in sweep["variants"]}
    title = f"Sweep {sweep['name'] or sweep['id']}: {sweep['progress']['jobs']} jobs, {sweep['status']}"
    return figure(sweep["table"], curves, title)
