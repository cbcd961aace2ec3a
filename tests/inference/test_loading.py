"""load_model: the tiny checkpoint loads; bad specs give ModelLoadError/UnsupportedFamilyError."""

from __future__ import annotations

import json
import shutil

import pytest

from gaze_explorer.core.errors import ModelLoadError, UnsupportedFamilyError
from gaze_explorer.inference import loading
from gaze_explorer.inference.loading import load_model


def test_loaded_model_describes_itself(tiny_qwen):
    d = tiny_qwen.describe()
    assert d["family"] == "qwen3_vl" and d["dtype"] == "float32" and d["device"] == "cpu"
    assert (d["n_layers"], d["n_heads"], d["n_kv_heads"], d["head_dim"]) == (2, 4, 2, 16)
    assert not tiny_qwen.model.training
    assert not any(p.requires_grad for p in tiny_qwen.model.parameters())


def test_missing_path_and_no_config(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nope", device="cpu")
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        load_model(tmp_path, device="cpu")


def test_unknown_architecture(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    with pytest.raises(UnsupportedFamilyError, match="bert"):
        load_model(tmp_path, device="cpu")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no_such_family_xyz"}))
    with pytest.raises(UnsupportedFamilyError):
        load_model(tmp_path, device="cpu")


def test_bin_only_and_corrupted_weights(tiny_qwen_dir, tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_qwen_dir, ckpt)
    weights = ckpt / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelLoadError):
        load_model(ckpt, device="cpu")
    weights.unlink()
    (ckpt / "pytorch_model.bin").write_bytes(b"not a pickle")
    with pytest.raises(ModelLoadError, match="safetensors only"):
        load_model(ckpt, device="cpu")


def test_demo_keyword_missing_and_bad_options(monkeypatch, tmp_path):
    monkeypatch.setattr(loading, "DEMO_DIR", tmp_path / "demo_model")
    with pytest.raises(ModelLoadError, match="demo model is missing"):
        load_model("demo")
    with pytest.raises(ModelLoadError, match="dtype"):
        loading.resolve_dtype("int3", loading.resolve_device("cpu"))
    with pytest.raises(ModelLoadError, match="device"):
        loading.resolve_device("tpu")
