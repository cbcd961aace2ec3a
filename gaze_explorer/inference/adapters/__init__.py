"""Per-family adapters: how to build inputs, where the image tokens are, and their pixel boxes.

Adapters live one family per module (``qwen3_vl.py``, ``qwen2_vl.py``, ...). Each module lists its
classes in a module-level ``ADAPTERS`` tuple, and may name model types it refuses in a ``REFUSED``
mapping (model type -> why: e.g. Llama 3.2 Vision, whose image is reached only through
cross-attention). Modules are imported lazily, on the first lookup; a module that does not exist
(yet) is skipped, so families can be added independently.
"""

from __future__ import annotations

import importlib
from typing import Any

from gaze_explorer.core.errors import UnsupportedFamilyError

# Looked up in this order; the first adapter whose ``matches(config)`` is true wins.
# "mistral3" comes before "llava": it also claims llava checkpoints with a Pixtral vision tower.
ADAPTER_MODULES = (
    "qwen3_vl",
    "qwen2_vl",
    "mistral3",
    "llava",
    "gemma3",
    "idefics3",
    "internvl",
    "glm4v",
    "ovis2",
    "qwen3_5",
    "qwen3_vl_moe",
    "gemma4",
    "paligemma",
    "aya_vision",
    "mllama",
)

_registry: list[type] | None = None
_refused: dict[str, str] = {}


def registered_adapters() -> list[type]:
    """Every adapter class from the modules in ``ADAPTER_MODULES`` that exist."""
    global _registry
    if _registry is None:
        found: list[type] = []
        for name in ADAPTER_MODULES:
            full = f"{__name__}.{name}"
            try:
                module = importlib.import_module(full)
            except ModuleNotFoundError as exc:
                if exc.name == full:  # that family's module is not written: skip it
                    continue
                raise
            found.extend(getattr(module, "ADAPTERS", ()))
            _refused.update(getattr(module, "REFUSED", {}))
        _registry = found
    return list(_registry)


def supported_model_types() -> list[str]:
    """The ``config.model_type`` values some adapter handles."""
    return sorted({t for cls in registered_adapters() for t in cls.model_types})


def adapter_for(config: Any) -> type:
    """The adapter class (a ``FamilyAdapter`` subclass) for a model config.

    Raises UnsupportedFamilyError naming the model type and the supported ones, or saying why a
    known family is refused.
    """
    adapters = registered_adapters()
    refused = _refused.get(getattr(config, "model_type", None) or "")
    if refused is not None:
        raise UnsupportedFamilyError(refused)
    for cls in adapters:
        if cls.matches(config):
            return cls
    model_type = getattr(config, "model_type", None) or type(config).__name__
    archs = getattr(config, "architectures", None) or []
    shown = f"{model_type} ({', '.join(archs)})" if archs else str(model_type)
    raise UnsupportedFamilyError(
        f"no adapter for model type {shown}; supported: {', '.join(supported_model_types()) or 'none'}"
    )
