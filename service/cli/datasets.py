"""`convtrain dataset upload|list|delete`: your own datasets, and the built-in ones, through the Python client.

Torch-free like the other client commands (service/cli/jobs.py), with their exit status: 0 on success, 1 when
the service refuses, 2 when it cannot be reached.
"""

from __future__ import annotations

import json

from service.cli.jobs import call
from service.client import Client, Dataset


def describe(dataset: Dataset) -> str:
    """`digits: 28x28x1, 3 classes (eight, five, three), 600 train / 150 test, sha256 3f2a9c01b7d4`."""
    width, height, depth = dataset.shape
    names = ", ".join(dataset.class_names)
    return (f"{dataset.name}: {width}x{height}x{depth}, {dataset.num_classes} classes ({names}), "
            f"{dataset.train_size:,} train / {dataset.test_size:,} test"
            + (f", sha256 {dataset.sha256[:12]}" if dataset.sha256 else ""))


def _owner(dataset: Dataset) -> str:
    if not dataset.builtin:
        return dataset.owner or "-"
    return "builtin" if dataset.record.get("present") else "builtin (not downloaded)"


def _classes(dataset: Dataset, width: int = 40) -> str:
    """`3 (eight, five, three)`, the names cut to about `width` characters."""
    names = ", ".join(dataset.class_names)
    return f"{dataset.num_classes} ({names if len(names) <= width else names[:width - 3] + '...'})"


def upload(client: Client, args) -> int:
    dataset = client.upload_dataset(args.files, args.name, title=args.title, width=args.width, height=args.height,
                                    depth=args.depth, class_names=args.class_names)
    print(describe(dataset))
    return 0


def listing(client: Client, args) -> int:
    datasets = client.datasets()
    if args.json:
        print(json.dumps({"datasets": [d.record for d in datasets]}, indent=2))
        return 0
    rows = [("NAME", "SHAPE", "CLASSES", "TRAIN", "TEST", "OWNER")]
    for d in datasets:
        rows.append((d.name, "x".join(map(str, d.shape)), _classes(d), f"{d.train_size:,}", f"{d.test_size:,}",
                     _owner(d)))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(r, widths)).rstrip())
    return 0


def delete(client: Client, args) -> int:
    Dataset(client.session, {"name": args.name}).delete()
    print(f"deleted dataset {args.name}")
    return 0


COMMANDS = {"upload": upload, "list": listing, "delete": delete}


def run(args) -> int:
    return call(COMMANDS[args.dataset_command], args)
