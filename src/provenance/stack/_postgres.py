"""PostgreSQL for the stack: the server binaries of the `pgserver` wheel, else a system install.

The server listens on 127.0.0.1 only (no Unix socket) with scram-sha-256 passwords. PostgreSQL
refuses to run as root, so a root caller runs it as the unprivileged user `nobody`.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

from provenance import _config
from provenance.errors import ComponentError, UsageError
from provenance.stack import _proc
from provenance.stack._proc import HOST, Proc
from provenance.stack._state import State

NAME = "postgresql"
SUPERUSER = "postgres"
USER = "mlflow"
DATABASE = "mlflow"
AUTH_DATABASE = "mlflow_auth"
_SYSTEM_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin")


def binaries() -> Path:
    """The directory holding `initdb` and `postgres`: the pgserver wheel first, then the system."""
    spec = importlib.util.find_spec("pgserver")  # located, not imported (it has import effects)
    if spec is not None and spec.origin:
        wheel = Path(spec.origin).parent / "pginstall" / "bin"
        if (wheel / "postgres").is_file():
            return wheel
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    for pattern in _SYSTEM_GLOBS:
        for found in sorted(glob.glob(pattern), reverse=True):
            if (Path(found) / "initdb").is_file():
                return Path(found)
    raise ComponentError(
        NAME,
        "no PostgreSQL server binaries: install the stack extra (`pip install "
        "'ml-provenance[stack]'`, which brings the pgserver wheel) or a system PostgreSQL",
    )


def _run_as() -> tuple[int, int] | None:
    """(uid, gid) to run the server as when the caller is root; None otherwise."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        raise ComponentError(
            NAME, "started by root, but there is no user 'nobody' to run the server as"
        ) from None
    return entry.pw_uid, entry.pw_gid


def _untraversable(path: Path) -> Path | None:
    """The first of `path` and its parents that other users cannot traverse, if any."""
    for parent in [path, *path.parents]:
        if not parent.stat().st_mode & stat.S_IXOTH:
            return parent
    return None


