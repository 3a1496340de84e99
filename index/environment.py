"""Process-wide switches of the third-party libraries: no telemetry, no model-hub downloads.
Light on purpose (no imports): set it before importing transformers, unstructured or chromadb,
which read some of these at import time."""

from __future__ import annotations

import os

OFFLINE_ENV = {
    "DO_NOT_TRACK": "1",  # unstructured's usage ping
    "HF_HUB_OFFLINE": "1",  # never ask a model hub
    "TRANSFORMERS_OFFLINE": "1",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    "TOKENIZERS_PARALLELISM": "false",  # no fork warnings from the tokenizers' thread pool
    "ANONYMIZED_TELEMETRY": "False",  # chromadb
}


def use_offline_environment(*, force: bool = False) -> None:
    """Set the switches; values already in the environment win unless `force`."""
    for key, value in OFFLINE_ENV.items():
        if force:
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)
