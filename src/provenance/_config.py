"""Settings lookup: explicit value > environment (PROVENANCE_*) > [tool.provenance] in pyproject.

The one place the package reads or sets environment variables (`environment`,
`environment_copy`, `set_environment`, `default_environment`; tests/unit/test_layering.py keeps
it so), so that every setting resolves in the same order, `[tool.provenance]` applies wherever a
variable does (docs/configuration.md lists them), and what the package takes from or leaves in
the environment can be read in one file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from provenance.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

DEFAULT_LINKS_DIR = ".provenance/links"


@lru_cache(maxsize=8)
def _pyproject_table(root: str) -> dict[str, Any]:
    path = Path(root) / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(str(path), f"cannot read [tool.provenance]: {exc}") from exc
    table = data.get("tool", {}).get("provenance", {})
    if not isinstance(table, dict):
        raise InputError(str(path), "[tool.provenance] must be a table")
    return table


def environment(variable: str) -> str | None:
    """The environment variable `variable` (its full documented name); None when unset."""
    return os.environ.get(variable)


def environment_copy(keep: Callable[[str], bool] | None = None) -> dict[str, str]:
    """The variables `keep` keeps (all by default), for a child process or a remote task."""
    return {k: v for k, v in os.environ.items() if keep is None or keep(k)}


def set_environment(variable: str, value: str | None) -> None:
    """Set `variable` for this process and the processes it starts; None removes it."""
    if value is None:
        os.environ.pop(variable, None)
    else:
        os.environ[variable] = value


def default_environment(variable: str, value: str) -> None:
    """Set `variable` unless the environment already sets it (a library's own setting)."""
    os.environ.setdefault(variable, value)


def setting(
    name: str,
    explicit: str | None = None,
    *,
    root: str | os.PathLike[str] = ".",
    env: str | None = None,
) -> str | None:
    """Resolve setting `name` by precedence; None when unset everywhere.

    Args:
        name: The `[tool.provenance]` key, e.g. ``links_dir``.
        explicit: A flag's or argument's value; wins when not None.
        root: The project root whose pyproject.toml is read.
        env: The environment variable, when it is not ``PROVENANCE_<NAME>`` (e.g.
            ``MLFLOW_TRACKING_URI``); an empty value counts as unset.

    Raises:
        InputError: The project's pyproject.toml cannot be read.
    """
    if explicit is not None:
        return str(explicit)
    value = environment(env or "PROVENANCE_" + name.upper())
    if value:
        return value
    found = _pyproject_table(str(Path(root).resolve())).get(name)
    return None if found is None else str(found)


def default(name: str, *, env: str | None = None) -> Callable[[], str | None]:
    """A click option default that resolves setting `name` when the command runs.

    Used instead of click's ``envvar=`` so that a flag's environment variable and its
    ``[tool.provenance]`` key resolve in the one documented order.
    """
    return lambda: setting(name, env=env)


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def flag(name: str, *, root: str | os.PathLike[str] = ".") -> bool:
    """A yes/no setting; anything but a clear yes or no is refused rather than guessed."""
    value = setting(name, root=root)
    if value is None:
        return False
    text = value.strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise InputError(f"PROVENANCE_{name.upper()}", f"{value!r} is not yes or no (true/false, 1/0)")


def links_dir(
    explicit: str | os.PathLike[str] | None = None, *, root: str | os.PathLike[str] = "."
) -> str:
    return setting("links_dir", None if explicit is None else os.fspath(explicit), root=root) or (
        DEFAULT_LINKS_DIR
    )
