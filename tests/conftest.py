"""Session fixtures: a tiny generated dataset shared by the tests that run real ultralytics code."""

from pathlib import Path

import pytest

import slim  # noqa: F401  (offline settings before ultralytics is imported anywhere)
from slim.data import make_demo_dataset


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A 16-train / 8-val image demo dataset at 64 px: the data yaml path."""
    return make_demo_dataset(tmp_path_factory.mktemp("data") / "demo", n_train=16, n_val=8, imgsz=64)
