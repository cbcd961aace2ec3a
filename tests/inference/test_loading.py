"""load_model: the tiny checkpoint loads; bad specs give ModelLoadError/UnsupportedFamilyError."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

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


def test_random_init_knows_the_published_qwen3_vl_2b_geometry():
    """The 2B geometry builds a model of the published shape (on the meta device: no allocation)."""
    from transformers import Qwen3VLForConditionalGeneration

    from gaze_explorer.inference.random_init import DEFAULT_WORDS, qwen3_vl_config
    from gaze_explorer.inference.word_tokenizer import build_word_tokenizer

    config = qwen3_vl_config("Qwen3-VL-2B-Instruct", build_word_tokenizer(list(DEFAULT_WORDS)))
    text, vision = config.text_config, config.vision_config
    assert (text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads, text.head_dim) == (
        28,
        16,
        8,
        128,
    )
    assert (text.hidden_size, text.intermediate_size, config.tie_word_embeddings) == (2048, 6144, True)
    assert (vision.hidden_size, vision.depth, vision.deepstack_visual_indexes) == (1024, 24, [5, 11, 17])
    assert vision.out_hidden_size == 2048
    with torch.device("meta"):
        model = Qwen3VLForConditionalGeneration._from_config(config)
    n_params = sum(p.numel() for p in model.parameters())
    assert 2.0e9 < n_params < 2.3e9, n_params  # the published model has about 2.1 B parameters


def test_random_init_accepts_the_published_short_names():
    """``--random-init Qwen3-VL-2B`` (the README's name) is the 2B Instruct geometry; a wrong name is
    refused with the list of known ones."""
    from gaze_explorer.inference.random_init import load_geometry

    for size in ("2B", "4B", "8B", "32B"):
        assert load_geometry(f"Qwen3-VL-{size}") == load_geometry(f"Qwen3-VL-{size}-Instruct")
    assert load_geometry("Qwen3-VL-2B")["text"]["num_hidden_layers"] == 28
    with pytest.raises(ModelLoadError, match="Qwen3-VL-2B-Instruct"):
        load_geometry("Qwen3-VL-3B")
