"""Sweep reports: the comparison table, Markdown, CSV and the figure (service/report.py)."""

from __future__ import annotations

import csv
import io
import math

import pytest
from PIL import Image

from service import report


def _job(status="succeeded", test_acc=0.98, params=5994, **result):
    return {"status": status, "network": {"params": params, "macs": 578560},
            "result": {"test_acc": test_acc, "class_loss": 0.2, "train_acc": 0.95, "val_acc": 0.97,
                       "examples_per_second": 5000.0, "seconds": 6.0, **result} if status == "succeeded" else None}


def test_rows_are_means_over_the_repeats_that_succeeded():
    jobs = {"a1": _job(test_acc=0.97, seconds=5.0), "a2": _job(test_acc=0.98, seconds=7.0),
            "a3": _job("failed"), "b1": _job("running", params=100), "c1": None}
    table = report.rows([{"name": "a", "jobs": ["a1", "a2", "a3"]}, {"name": "b", "jobs": ["b1"]},
                         {"name": "c", "jobs": ["c1"]}], jobs)
    a, b, c = table
    assert (a["variant"], a["params"], a["macs"], a["jobs"], a["succeeded"]) == ("a", 5994, 578560, 3, 2)
    assert a["test_acc_mean"] == pytest.approx(0.975) and a["test_acc_std"] == pytest.approx(0.00707107, abs=1e-6)
    assert (a["test_acc_min"], a["test_acc_max"], a["test_accs"]) == (0.97, 0.98, [0.97, 0.98])
    assert a["seconds"] == 6.0 and a["train_loss"] == 0.2 and a["examples_per_second"] == 5000.0
    assert (b["params"], b["succeeded"], b["test_acc_mean"], b["test_acc_std"]) == (100, 0, None, None)
    assert c["params"] is None and c["jobs"] == 1

    one = report.rows([{"name": "x", "jobs": ["a1"]}], jobs)[0]
    assert one["test_acc_std"] is None, "no spread from one repeat"


def _sweep(table, status="succeeded"):
    return {"id": "abc12345", "name": "demo", "status": status, "repeats": 2, "wall_seconds": 75.2,
            "progress": {"jobs": 2 * len(table)}, "variants": [{"name": row["variant"], "jobs": []} for row in table],
            "table": table}


def test_markdown_and_csv():
    jobs = {"a1": _job(test_acc=0.97), "a2": _job(test_acc=0.98), "b1": _job(test_acc=0.99), "b2": _job("failed")}
    table = report.rows([{"name": "a | b", "jobs": ["a1", "a2"]}, {"name": "b", "jobs": ["b1", "b2"]}], jobs)
    text = report.markdown(_sweep(table))
    lines = text.splitlines()
    assert lines[0] == "## Sweep demo"
    assert "2 variants × 2 repeats = 4 jobs, succeeded; wall time 1 min 15 s" in text
    rows = [line for line in lines if line.startswith("| ")]
    assert len(rows) == 3 and rows[0].startswith("| variant | params | multiply-adds |")
    assert rows[1] == "| a \\| b | 5,994 | 578,560 | 5,000 | 0.200 | 0.95 | 0.9700 | 0.9750 ± 0.0071 | 6.0 |"
    assert "| 0.9900 (1 of 2) |" in rows[2]

    parsed = list(csv.DictReader(io.StringIO(report.csv_text(table))))
    assert [r["variant"] for r in parsed] == ["a | b", "b"]
    assert list(parsed[0]) == list(report.CSV_COLUMNS)
    assert float(parsed[0]["test_acc_mean"]) == pytest.approx(0.975) and parsed[1]["test_acc_std"] == ""


def test_curve_averages_repeats_by_examples_seen():
    run1 = [{"seq": 1, "event": "started", "examples": 0}] + [
        {"seq": i + 2, "examples": 100 * (i + 1), "class_loss": 1.0} for i in range(100)]
    run2 = [{"seq": i + 1, "examples": 100 * (i + 1), "class_loss": 3.0} for i in range(100)]
    run2.append({"seq": 200, "examples": 10_000, "class_loss": None})
    curve = report.curve([run1, run2], bins=10)
    assert len(curve) == 10
    assert all(y == pytest.approx(2.0) for _, y in curve)
    assert [round(x) for x, _ in curve] == sorted(round(x) for x, _ in curve)
    assert report.curve([[{"seq": 1, "event": "started", "examples": 0}]]) == []


def test_figure_is_a_png_with_a_colour_per_variant():
    jobs = {f"{v}{r}": _job(test_acc=0.97 + 0.005 * i + 0.001 * r) for i, v in enumerate("abc") for r in range(3)}
    table = report.rows([{"name": v, "jobs": [f"{v}{r}" for r in range(3)]} for v in "abc"], jobs)
    curves = {v: [(100 * k, 2.3 * math.exp(-k / (10 + i))) for k in range(1, 60)] for i, v in enumerate("abc")}
    image = Image.open(io.BytesIO(report.figure(table, curves, "demo")))
    assert image.format == "PNG" and image.size == (1500, 620)
    colours = {colour for _, colour in image.convert("RGB").getcolors(1 << 20)}
    for palette_colour in report.PALETTE[:3]:
        assert palette_colour in colours
    # With nothing to show yet it still draws its frame and says so.
    empty = Image.open(io.BytesIO(report.figure([], {}, "")))
    assert empty.size == (1500, 620) and len(empty.convert("RGB").getcolors(1 << 20)) > 2
