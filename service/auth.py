"""Bearer tokens: a file of SHA-256 hashes with principals and roles, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROLES = ("user", "admin")
_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")


@dataclass(frozen=True)
class Principal:
    """Who is asking: a name that owns jobs, a role, and any quota overrides from the tokens file."""

    name: str
    role: str = "user"
    quotas: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def admin(self) -> bool:
        return self.role == "admin"


# Without a tokens file the service has one local user, who may see everything.
LOCAL = Principal("local", "admin")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenFile:
    """The tokens file, re-read whenever it changes so that new tokens work without a restart."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._entries: list[dict] = []

    def entries(self) -> list[dict]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:  # removed: no token is valid any more
            return []
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._entries = load(self.path)
                self._stamp = stamp
            return self._entries

    def authenticate(self, token: str) -> Principal | None:
        """The principal whose hash matches `token`; every entry is compared, in constant time."""
        wanted = digest(token).encode()
        found = None
        for entry in self.entries():
            if hmac.compare_digest(wanted, entry["sha256"].encode()):
                found = entry
        if found is None:
            return None
        return Principal(found["principal"], found["role"], dict(found.get("quotas") or {}))


def load(path: Path) -> list[dict]:
    """Read and check a tokens file: {"tokens": [{"sha256", "principal", "role", "quotas"?}]}."""
    data = json.loads(path.read_text() or "{}")
    entries = data.get("tokens", []) if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected {{\"tokens\": [...]}}")
    for entry in entries:
        if not (isinstance(entry, dict) and re.fullmatch(r"[0-9a-f]{64}", str(entry.get("sha256")))
                and _NAME.match(str(entry.get("principal"))) and entry.get("role") in ROLES):
            raise ValueError(f"{path}: a malformed entry: {entry!r}")
        quotas = entry.get("quotas", {})
        if not isinstance(quotas, dict) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                   for v in quotas.values()):
            raise ValueError(f"{path}: quotas of {entry['principal']} must be whole numbers")
    return entries


def create(path: str | os.PathLike, principal: str, *, admin: bool = False) -> str:
    """Add a new random token for `principal`; return it (only its hash is stored)."""
    if not _NAME.match(principal):
        raise ValueError("a principal name is 1 to 64 letters, digits, '.', '_', '@' or '-'")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = load(path) if path.exists() else []
    token = "ct_" + secrets.token_urlsafe(32)
    entries.append({"sha256": digest(token), "principal": principal, "role": "admin" if admin else "user",
                    "created_at": round(time.time())})
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"tokens": entries}, indent=1))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return token
