"""`convtrain validate FILE`: check a network and show its shapes (the same check as POST /v1/networks/validate)."""

from __future__ import annotations

import json

from service.config import Config
from service.spec import netspec
from service.spec.netspec import InvalidSpec
from service.spec.request_body import check, read_body


def run(path: str, as_json: bool, config: Config) -> int:
    """Validate FILE and print the network's table (or JSON); return the exit status, 1 on any error."""
    try:
        network = check(read_body(path, config), config)
    except InvalidSpec as exc:
        if as_json:
            print(json.dumps({"errors": [e.as_dict() for e in exc.errors]}, indent=2, ensure_ascii=False))
        else:
            for e in exc.errors:
                print(f"{e.path}: {e.message}" if e.path else e.message)
        return 1
    if as_json:
        print(json.dumps(network.as_dict(), indent=2))
    else:
        print(netspec.table(network))
        print(f"\n{len(network.layers)} layers, {network.params:,} parameters, "
              f"{network.macs:,} multiply-adds and {network.activations:,} activations per example")
    return 0
