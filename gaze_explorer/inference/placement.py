"""Where a model runs: the execution device of a device-mapped model, and whether a checkpoint fits.

A model loaded with an accelerate ``device_map`` may have layers on several GPUs, on the CPU, or
offloaded to disk (their parameters then sit on the ``meta`` device and accelerate's hooks bring
them in for each forward). The inputs go to the device of the first placed module that really
holds weights; the attention function builds each layer's bias and captured rows on the device of
that layer's query (``inference.attention``).

Before loading, :func:`fit_warning` compares the weights' size (parameter count x dtype size,
counted on a model built on the ``meta`` device from the config alone, so nothing is allocated)
with the free memory of the target device, and suggests ``--device-map auto`` when they do not fit.
"""

from __future__ import annotations

import os
from typing import Any

import torch

OFFLOADED = ("disk", "meta")


class ModelFitWarning(UserWarning):
    """The checkpoint's weights will likely not fit in the chosen device's free memory."""


# weights are not all a model needs (activations, KV cache, capture buffers): warn above this share
FIT_SHARE = 0.9


def execution_device(model: Any) -> torch.device:
    """The device inputs go to: for a device-mapped model the first placed module that holds its
    weights (not offloaded to disk), else the device of the first real parameter; CPU by default."""
    placed = getattr(model, "hf_device_map", None)
    if placed:
        for where in placed.values():
            if str(where) not in OFFLOADED:
                return torch.device(where if not isinstance(where, int) else f"cuda:{where}")
        return torch.device("cpu")  # everything offloaded: accelerate runs it on the CPU
    for p in model.parameters():
        if p.device.type != "meta":
            return p.device
    return torch.device("cpu")


def estimate_model_bytes(config: Any, dtype: torch.dtype) -> int:
    """Bytes of the weights of the model ``config`` describes, in ``dtype``, without loading them.

    The model is built on the ``meta`` device (shapes only, no memory); tied weights count once."""
    from transformers import AutoModelForImageTextToText

    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    n_params = sum(p.numel() for p in model.parameters())
    return int(n_params) * torch.empty((), dtype=dtype).element_size()


def free_memory_bytes(device: torch.device) -> int:
    """Free memory of ``device``: a CUDA device's free memory, else the RAM available now."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def fit_warning(
    config: Any, dtype: torch.dtype, device: torch.device, free_bytes: int | None = None
) -> str | None:
    """A message when the weights of ``config`` in ``dtype`` will not fit in ``device``'s free
    memory (``free_bytes`` overrides the measurement), else None."""
    try:
        need = estimate_model_bytes(config, dtype)
    except Exception:  # a remote-code or unusual architecture that cannot be built from its config
        return None
    free = free_memory_bytes(device) if free_bytes is None else int(free_bytes)
    if need <= FIT_SHARE * free:
        return None
    where = "GPU memory" if device.type == "cuda" else "RAM"
    return (
        f"this checkpoint's weights need about {need / 2**30:.2f} GiB in {str(dtype).replace('torch.', '')} "
        f"but only {free / 2**30:.2f} GiB of {where} is free on {device}; loading will likely fail or swap. "
        "Use --device-map auto to spread it over the GPUs (and the CPU / disk), or a smaller --dtype"
    )
