"""Model loading: a Hugging Face id (local cache only), a local directory, or ``demo``.

Weights load from safetensors only (never pickle). Every failure a user can cause (missing path,
no config, unknown architecture, ``.bin``-only or corrupted weights) becomes a ``ModelLoadError``
or ``UnsupportedFamilyError`` with a message that says what to do. The model is put in eval mode
with gradients off, and its language model starts on its stock attention (SDPA; eager for a
soft-capped LM such as PaliGemma 2's); ``attention.attention_control``
switches it to the gaze-explorer function only while capturing or steering.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from gaze_explorer.core.errors import ModelLoadError, UnsupportedFamilyError
from gaze_explorer.core.paths import demo_model_dir
from gaze_explorer.inference.adapters import adapter_for
from gaze_explorer.inference.adapters.base import FamilyAdapter, PreparedInputs
from gaze_explorer.inference.placement import ModelFitWarning, execution_device, fit_warning

DEMO_DIR = demo_model_dir()
DTYPES = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
}


@dataclass
class LoadedModel:
    """A loaded VLM with its family adapter and where/how it runs."""

    model: Any
    adapter: FamilyAdapter
    family: str
    model_id: str
    revision: str | None
    device: torch.device
    dtype: torch.dtype
    path: Path | None = None

    @property
    def n_layers(self) -> int:
        return self.adapter.n_layers

    @property
    def n_heads(self) -> int:
        return self.adapter.n_heads

    @property
    def n_kv_heads(self) -> int:
        return self.adapter.n_kv_heads

    @property
    def head_dim(self) -> int:
        return self.adapter.head_dim

    def prepare(self, image: Image.Image, prompt: str | list[str]) -> PreparedInputs:
        """Inputs for ``image`` and ``prompt`` (or a left-padded batch of prompts), on the model's device."""
        return self.adapter.build_inputs(image, prompt).to(self.device)

    def describe(self) -> dict:
        """Plain attributes for session files and reports."""
        return {
            "model_id": self.model_id,
            "revision": self.revision or "",
            "family": self.family,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "n_kv_heads": self.n_kv_heads,
            "head_dim": self.head_dim,
            # the softmax-attention layers' true indices: the others (Qwen3.5's linear attention)
            # have no attention weights, and a viewer without the model marks them from this
            "attention_layers": [int(layer) for layer in self.adapter.attention_layers],
            "input_policy": str(getattr(self.adapter, "input_policy", "native")),
        }


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; checks that an explicit device exists."""
    text = str(device).strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(text)
    except RuntimeError as exc:
        raise ModelLoadError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelLoadError(f"device {device!r} asked for, but no CUDA GPU is available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ModelLoadError(f"device {device!r} does not exist ({torch.cuda.device_count()} GPU(s))")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelLoadError("device 'mps' asked for, but Apple MPS is not available")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ModelLoadError(f"unsupported device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    return dev


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``auto`` -> bf16 on a GPU that supports it (the paper's setting), fp32 elsewhere."""
    if isinstance(dtype, torch.dtype):
        return dtype
    text = str(dtype).strip().lower()
    if text == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if text not in DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use auto, bf16, fp16 or fp32")
    return DTYPES[text]


def resolve_spec(spec: str | os.PathLike) -> tuple[Path, str, str | None]:
    """(directory, model id, revision) for ``demo``, a local directory, or a cached Hub id."""
    text = str(spec).strip()
    if not text:
        raise ModelLoadError("no model given; pass 'demo', a checkpoint directory, or a Hugging Face id")
    if text == "demo":
        if not (DEMO_DIR / "config.json").is_file():
            raise ModelLoadError(
                f"the bundled demo model is missing from {DEMO_DIR}; reinstall gaze-explorer, or train one "
                "with `python -m gaze_explorer.demo.training.train --out DIR` and pass DIR"
            )
        return DEMO_DIR, "demo", None
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"{path} is a file; pass the checkpoint's directory")
        return path.resolve(), str(path), None
    looks_like_id = text.count("/") == 1 and not text.startswith((".", "/", "~"))
    if not looks_like_id:
        raise ModelLoadError(f"model path {path} does not exist")
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(text, local_files_only=True)
    except Exception as exc:  # the hub raises several types for "not cached"; all mean the same here
        raise ModelLoadError(
            f"{text!r} is neither a local directory nor in the Hugging Face cache; "
            f"download it first (e.g. `huggingface-cli download {text}`), then retry offline"
        ) from exc
    local_path = Path(local)
    return local_path, text, local_path.name


