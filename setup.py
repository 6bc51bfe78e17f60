"""Package layout that pyproject.toml cannot express: the example pipeline ships in the wheel.

`steps/` and `layouts/` stay at the repository root (they are the example a user copies) and are
installed as `provenance/_example/steps` and `provenance/_example/layouts`, so `provenance demo`
runs from an installed wheel. An editable install maps the same names back to the repository.
"""

from setuptools import find_packages, setup

EXAMPLE = {"provenance._example.steps": "steps", "provenance._example.layouts": "layouts"}

setup(
    packages=[*find_packages("src"), *EXAMPLE],
    package_dir={"": "src", **EXAMPLE},
    package_data={
        "provenance": ["py.typed"],
        "provenance._example.layouts": ["*.yaml"],
        "provenance.signing.sigstore": ["roots/*.json"],  # named Sigstore trusted roots (_roots.py)
    },
)
