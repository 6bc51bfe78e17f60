"""Which loader a file's name sends it to.

The loader is chosen by name and framework, not by sniffing, so the name decides what a file
must be proven to be.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

# Suffixes pandas.read_pickle / joblib.load infer a compression from (stripped before routing).
COMPRESSION = (".gz", ".bz2", ".xz", ".z", ".zip", ".tar", ".tgz", ".zst", ".lzma", ".lz4")
_PICKLE = {
    ".pkl": "pickle.load / joblib.load / pandas.read_pickle",
    ".pickle": "pickle.load / pandas.read_pickle",
    ".pck": "pickle.load",
    ".pcl": "pickle.load",
    ".p": "pickle.load",
    ".dill": "dill.load",
    ".joblib": "joblib.load",
    ".jbl": "joblib.load",
    ".pt": "torch.load",
    ".pth": "torch.load",
    ".bin": "torch.load (transformers pytorch_model.bin)",
    ".ckpt": "torch.load (Lightning checkpoint)",
    ".pt2": "torch.export.load",
    ".mar": "torch-model-archiver",
    ".npy": "numpy.load",
    ".npz": "numpy.load",
}
# Safe formats, by suffix: the content must be this format, proven by its parser.
_SAFE = {
    ".safetensors": "safetensors",
    ".onnx": "onnx",
    ".gguf": "gguf",
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".txt": "text",
    ".md": "text",
    ".jinja": "template",
}
_KERAS = {".keras": "keras", ".h5": "hdf5", ".hdf5": "hdf5"}
# Plain-text files models ship without a suffix.
_TEXT_NAMES = ("LICENSE", "README", "NOTICE", "COPYING", "AUTHORS", "CITATION")
_GIT_FILES = (".gitattributes", ".gitignore")


@dataclass(frozen=True)
class Route:
    """Where a name sends a file: the format it must be, and the loader that would open it."""

    kind: str  # "safetensors", …, "npy", "npz", "keras", "hdf5", "pickle", "unknown"
    loader: str
    compressed: str = ""  # compression suffixes stripped before the pickle suffix


def route(path: str) -> Route:
    """The route for a file, by its base name (case-insensitive suffixes)."""
    name = posixpath.basename(path)
    lower = name.lower()
    stem, ext = posixpath.splitext(lower)
    if ext in (".npy", ".npz"):
        return Route(ext[1:], "numpy.load (allow_pickle=True unpickles object arrays)")
    if ext in _SAFE:
        return Route(_SAFE[ext], f"a {_SAFE[ext]} reader")
    if ext in _KERAS:
        return Route(_KERAS[ext], "keras.saving.load_model")
    if ext in _PICKLE:
        return Route("pickle", _PICKLE[ext])
    stripped = ""
    while ext in COMPRESSION:
        stripped = ext + stripped
        stem, ext = posixpath.splitext(stem)
        if ext in _PICKLE:
            loader = "pandas.read_pickle / joblib.load (compression from the name)"
            return Route("pickle", loader, stripped)
    if stripped:
        return Route("unknown", f"a {stripped} archive reader")
    if (not ext and name.upper().startswith(_TEXT_NAMES)) or name in _GIT_FILES:
        return Route("text", "a text reader")
    return Route("unknown", "no loader the scan knows")
