"""The provenance records: what they hold, what counts as a change, and when a record becomes the folder's."""

import hashlib

from slim import provenance
from slim.config import load_config


def test_a_record_holds_the_keys_that_shape_the_stage_and_its_input_hash(tmp_path):
    source = tmp_path / "last.pt"
    source.write_bytes(b"a sparse model")
    prune = provenance.wanted(load_config(None, ["prune.ratio=0.3"]), "prune", source)
    assert prune["config"]["prune.ratio"] == 0.3 and all(k.startswith("prune.") for k in prune["config"])
    assert prune["input"] == {"path": str(source), "sha256": hashlib.sha256(b"a sparse model").hexdigest()}
    train = provenance.wanted(load_config(), "train", "yolov8n.yaml")  # an architecture name: no input file
    assert train["config"]["model"] == "yolov8n.yaml" and "demo.generator" in train["config"] and "input" not in train
    own_data = provenance.wanted(load_config(None, ["data=mine.yaml"]), "sparsity", None)["config"]
    assert own_data["data"] == "mine.yaml" and not [k for k in own_data if k.startswith("demo.")]


def test_changes_name_each_key_and_ignore_settings_that_shape_nothing(tmp_path):
    cfg = load_config()
    saved = provenance.wanted(cfg, "finetune", None)
    now = provenance.wanted(load_config(None, ["finetune.lr0=0.01", "finetune.workers=4", "device=0"]), "finetune", None)
    assert provenance.changes(saved, now) == ["finetune.lr0=0.002 (now 0.01)"]
    assert provenance.changes(saved, provenance.wanted(cfg, "finetune", None)) == []
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    moved = provenance.changes(provenance.of_file(a, {}), provenance.of_file(b, {}))
    assert moved == [f"input {a} (now {b})"]
    assert provenance.changes(provenance.of_file(a, {}), provenance.of_file(a, {})) == []
    a.write_bytes(b"changed")
    assert provenance.changes(provenance.of_file(b, {}) | {"input": {"path": str(a), "sha256": "0" * 64}},
                              provenance.of_file(a, {}))[0].startswith(f"a different {a} (sha256 000000000000, now ")


def test_targeted_sparsity_is_redone_when_the_prune_budget_changes_and_l1_is_not():
    targeted = ["sparsity.method=targeted", "prune.target_gflops=0.4"]
    saved = provenance.wanted(load_config(None, targeted), "sparsity", None)
    now = provenance.wanted(load_config(None, [*targeted[:1], "prune.target_gflops=0.3"]), "sparsity", None)
    assert provenance.changes(saved, now) == ["prune.target_gflops=0.4 (now 0.3)"]
    assert provenance.changes(saved, provenance.wanted(load_config(None, [*targeted, "sparsity.sr=0.1"]), "sparsity",
                                                       None)) == []  # sr is l1's
    l1 = provenance.wanted(load_config(), "sparsity", None)
    assert provenance.changes(l1, provenance.wanted(load_config(None, ["prune.ratio=0.3", "sparsity.shrink=2"]),
                                                    "sparsity", None)) == []


def test_a_record_is_the_folders_only_once_the_run_finished(tmp_path):
    (tmp_path / provenance.RECORD).write_text('{"config": {"prune.ratio": 0.5}}')
    provenance.start(tmp_path, {"config": {"prune.ratio": 0.3}})
    assert provenance.read(tmp_path) is None  # killed now, the folder would be redone, never reused
    provenance.finish(tmp_path)
    assert provenance.read(tmp_path) == {"config": {"prune.ratio": 0.3}}
    assert [p.name for p in tmp_path.iterdir()] == [provenance.RECORD]
