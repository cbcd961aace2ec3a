"""Model selection shared by the model benchmarks: the demo model, a local one, or a random-init one."""

from __future__ import annotations

import tempfile
from pathlib import Path

_TMP: list[tempfile.TemporaryDirectory] = []  # keep random-init checkpoints alive for the run


def load_bench_model(
    model: str = "demo", random_init: str | None = None, device: str = "cpu", dtype: str = "auto"
):
    """Load the model a benchmark runs on; ``random_init`` names a Qwen3-VL geometry to build."""
    from gaze_explorer.inference.loading import load_model

    spec: str | Path = model
    label = model
    if random_init:
        from gaze_explorer.inference.random_init import build_random_qwen3_vl

        tmp = tempfile.TemporaryDirectory(prefix="gaze-bench-model-")
        _TMP.append(tmp)
        on_gpu = str(device).startswith("cuda")
        # On a GPU build the weights there in bfloat16 (an 8B model in float32 on the CPU needs ~32 GB);
        # on the CPU in float32 unless bfloat16 is asked for (a 4B in float32 does not fit in 16 GB).
        bf16 = on_gpu or str(dtype) in ("bfloat16", "bf16", "torch.bfloat16")
        spec = build_random_qwen3_vl(
            Path(tmp.name) / random_init,
            geometry=random_init,
            dtype="bfloat16" if bf16 else "float32",
            device=device if on_gpu else "cpu",
        )
        if on_gpu and dtype == "auto":
            dtype = "bfloat16"
        label = f"random-init {random_init}"
    loaded = load_model(spec, device=device, dtype=dtype)
    return loaded, label


def demo_strip(n_panels: int | None = None):
    """The first held-out demo strip (the image all model benchmarks use)."""
    from gaze_explorer.core.paths import demo_comics_dir
    from gaze_explorer.core.strips import iter_strip_folders

    root = demo_comics_dir()
    for strip in iter_strip_folders(root):
        if n_panels is None or len(strip.panel_widths) == n_panels:
            return strip
    raise FileNotFoundError(f"no demo strip with {n_panels} panels under {root}")


def demo_strips(count: int, n_panels: int | None = None) -> list:
    """Up to ``count`` demo strips of the same panel count."""
    from gaze_explorer.core.paths import demo_comics_dir
    from gaze_explorer.core.strips import iter_strip_folders

    out = []
    for strip in iter_strip_folders(demo_comics_dir()):
        if n_panels is None:
            n_panels = len(strip.panel_widths)
        if len(strip.panel_widths) == n_panels:
            out.append(strip)
        if len(out) >= count:
            break
    return out