def runnable_binaries(directory: Path, bindir: Path) -> Path:
    """`bindir`, or a copy of the wheel's server under D when root's `nobody` cannot reach it.

    Such as a virtualenv inside /root. The copy keeps the wheel's relative layout: the
    binaries find their libraries through $ORIGIN-relative paths.
    """
    if _run_as() is None or _untraversable(bindir) is None:
        return bindir
    install = bindir.parent  # …/site-packages/pgserver/pginstall
    site = install.parent.parent
    if install.name != "pginstall" or not (site / "pgserver.libs").is_dir():
        raise UsageError(
            f"{bindir}: PostgreSQL runs as 'nobody' when the stack is started by root, and "
            f"{_untraversable(bindir)} is not traversable by other users"
        )
    _check_reachable(directory)
    dist = directory / "postgresql" / "dist"
    target = dist / "pgserver" / "pginstall"
    if not (target / "bin" / "postgres").is_file():
        shutil.rmtree(dist, ignore_errors=True)
        for part in ("bin", "lib", "share"):
            shutil.copytree(install / part, target / part, symlinks=True)
        shutil.copytree(site / "pgserver.libs", dist / "pgserver.libs", symlinks=True)
        for path in [dist, *dist.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                os.chmod(path, 0o755)  # noqa: S103 - nobody must reach the binaries
        os.chmod(directory / "postgresql", 0o711)  # noqa: S103 - traverse only
    return target / "bin"


def _check_reachable(directory: Path) -> None:
    """As root the server runs as `nobody`, which must be able to traverse every parent of D."""
    for parent in [directory, *directory.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            raise UsageError(
                f"{directory}: PostgreSQL runs as 'nobody' when the stack is started by root, "
                f"and {parent} is not traversable by other users (mode "
                f"{stat.S_IMODE(mode):o}); choose a --dir under a world-traversable path such "
                "as /tmp or /srv"
            )


def data_dir(state: State) -> Path:
    return state.path("postgresql", "data")


def ensure_initialized(state: State, superuser_password: str) -> None:
    """Run initdb once for D (scram-sha-256 everywhere, superuser password from the secrets)."""
    data = data_dir(state)
    if (data / "PG_VERSION").is_file():
        return
    bindir = Path(state.postgres_bin)
    owner = _run_as()
    if owner is not None:
        _check_reachable(state.directory)
    data.mkdir(parents=True, exist_ok=True)
    os.chmod(data, 0o700)
    pwfile = state.path("postgresql", ".initdb-password")
    pwfile.write_text(superuser_password + "\n")
    os.chmod(pwfile, 0o600)
    if owner is not None:
        os.chown(data.parent, *owner)
        os.chown(data, *owner)
        os.chown(pwfile, *owner)
    log = state.path("logs", "postgresql-initdb.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with log.open("ab") as out:
            done = subprocess.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    SUPERUSER,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-sync",  # a fresh, empty cluster: nothing to lose before the first sync
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={"PATH": _config.environment("PATH") or "", "LC_ALL": "C"},
                cwd=state.directory,
                timeout=120,
                check=False,
                user=owner[0] if owner else None,
                group=owner[1] if owner else None,
                extra_groups=[] if owner else None,
            )
    finally:
        pwfile.unlink(missing_ok=True)
    if done.returncode != 0:
        shutil.rmtree(data, ignore_errors=True)
        raise ComponentError(NAME, f"initdb failed (exit {done.returncode})")


def _clear_stale_lock(data: Path) -> None:
    """Remove `postmaster.pid` left by a postmaster that is gone or a zombie.

    PostgreSQL itself only asks kill(pid, 0), which succeeds on a killed postmaster that its
    parent has not reaped yet, and then refuses to start ("lock file already exists").
    """
    import psutil

    lock = data / "postmaster.pid"
    try:
        pid = int(lock.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return
    try:
        alive = psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        alive = False
    except psutil.AccessDenied:
        alive = True  # cannot tell: leave it to PostgreSQL
    if not alive:
        lock.unlink(missing_ok=True)


def start(state: State, port: int) -> Proc:
    """Start the postmaster on 127.0.0.1:`port` (TCP only) as the leader of its own session."""
    _clear_stale_lock(Path(data_dir(state)))
    argv = [
        str(Path(state.postgres_bin) / "postgres"),
        "-D",
        str(data_dir(state)),
        "-c",
        f"listen_addresses={HOST}",
        "-p",
        str(port),
        "-c",
        "unix_socket_directories=",
        "-c",
        "max_connections=200",
    ]
    return _proc.spawn(
        argv,
        env={"PATH": _config.environment("PATH") or "", "LC_ALL": "C"},
        log=state.path("logs", "postgresql.log"),
        cwd=state.directory,
        user=_run_as(),
    )


def wait_ready(proc: Proc, port: int, password: str, timeout: float) -> None:
    """Wait until the superuser can log in; the process dying or the deadline fails it."""
    import psycopg

    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not _proc.is_alive(proc):
            raise ComponentError(NAME, "the server exited while starting")
        try:
            with psycopg.connect(
                host=HOST,
                port=port,
                user=SUPERUSER,
                password=password,
                dbname="postgres",
                connect_timeout=2,
            ):
                return
        except psycopg.OperationalError as exc:
            last = str(exc).strip().splitlines()[0] if str(exc).strip() else "refused"
            time.sleep(0.2)
    raise ComponentError(NAME, f"not ready after {timeout:.0f} s ({last})")


def provision(port: int, superuser_password: str, password: str) -> None:
    """Create the MLflow role and its databases (tracking/registry, auth) when missing."""
    import psycopg
    from psycopg import sql

    with (
        psycopg.connect(
            host=HOST,
            port=port,
            user=SUPERUSER,
            password=superuser_password,
            dbname="postgres",
            autocommit=True,
        ) as conn,
        conn.cursor() as cur,
    ):
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (USER,))
        if cur.fetchone() is None:
            cur.execute(
                # DDL takes no bound parameters: the password is quoted as a literal
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(USER), sql.Literal(password)
                )
            )
        for db in (DATABASE, AUTH_DATABASE):
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
            if cur.fetchone() is None:
                cur.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(db), sql.Identifier(USER)
                    )
                )


def stop(proc: Proc) -> bool:
    """Fast shutdown: SIGINT to the postmaster, which ends its backends and checkpoints."""
    return _proc.stop(proc, first=signal.SIGINT, leader_only=True, timeout=30)
