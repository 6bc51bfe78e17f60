"""The example pipeline (`steps/`, `layouts/` of the repository), packaged for `provenance demo`.

In the wheel both folders sit beside this file; in an editable install the import system maps
`provenance._example.steps` to the repository's `steps/`. Either way `layouts/` is its sibling,
and their common parent is the demo's project.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def example_project() -> Path | None:
    """The folder holding the packaged `steps/` and `layouts/`, or None if they are missing."""
    spec = importlib.util.find_spec("provenance._example.steps")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        return None
    project = Path(locations[0]).parent
    if not (project / "steps").is_dir() or not (project / "layouts").is_dir():
        return None
    return project
