"""Load one corpus file with its real loader, as a victim would: `python load.py LOADER PATH`.

Only ever run in a throwaway subprocess by tests/integration/test_scan_corpus.py (with SCAN_MARKER set to
a temporary path): the malicious files' payloads run here. Errors after the payload ran are
expected and ignored; the test looks only at the marker file.
"""

from __future__ import annotations

import sys


def load(loader: str, path: str) -> None:
    if loader.startswith("pickle.load"):
        import pickle

        with open(path, "rb") as f:
            while True:
                pickle.load(f)
    elif loader.startswith("joblib.load"):
        import joblib

        joblib.load(path)
    elif loader.startswith("pandas.read_pickle"):
        import pandas

        pandas.read_pickle(path)
    elif loader.startswith("numpy.load"):
        import numpy

        data = numpy.load(path, allow_pickle=True)
        if hasattr(data, "files"):
            for name in data.files:
                data[name]
    elif loader.startswith("torch.load"):
        import torch

        torch.load(path, weights_only=False)
    elif loader.startswith("keras.saving"):
        import keras

        keras.saving.load_model(path, safe_mode=False)
    elif loader.startswith("jinja2"):
        import gguf
        import jinja2

        field = gguf.GGUFReader(path).fields["tokenizer.chat_template"]
        template = bytes(field.parts[field.data[0]]).decode()
        messages = [{"role": "user", "content": "hi"}]
        jinja2.Environment().from_string(template).render(
            messages=messages, bos_token="", add_generation_prompt=True
        )
    elif loader.startswith("yaml.unsafe_load"):
        import yaml

        with open(path, "rb") as f:
            yaml.unsafe_load(f)
    else:
        raise SystemExit(f"unknown loader {loader}")


if __name__ == "__main__":
    try:
        load(sys.argv[1], sys.argv[2])
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
