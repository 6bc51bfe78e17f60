"""The stack directory D: its marker, the recorded state (stack.json) and generated secrets.

stack.json (0600) proves D was created by `provenance stack up`: a directory without it is
never written into, started from or stopped. Secrets live in secrets.json (0600), apart from the
state, so the state can be shown without them.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance.errors import InputError, UsageError
from provenance.signing import write_atomic
from provenance.stack._proc import Proc

MARKER = "ml-provenance local stack"
FORMAT = 1
STATE_FILE = "stack.json"
SECRETS_FILE = "secrets.json"
LOCK_FILE = "stack.lock"
COMPONENTS = ("postgresql", "s3", "mlflow")  # start order; stopped in reverse
MAX_STATE_BYTES = 1 << 20


@dataclass
class Component:
    """One recorded component: its ports, its process while started, and whether it should run."""

    ports: dict[str, int] = field(default_factory=dict)
    proc: Proc | None = None
    started: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "ports": dict(self.ports),
            "process": self.proc.to_dict() if self.proc else None,
            "started": self.started,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Component:
        ports = data.get("ports", {})
        if not isinstance(ports, dict) or not all(isinstance(v, int) for v in ports.values()):
            raise ValueError("ports must map names to numbers")
        proc = data.get("process")
        return cls(dict(ports), Proc.from_dict(proc) if proc else None, bool(data.get("started")))


@dataclass
class State:
    """Everything `up`, `status` and `down` need to find the stack again."""

    directory: Path
    components: dict[str, Component]
    gate_public_key: str
    gate_private_key: str | None
    postgres_bin: str = ""

    def path(self, *parts: str) -> Path:
        return self.directory.joinpath(*parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "marker": MARKER,
            "format": FORMAT,
            "gate_public_key": self.gate_public_key,
            "gate_private_key": self.gate_private_key,
            "postgres_bin": self.postgres_bin,
            "components": {n: c.to_dict() for n, c in self.components.items()},
        }

    def save(self) -> None:
        data = json.dumps(self.to_dict(), indent=2, sort_keys=True).encode()
        write_atomic(self.path(STATE_FILE), data + b"\n", mode=0o600)


def _fresh_components() -> dict[str, Component]:
    return {name: Component() for name in COMPONENTS}


def load(directory: Path) -> State | None:
    """The state recorded in D, None when D does not exist or is empty.

    A D that holds anything but a valid stack.json was not created by the stack: UsageError.
    """
    if not directory.exists():
        return None
    if not directory.is_dir():
        raise UsageError(f"{directory}: not a directory; choose a new --dir for the stack")
    state_file = directory / STATE_FILE
    if not state_file.is_file():
        if any(p.name != LOCK_FILE for p in directory.iterdir()):
            raise UsageError(
                f"{directory}: not created by `provenance stack up` (no {STATE_FILE}); "
                "refusing to use it, choose an empty or new --dir"
            )
        return None
    try:
        with state_file.open("rb") as f:
            raw = f.read(MAX_STATE_BYTES + 1)
        if len(raw) > MAX_STATE_BYTES:
            raise ValueError("file too large")
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("marker") != MARKER:
            raise UsageError(
                f"{state_file}: not written by `provenance stack up` (no stack marker); "
                "refusing to use this directory"
            )
        if data.get("format") != FORMAT:
            raise ValueError(f"unsupported format {data.get('format')!r} (expected {FORMAT})")
        comps = data["components"]
        if not isinstance(comps, dict) or set(comps) != set(COMPONENTS):
            raise ValueError(f"components must be {', '.join(COMPONENTS)}")
        return State(
            directory=directory,
            components={n: Component.from_dict(comps[n]) for n in COMPONENTS},
            gate_public_key=str(data["gate_public_key"]),
            gate_private_key=data.get("gate_private_key"),
            postgres_bin=str(data.get("postgres_bin", "")),
        )
    except UsageError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(str(state_file), f"unreadable stack state: {exc}") from None


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold D's lock: one `up` or `down` at a time changes a stack (others wait for it)."""
    import fcntl

    with (directory / LOCK_FILE).open("a") as f:
        os.chmod(f.name, 0o600)
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def create(directory: Path, gate_public_key: str, gate_private_key: str | None) -> State:
    """A new state for an absent or empty D.

    D is made 0700; 0711 when PostgreSQL runs as another user, which must traverse D to reach
    its data directory.
    """
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o711 if os.geteuid() == 0 else 0o700)
    state = State(directory, _fresh_components(), gate_public_key, gate_private_key)
    state.save()
    return state


def secrets_for(directory: Path, *, create: bool = False) -> dict[str, str]:
    """The generated secrets of D, made once by `up` (0600) and reused on every later `up`."""
    path = directory / SECRETS_FILE
    if not create and not path.is_file():
        raise InputError(str(path), "missing: the stack was never started (`provenance stack up`)")
    if path.is_file():
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            raise InputError(str(path), "readable by others; expected mode 0600")
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise InputError(str(path), f"unreadable stack secrets: {exc}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise InputError(str(path), "unreadable stack secrets: expected a string map")
        return data
    made = {
        "postgres_superuser_password": secrets.token_urlsafe(24),
        "postgres_password": secrets.token_urlsafe(24),
        "mlflow_admin_password": secrets.token_urlsafe(24),
        "mlflow_flask_secret_key": secrets.token_urlsafe(32),
        "gate_password": secrets.token_urlsafe(24),
        "engineer_password": secrets.token_urlsafe(24),
    }
    for who in ("server", "gate", "engineer"):
        made[f"s3_{who}_access_key"] = "PROV" + secrets.token_hex(8).upper()
        made[f"s3_{who}_secret_key"] = secrets.token_urlsafe(30)
    data = json.dumps(made, indent=2, sort_keys=True).encode()
    write_atomic(path, data + b"\n", mode=0o600)
    return made
