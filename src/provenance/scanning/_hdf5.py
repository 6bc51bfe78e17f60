"""HDF5 (.h5 Keras models and weights) read with h5py, when it is installed.

The Keras config in ``model_config``/``training_config`` is judged by ``_keras``, and the file
held to what Keras writes: no user block (bytes of another format in front), no soft/external
links, external or virtual datasets, no filters other than HDF5's built-in ones (a filter
plugin is a shared library HDF5 loads), no object or reference data. Without h5py an .h5 file
is refused.
"""

from __future__ import annotations

import importlib
import json
from typing import IO, Any

from provenance.scanning import _keras
from provenance.scanning._model import Finding

MAX_OBJECTS = 1_000_000
# deflate, shuffle, fletcher32, szip, nbit, scaleoffset; lzf (h5py's own, built in).
_FILTERS = frozenset({1, 2, 3, 4, 5, 6, 32000})


class Hdf5Error(Exception):
    """The HDF5 file is refused."""


def _dtype_ok(h5py: Any, dtype: Any) -> bool:
    if dtype.kind in "biufcSV?" and not dtype.hasobject:
        return (
            dtype.kind != "V"
            or dtype.names is None
            or all(_dtype_ok(h5py, dtype.fields[n][0]) for n in dtype.names)
        )
    return dtype.kind == "O" and h5py.check_string_dtype(dtype) is not None


def _config(raw: Any, what: str) -> None:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "strict")
    if not isinstance(raw, str):
        raise Hdf5Error(f"{what} is not a JSON string")
    try:
        config = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise Hdf5Error(f"{what} is not JSON ({exc})") from None
    try:
        _keras.check_config(config)
    except _keras.KerasError as exc:
        raise Hdf5Error(f"{what}: {exc}") from None


def _walk(h5py: Any, root: Any) -> None:
    stack = [root]
    seen = 0
    while stack:
        group = stack.pop()
        for name in group:
            seen += 1
            if seen > MAX_OBJECTS:
                raise Hdf5Error(f"more than {MAX_OBJECTS} objects")
            link = group.get(name, getlink=True)
            if not isinstance(link, h5py.HardLink):
                raise Hdf5Error(f"{group.name}/{name} is a {type(link).__name__}")
            obj = group[name]
            for key in obj.attrs:
                if not _dtype_ok(h5py, obj.attrs.get_id(key).dtype):
                    raise Hdf5Error(f"attribute {key!r} of {obj.name} holds objects")
            if isinstance(obj, h5py.Group):
                stack.append(obj)
                continue
            if obj.is_virtual or obj.external:
                raise Hdf5Error(f"dataset {obj.name} keeps its data in other files")
            if not _dtype_ok(h5py, obj.dtype):
                raise Hdf5Error(f"dataset {obj.name} has dtype {obj.dtype} (objects/references)")
            plist = obj.id.get_create_plist()
            for i in range(plist.get_nfilters()):
                fid = plist.get_filter(i)[0]
                if fid not in _FILTERS:
                    raise Hdf5Error(f"dataset {obj.name} needs filter plugin {fid}")


def check_hdf5(f: IO[bytes]) -> list[Finding]:
    """An HDF5 file Keras could load, with its model config on the allow-list."""
    try:
        h5py: Any = importlib.import_module("h5py")
    except ImportError:
        return [Finding("hdf5", "cannot be inspected: h5py is not installed")]
    try:
        with h5py.File(f, "r") as h5:
            if h5.userblock_size:
                raise Hdf5Error(f"{h5.userblock_size}-byte user block in front of the HDF5 data")
            for key in h5.attrs:
                if not _dtype_ok(h5py, h5.attrs.get_id(key).dtype):
                    raise Hdf5Error(f"root attribute {key!r} holds objects")
            for key in ("model_config", "training_config"):
                if key in h5.attrs:
                    _config(h5.attrs[key], key)
            _walk(h5py, h5)
    except Hdf5Error as exc:
        return [Finding("hdf5", str(exc))]
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, UnicodeDecodeError) as exc:
        return [Finding("hdf5", f"not an HDF5 file that opens cleanly ({exc})")]
    return []
