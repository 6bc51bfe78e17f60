"""`up`, `status` and `down` of the local stack, and the document that describes it.

`up` starts what is not running (PostgreSQL, then S3, then MLflow), each waited for with a bound;
when one fails, what this call started is stopped again and the error names the component and
ends with the tail of its log. A stack that already runs is left alone (same document).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance import _config
from provenance.errors import ComponentError, UsageError
from provenance.stack import _mlflow, _postgres, _proc, _s3, _state
from provenance.stack._state import COMPONENTS, State

RUNNING, CRASHED, STOPPED = "running", "crashed", "stopped"
TIMEOUTS = {"postgresql": 60.0, "s3": 90.0, "mlflow": 180.0}
LOG_TAIL_LINES = 15


@dataclass(frozen=True)
class Timing:
    """Seconds each component took to become ready in the last `up` (0 when left running)."""

    seconds: dict[str, float]


def component_state(comp: _state.Component, main_port: str) -> str:
    """The component's status: running, crashed or stopped.

    running: the recorded process is alive and its port answers; crashed: it should run but
    does not; stopped: `down` stopped it (or it was never started).
    """
    if not comp.started:
        return STOPPED
    if comp.proc is None or not _proc.is_alive(comp.proc):
        return CRASHED
    return RUNNING if _proc.port_open(comp.ports[main_port]) else CRASHED


MAIN_PORT = {"postgresql": "postgresql", "s3": "s3", "mlflow": "mlflow"}


def states(state: State) -> dict[str, str]:
    return {n: component_state(state.components[n], MAIN_PORT[n]) for n in COMPONENTS}


def _log_tail(state: State, name: str) -> str:
    path = state.path("logs", f"{name}.log")
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    starts = [i for i, line in enumerate(lines) if line.startswith(_proc.LOG_MARK)]
    lines = lines[starts[-1] + 1 if starts else 0 :][-LOG_TAIL_LINES:]
    return f"last lines of {path}:\n" + "\n".join(f"  {line}" for line in lines)


def _port_names(name: str) -> tuple[str, ...]:
    return _s3.PORTS if name == "s3" else (name,)


def _assign_ports(state: State, to_start: list[str], anything_running: bool) -> None:
    """Reuse recorded ports; choose new free ones where unset, or taken while nothing runs."""
    for name in to_start:
        comp = state.components[name]
        wanted = _port_names(name)
        usable = set(comp.ports) == set(wanted) and all(
            _proc.port_free(p) for p in comp.ports.values()
        )
        if usable:
            continue
        if comp.ports and anything_running:
            taken = [str(p) for p in comp.ports.values() if not _proc.port_free(p)]
            raise ComponentError(
                name,
                f"cannot restart: its port(s) {', '.join(taken)} on 127.0.0.1 are in use by "
                "another process (run `provenance stack down` first)",
            )
        comp.ports = dict(zip(wanted, _proc.free_ports(len(wanted)), strict=True))


def _gate_key(state_dir: Path, given: str | None) -> tuple[str, str | None]:
    from provenance.signing import generate, load_public_key

    if given:
        path = str(Path(given).resolve())
        load_public_key(path)  # unusable key: InputError (exit 3) before anything starts
        return path, None
    pair = generate("gate", str(state_dir / "gate"))
    return str(Path(pair.public_path).resolve()), str(Path(pair.private_path).resolve())


def _prepare(directory: Path, gate_pub_key: str | None) -> State:
    state = _state.load(directory)
    if state is None:
        state = _state.create(directory, "", None)  # the marker first: D is ours from here on
        state.gate_public_key, state.gate_private_key = _gate_key(directory, gate_pub_key)
    elif gate_pub_key and str(Path(gate_pub_key).resolve()) != state.gate_public_key:
        if states(state)["mlflow"] == RUNNING:
            raise UsageError(
                f"the stack in {directory} runs with gate key {state.gate_public_key}; "
                "run `provenance stack down` before changing --gate-pub-key"
            )
        state.gate_public_key, state.gate_private_key = _gate_key(directory, gate_pub_key)
    if not state.postgres_bin or not Path(state.postgres_bin, "postgres").is_file():
        state.postgres_bin = str(_postgres.runnable_binaries(directory, _postgres.binaries()))
    state.save()
    return state


def up(directory: Path, gate_pub_key: str | None = None) -> tuple[State, Timing]:
    """Start every component of the stack in `directory` that is not running."""
    directory = directory.resolve()
    _state.load(directory)  # refuses a foreign D before anything is written into it
    if gate_pub_key:  # an unusable key fails before D is created
        _gate_key(directory, gate_pub_key)
    directory.mkdir(parents=True, exist_ok=True)
    with _state.locked(directory):  # a concurrent `up` finishes first; this one then sees it
        return _up(_prepare(directory, gate_pub_key))


def _up(state: State) -> tuple[State, Timing]:
    directory = state.directory
    sec = _state.secrets_for(directory, create=True)
    current = states(state)
    to_start = [n for n in COMPONENTS if current[n] != RUNNING]
    timing: dict[str, float] = dict.fromkeys(COMPONENTS, 0.0)
    if not to_start:
        return state, Timing(timing)
    for name in to_start:  # leftovers of a crashed component (its workers, say) go first
        comp = state.components[name]
        if comp.proc is not None:
            _stop_component(name, comp)
            comp.proc = None
    _assign_ports(state, to_start, anything_running=len(to_start) < len(COMPONENTS))
    state.save()
    started: list[str] = []
    try:
        for name in to_start:
            t0 = time.monotonic()
            _start_component(state, name, sec)
            started.append(name)
            timing[name] = round(time.monotonic() - t0, 2)
    except ComponentError as exc:
        failed = exc.component
        for name in reversed([*started, failed]):
            comp = state.components[name]
            if comp.proc is not None:
                _stop_component(name, comp)
            comp.proc, comp.started = None, False
        state.save()
        raise ComponentError(failed, f"{_strip(exc, failed)}\n{_log_tail(state, failed)}") from None
    return state, Timing(timing)


def _strip(exc: ComponentError, name: str) -> str:
    return str(exc).removeprefix(f"{name}: ")


def _start_component(state: State, name: str, sec: dict[str, str]) -> None:
    comp = state.components[name]
    pg = state.components["postgresql"].ports
    s3 = state.components["s3"].ports
    boot: Callable[[], _proc.Proc]
    if name == "postgresql":
        _postgres.ensure_initialized(state, sec["postgres_superuser_password"])
        boot = lambda: _postgres.start(state, comp.ports["postgresql"])  # noqa: E731
    elif name == "s3":
        boot = lambda: _s3.start(state, comp.ports, sec)  # noqa: E731
    else:
        boot = lambda: _mlflow.start(state, comp.ports["mlflow"], pg["postgresql"], s3, sec)  # noqa: E731
    comp.proc = boot()
    comp.started = True
    state.save()
    timeout = TIMEOUTS[name]
    if name == "postgresql":
        _postgres.wait_ready(
            comp.proc, pg["postgresql"], sec["postgres_superuser_password"], timeout
        )
        _postgres.provision(
            pg["postgresql"], sec["postgres_superuser_password"], sec["postgres_password"]
        )
    elif name == "s3":
        _s3.wait_ready(comp.proc, s3, sec, timeout)
    else:
        _mlflow.wait_ready(comp.proc, comp.ports["mlflow"], timeout, sec["mlflow_admin_password"])
        _mlflow.ensure_users(comp.ports["mlflow"], sec)


def _stop_component(name: str, comp: _state.Component) -> bool:
    assert comp.proc is not None
    if name == "postgresql":
        return _postgres.stop(comp.proc)
    if name == "s3":
        return _s3.stop(comp.proc, comp.ports)
    return _mlflow.stop(comp.proc)


def down(directory: Path) -> dict[str, str]:
    """Stop exactly the processes the stack started (MLflow, S3, PostgreSQL); keep the data."""
    directory = directory.resolve()
    state = _state.load(directory)
    if state is None:
        raise UsageError(
            f"{directory}: no stack here (run `provenance stack up --dir {directory}`)"
        )
    result: dict[str, str] = {}
    for name in reversed(COMPONENTS):
        comp = state.components[name]
        if comp.proc is None:
            result[name] = STOPPED
            comp.started = False
            continue
        if _stop_component(name, comp):
            comp.proc, comp.started = None, False
            result[name] = STOPPED
        else:
            result[name] = "still running"
        state.save()
    state.save()
    leftover = [n for n, s in result.items() if s != STOPPED]
    if leftover:
        raise ComponentError(leftover[0], "did not stop after SIGTERM and SIGKILL")
    return result


def status(directory: Path) -> State:
    directory = directory.resolve()
    state = _state.load(directory)
    if state is None:
        raise UsageError(
            f"{directory}: no stack here (run `provenance stack up --dir {directory}`)"
        )
    return state


def document(state: State, timing: Timing | None = None) -> dict[str, Any]:
    """The description of the stack that --json prints: URIs, client environments, processes."""
    sec = _state.secrets_for(state.directory)
    comps = state.components
    pg_port = comps["postgresql"].ports.get("postgresql", 0)
    s3_ports = comps["s3"].ports
    ml_port = comps["mlflow"].ports.get("mlflow", 0)
    s3_url = _s3.endpoint(s3_ports) if s3_ports else None
    tracking = _mlflow.tracking_uri(ml_port)

    def client_env(user: str, password: str, who: str) -> dict[str, str]:
        return {
            "MLFLOW_TRACKING_URI": tracking,
            "MLFLOW_TRACKING_USERNAME": user,
            "MLFLOW_TRACKING_PASSWORD": password,
            "MLFLOW_S3_ENDPOINT_URL": s3_url or "",
            "AWS_ACCESS_KEY_ID": sec[f"s3_{who}_access_key"],
            "AWS_SECRET_ACCESS_KEY": sec[f"s3_{who}_secret_key"],
            "AWS_DEFAULT_REGION": _s3.REGION,
        }

    doc: dict[str, Any] = {
        "stack_dir": str(state.directory),
        "tracking_uri": tracking,
        "backend_store_uri": _mlflow.store_uri(pg_port, None),
        "registry_store_uri": "provenance-" + _mlflow.store_uri(pg_port, None),
        "postgres_password_file": str(state.path(_state.SECRETS_FILE)),
        "artifacts_destination": _mlflow.artifacts_destination(),
        "s3_endpoint": s3_url,
        "bucket": _s3.BUCKET,
        "env": client_env(_mlflow.GATE_USER, sec["gate_password"], "gate"),
        "engineer_env": client_env(_mlflow.ENGINEER, sec["engineer_password"], "engineer"),
        "admin": {"username": _mlflow.ADMIN, "password": sec["mlflow_admin_password"]},
        "default_permission": _mlflow.DEFAULT_PERMISSION,
        "gate_public_key": state.gate_public_key,
        "gate_private_key": state.gate_private_key,
        "pids": {n: c.proc.pid if c.proc else None for n, c in comps.items()},
        "ports": {n: dict(c.ports) for n, c in comps.items()},
        "components": states(state),
        "logs": {n: str(state.path("logs", f"{n}.log")) for n in COMPONENTS},
        "postgres_bin": state.postgres_bin,
    }
    if timing is not None:
        doc["startup_seconds"] = timing.seconds
    return doc


def default_dir() -> Path:
    return Path(_config.setting("stack_dir") or ".provenance-stack")
