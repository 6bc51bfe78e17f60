"""The example training pipeline: prepare -> train -> evaluate, each a recorded in-toto step."""
