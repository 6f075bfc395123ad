"""Session fixtures for tests/ and benchmarks/: a tiny generated dataset for the tests that run real ultralytics.

The tests always run offline: the guard is applied here, before any test imports ultralytics, and SLIM_OFFLINE=1
makes every `slim` command or script a test starts apply it too (into its own YOLO_CONFIG_DIR, where one is set).
"""

import os
from pathlib import Path

import pytest

from slim.offline import keep_ultralytics_offline

os.environ["SLIM_OFFLINE"] = "1"
keep_ultralytics_offline()

from slim.data import make_demo_dataset  # noqa: E402  (imports ultralytics: after the guard)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A 16-train / 8-val image demo dataset at 64 px: the data yaml path."""
    return make_demo_dataset(tmp_path_factory.mktemp("data") / "demo", n_train=16, n_val=8, imgsz=64)
