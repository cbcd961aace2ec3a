"""Llama 3.2 Vision (mllama) is refused with the reason, before any weights are read."""

from __future__ import annotations

import pytest

from gaze_explorer.core.errors import UnsupportedFamilyError
from gaze_explorer.inference.adapters import adapter_for, supported_model_types
from gaze_explorer.inference.loading import load_model


def _tiny_mllama_config():
    from transformers import MllamaConfig

    return MllamaConfig(
        text_config=dict(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            cross_attention_layers=[1],
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_global_layers=1,
            num_attention_heads=2,
            image_size=28,
            patch_size=14,
            max_num_tiles=4,
        ),
    )


def test_mllama_is_refused_with_the_cross_attention_reason():
    config = _tiny_mllama_config()
    assert config.text_config.cross_attention_layers == [1]  # the layers through which the image enters
    with pytest.raises(UnsupportedFamilyError, match="cross-attention") as info:
        adapter_for(config)
    assert "gaze heads are self-attention heads" in str(info.value)
    assert "mllama" not in supported_model_types()


def test_load_model_refuses_an_mllama_checkpoint_before_reading_weights(tmp_path):
    _tiny_mllama_config().save_pretrained(tmp_path)  # config only: the refusal comes first
    with pytest.raises(UnsupportedFamilyError, match=r"Llama 3\.2 Vision"):
        load_model(tmp_path, device="cpu", dtype="fp32")
