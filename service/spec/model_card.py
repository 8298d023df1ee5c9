"""The model card of a succeeded job: what was trained, how, how well, and how to load each export."""

from __future__ import annotations

from service.spec.model_formats import FORMATS, INPUT, OUTPUT
from service.text import file_stem

OLD_JOB = "this job finished before convtrain exported this format"


def exports(job: dict) -> dict[str, dict]:
    """Each format's stored file {file, bytes, sha256}, or {error} saying why there is none."""
    model = job.get("model") or {}
    stored = model.get("exports") or {"pt": {k: model[k] for k in ("file", "bytes", "sha256") if k in model}}
    return {name: stored.get(name) or {"error": OLD_JOB} for name in FORMATS}


def file_name(job: dict, fmt: str) -> str:
    """The download's file name: the job's name (or "model"), its id and the format's suffix."""
    return f"{file_stem(job.get('name'), 'model')}-{job['id']}{FORMATS[fmt].suffix}"


def card(job: dict) -> dict:
    """The card of a succeeded job record (as service.store.jobs.present gives it)."""
    request, summary = job["request"], job["network"]
    first, last = summary["layers"][0], summary["layers"][-1]
    formats = {}
    for name, info in exports(job).items():
        fmt = FORMATS[name]
        if "error" in info:
            formats[name] = {"error": info["error"]}
            continue
        formats[name] = {**info, "media_type": fmt.media_type, "url": f"/v1/jobs/{job['id']}/model?format={name}",
                         "load": fmt.load.replace("FILE", file_name(job, name))}
    return {
        "job": job["id"],
        "name": job["name"],
        "created_at": job["created_at"],
        "finished_at": job["finished_at"],
        "network": {"spec": request["network"], "params": summary["params"], "macs": summary["macs"],
                    "layers": [_layer(layer) for layer in summary["layers"]]},
        "trainer": request["trainer"],
        "defaults": request.get("defaults", {}),
        "data": request["data"],
        "budget": request["budget"],
        "seed": request["seed"],
        "init": request.get("init"),
        "device": job["device"],
        "result": job["result"],
        "metrics": job["metrics"],
        "input": {"shape": [first["out_depth"], first["out_sy"], first["out_sx"]], "scaling": "p/255 - 0.5",
                  "description": INPUT},
        "output": {"shape": [last["out_depth"]], "kind": last["type"], "description": OUTPUT[last["type"]]},
        "formats": formats,
    }


def _layer(layer: dict) -> dict:
    """One desugared layer in short: its type, output shape and parameters."""
    return {"type": layer["type"], "output": [layer["out_sx"], layer["out_sy"], layer["out_depth"]],
            "params": layer["params"]}