def _check_weights(path: Path) -> None:
    """Refuse checkpoints without safetensors weights (pickle files are never loaded)."""
    safetensors = list(path.glob("*.safetensors"))
    if safetensors:
        return
    pickled = [p.name for p in path.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl")]
    if pickled:
        raise ModelLoadError(
            f"{path} only has pickle weights ({', '.join(sorted(pickled)[:3])}); gaze-explorer loads "
            "safetensors only. Convert the checkpoint to safetensors first"
        )
    raise ModelLoadError(f"{path} has no model weights (*.safetensors)")


def load_model(
    spec: str | os.PathLike,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    device_map: str | dict | None = None,
    trust_remote_code: bool = False,
    num_threads: int | None = None,
    input_policy: str | None = None,
) -> LoadedModel:
    """Load a VLM for gaze-explorer (see the module docstring). ``device_map="auto"`` spreads a
    checkpoint larger than one GPU over the available devices (accelerate). ``input_policy``: how
    images are fitted to the processor (``native``, ``squash``, ``pad``; None: the family's default)."""
    from transformers import AutoConfig, AutoModelForImageTextToText

    if num_threads is not None:
        torch.set_num_threads(max(1, int(num_threads)))
    path, model_id, revision = resolve_spec(spec)
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path} has no config.json; is it a Hugging Face checkpoint directory?")
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
    except ValueError as exc:
        if "model type" in str(exc) or "recognize" in str(exc):
            raise UnsupportedFamilyError(
                f"{path}: transformers does not know this architecture ({exc})"
            ) from exc
        raise ModelLoadError(f"cannot read {path / 'config.json'}: {exc}") from exc
    except (OSError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"cannot read {path / 'config.json'}: {exc}") from exc
    adapter_cls = adapter_for(config)
    _check_weights(path)
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    kwargs: dict[str, Any] = {
        "config": config,
        "dtype": torch_dtype,
        "use_safetensors": True,
        "local_files_only": True,
        "trust_remote_code": trust_remote_code,
        "attn_implementation": adapter_cls.stock_attention(config),
        "output_loading_info": True,
    }
    if device_map is not None:
        kwargs["device_map"] = device_map
        # where accelerate puts the layers that fit nowhere else ("disk" in a map; "auto" may choose it)
        kwargs["offload_folder"] = _offload_folder()
    else:
        warning = fit_warning(config, torch_dtype, dev)
        if warning is not None:
            warnings.warn(warning, ModelFitWarning, stacklevel=2)
    try:
        model, info = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"cannot load the weights in {path} (corrupted or incomplete?): {exc}") from exc
    except Exception as exc:  # safetensors raises its own SafetensorError for damaged files
        if type(exc).__name__ == "SafetensorError":
            raise ModelLoadError(f"the safetensors weights in {path} are damaged: {exc}") from exc
        raise
    missing = list(info.get("missing_keys") or [])
    if missing:
        raise ModelLoadError(
            f"the weights in {path} lack {len(missing)} tensor(s) (e.g. {missing[0]}); the checkpoint is incomplete"
        )
    if device_map is None:
        model.to(dev)
    else:
        dev = execution_device(model)  # not a disk-offloaded layer's meta parameters
    model.eval()
    model.requires_grad_(False)
    adapter = adapter_cls.from_pretrained(path, config=config)
    if input_policy is not None:
        adapter.set_input_policy(input_policy)
    return LoadedModel(model, adapter, adapter_cls.family, model_id, revision, dev, torch_dtype, path)


_OFFLOAD_DIRS: list = []  # temporary folders of disk-offloaded weights, kept for the process


def _offload_folder() -> str:
    """A temporary folder for the weights a ``"disk"`` entry of a device map offloads."""
    import tempfile

    folder = tempfile.TemporaryDirectory(prefix="gaze-explorer-offload-")
    _OFFLOAD_DIRS.append(folder)
    return folder.name


def loaded_from_parts(model: Any, adapter: FamilyAdapter, model_id: str = "in-memory") -> LoadedModel:
    """Wrap an in-memory model and adapter (tests with tiny configs) as a LoadedModel."""
    model.eval()
    model.requires_grad_(False)
    param = next(model.parameters())
    return LoadedModel(model, adapter, adapter.family, model_id, None, param.device, param.dtype)
