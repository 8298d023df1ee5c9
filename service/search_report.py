"""A search's report: the leaderboard (Markdown, CSV) and its figure (PNG, Pillow): every trial's validation
accuracy against examples trained, pruned trials cut off where they stopped, beside the best trial's loss.

The drawing helpers are the sweep report's (service/report.py); this module holds what a search adds.
"""

from __future__ import annotations

import csv
import io

from service.report import (
    GRID,
    PALETTE,
    TEXT,
    _empty,
    _font,
    _frame,
    _linear_ticks,
    _log_ticks,
    _Panel,
    _x_label,
    curve,
)
from service.text import duration

CSV_COLUMNS = ("rank", "trial", "job", "architecture", "params", "status", "val_acc", "final_val_acc", "test_acc",
               "test_acc_crops", "examples", "skipped", "errors")
PRUNED_COLOUR = (213, 94, 0)
NOTE = ("val_acc: the best validation accuracy the trial reached (its rungs: the first images of the validation "
        "split, the same for every trial; at its end: the whole split); test_acc: the 10,000 test images, "
        "measured when the trial ended (pruned ones too).")


def leaderboard(search: dict) -> list[dict]:
    """The trials, best val_acc first (those without one last, by number)."""
    return sorted(search["trials"], key=lambda t: (t["val_acc"] is None, -(t["val_acc"] or 0), t["number"]))


def _params(params: dict) -> str:
    return ", ".join(f"{path}={value:.4g}" if isinstance(value, float) else f"{path}={value}"
                     for path, value in params.items())


def _pct(value) -> str:
    return "" if value is None else f"{100 * value:.2f}%"


def markdown(search: dict) -> str:
    """The leaderboard as a Markdown section: a heading, the search's progress, the table and the best net."""
    progress = search["progress"]
    lines = [f"## Search {search['name'] or search['id']}", "",
             (f"{len(search['trials'])} of {search['trials_total']} trials, {search['status']}: "
             f"{progress['pruned']} pruned, {progress['invalid']} invalid; {progress['examples_spent']:,} examples "
             f"trained in {duration(progress['elapsed_seconds'], words=True)}; sampler {search['sampler']}, pruner "
             f"{search['pruner'].get('type', 'none')}."), "",
             "| rank | trial | architecture | values | status | val_acc | test_acc | examples |",
             "|--:|--:|:--|:--|:--|--:|--:|--:|"]
    for rank, t in enumerate(leaderboard(search), 1):
        values = _params(t["params"]) + (f" (skipped: {', '.join(t['skipped'])})" if t["skipped"] else "")
        lines.append(f"| {rank} | {t['number']} | {t['architecture']} | {values} | {t['status']} | "
                     f"{_pct(t['val_acc'])} | {_pct(t['test_acc'])} | {t['examples']:,} |")
    lines += ["", NOTE, ""]
    best = search.get("best")
    if best:
        crops = f" ({_pct(best['test_acc_crops'])} averaging random crops)" if best["test_acc_crops"] else ""
        lines += [(f"Best: trial {best['number']} (job `{best['job']}`), val_acc {_pct(best['val_acc'])}, test_acc "
                   f"{_pct(best['test_acc'])}{crops}. As ConvNetJS demo code:"), "", "```js", best["javascript"].rstrip(),
                  "```", ""]
    return "\n".join(lines)


def csv_text(search: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for rank, t in enumerate(leaderboard(search), 1):
        row = {**t, "rank": rank, "trial": t["number"], "params": _params(t["params"]),
               "skipped": " ".join(t["skipped"]), "errors": "; ".join(f"{e['path']}: {e['message']}"
                                                                    for e in t["errors"])}
        writer.writerow(["" if row.get(key) is None else row[key] for key in CSV_COLUMNS])
    return out.getvalue()


def _series(trial: dict) -> list[tuple[float, float]]:
    points = [(r["examples"], r["val_acc"]) for r in trial["rungs"] if r["val_acc"] is not None]
    if trial["final_val_acc"] is not None and trial["status"] == "succeeded":
        points.append((trial["examples"], trial["final_val_acc"]))
    return points


def figure(search: dict, best_points: list[dict]) -> bytes:
    """A PNG: each trial's val_acc against examples trained (pruned trials in one colour, ending in a cross
    where they were stopped; the best trial thick), and the best trial's training loss on the right."""
    from PIL import Image, ImageDraw

    width, height = 1500, 620
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    small, medium, large = _font(15), _font(17), _font(21)
    best = search.get("best")
    draw.text((30, 18), f"Search {search['name'] or search['id']}: {len(search['trials'])} trials, "
                        f"{search['progress']['pruned']} pruned, {search['status']}", fill=TEXT, font=large)

    left = _Panel((95, 80, 900, height - 80), (0, 1), (0, 1))
    draw.text((left.left, left.top - 30), "validation accuracy against examples trained (crosses: pruned)",
              fill=TEXT, font=medium)
    series = {t["number"]: _series(t) for t in search["trials"]}
    xs = [x for s in series.values() for x, _ in s]
    ys = [y for s in series.values() for _, y in s]
    if xs:
        lo = min(ys)
        left.xlim = (0, max(xs) * 1.03)
        left.ylim = (max(0.0, lo - 0.02), min(1.0, max(ys) + 0.01) if max(ys) + 0.01 > lo else lo + 0.02)
        _frame(draw, left, _linear_ticks(*left.xlim), _linear_ticks(*left.ylim, target=6), small,
               yfmt=lambda t: f"{100 * t:g}%")
        ordered = sorted(search["trials"], key=lambda t: best is not None and t["number"] == best["number"])
        for t in ordered:
            pixels = [(left.x(x), left.y(y)) for x, y in series[t["number"]]]
            if not pixels:
                continue
            is_best = best is not None and t["number"] == best["number"]
            colour = PRUNED_COLOUR if t["status"] == "pruned" else PALETTE[0] if is_best else (120, 120, 120)
            if len(pixels) > 1:
                draw.line(pixels, fill=colour, width=4 if is_best else 2)
            px, py = pixels[-1]
            if t["status"] == "pruned":
                draw.line([(px - 6, py - 6), (px + 6, py + 6)], fill=colour, width=3)
                draw.line([(px - 6, py + 6), (px + 6, py - 6)], fill=colour, width=3)
            else:
                draw.ellipse([px - 4, py - 4, px + 4, py + 4], fill=colour)
    else:
        _empty(draw, left, "no rung reached yet", small, medium)
    _x_label(draw, left, "examples trained", medium)

    right = _Panel((1010, 80, width - 40, height - 80), (0, 1), (0.01, 10), ylog=True)
    title = f"best trial's training loss (trial {best['number']})" if best else "best trial's training loss"
    draw.text((right.left, right.top - 30), title, fill=TEXT, font=medium)
    points = curve([best_points]) if best else []
    if points:
        right.xlim = (0, max(x for x, _ in points) * 1.02)
        positive = [y for _, y in points if y > 0]
        right.ylim = (min(positive) / 1.25, max(positive) * 1.25)
        _frame(draw, right, _linear_ticks(*right.xlim, target=4), _log_ticks(*right.ylim), small)
        pixels = [(right.x(x), right.y(y)) for x, y in points if y > 0]
        if len(pixels) > 1:
            draw.line(pixels, fill=PALETTE[0], width=3)
    else:
        _empty(draw, right, "no finished trial yet", small, medium)
        draw.rectangle([right.left, right.top, right.right, right.bottom], outline=GRID)  # a lighter frame
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
