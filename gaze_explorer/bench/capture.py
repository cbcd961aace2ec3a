"""``capture`` benchmark: generation with full capture into a session file vs stock SDPA generation.

Ours: ``generate_stream`` (the registered attention function captures every decode row of every
layer x head) drained by ``record`` into a ``SessionWriter`` (writer thread, HDF5 on disk).
Compared: ``model.generate`` with transformers' stock SDPA attention and no capture. Both produce
the same greedy tokens; the figure is milliseconds per generated token (ours / compared).
A second alternating series times our generation with capture but without the writer (events
drained and dropped) against stock again, to split the overhead between inference and storage.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from gaze_explorer.bench.harness import Result, alternate, summary
from gaze_explorer.bench.models import demo_strip, load_bench_model

TARGET = 1.3
PROMPT = "Describe each panel of this comic strip in order, one short sentence each."


def _ours(loaded, strip, regions, n_tokens: int, directory: Path, index: int) -> tuple[float, int]:
    from gaze_explorer.core.options import CaptureSpec, GenerationOptions
    from gaze_explorer.core.run_spec import RunSpec
    from gaze_explorer.inference.generation import generate_stream
    from gaze_explorer.storage import SessionWriter
    from gaze_explorer.storage.record import record

    options = GenerationOptions(max_new_tokens=n_tokens, ignore_eos=True)  # as long as stock min_new_tokens
    grid = loaded.prepare(strip.image, PROMPT).grids[0]
    t0 = time.perf_counter()
    writer = SessionWriter(
        directory / f"capture-{index}.gaze.h5",
        meta=loaded.describe(),
        image=np.asarray(strip.image.convert("RGB")),
        grid=grid,
        regions=regions,
    )
    try:
        stream = generate_stream(
            loaded, strip.image, PROMPT, regions=regions, options=options, capture=CaptureSpec()
        )
        spec = RunSpec(
            name="bench",
            prompt=PROMPT,
            n_layers=loaded.n_layers,
            n_heads=loaded.n_heads,
            max_new_tokens=n_tokens,
            options=options,
        )
        run_id = record(stream, writer, spec)
    finally:
        writer.close()  # includes the writer thread draining its queue: part of the cost
    elapsed = time.perf_counter() - t0
    from gaze_explorer.storage import SessionReader

    with SessionReader(writer.path) as reader:
        n = len(reader.tokens(run_id)) if run_id else 0
    return elapsed, n


def _capture_only(loaded, strip, regions, n_tokens: int) -> float:
    """Our generation with full capture, drained without a session writer (the split of the cost)."""
    from gaze_explorer.core.options import CaptureSpec, GenerationOptions
    from gaze_explorer.inference.generation import generate_stream

    options = GenerationOptions(max_new_tokens=n_tokens, ignore_eos=True)  # as long as stock min_new_tokens
    t0 = time.perf_counter()
    for _ in generate_stream(
        loaded, strip.image, PROMPT, regions=regions, options=options, capture=CaptureSpec()
    ):
        pass
    return time.perf_counter() - t0


def _compared(loaded, strip, n_tokens: int) -> float:
    import torch

    model = loaded.model
    prepared = loaded.prepare(strip.image, PROMPT)
    kwargs = dict(prepared.tensors)
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**kwargs, max_new_tokens=n_tokens, min_new_tokens=n_tokens, do_sample=False)
    elapsed = time.perf_counter() - t0
    produced = int(out.shape[-1] - kwargs["input_ids"].shape[-1])
    if produced != n_tokens:
        raise RuntimeError(f"the stock generation produced {produced} tokens, expected {n_tokens}")
    return elapsed


def run(
    tokens: int = 200,
    repeats: int = 5,
    model: str = "demo",
    random_init: str | None = None,
    device: str = "cpu",
    warmup: bool = True,
) -> Result:
    """Time both methods alternately; per-token milliseconds (the same greedy token count)."""
    from gaze_explorer.core.regions import panel_regions

    loaded, label = load_bench_model(model, random_init, device)
    strip = demo_strip()
    grid = loaded.prepare(strip.image, PROMPT).grids[0]
    regions = panel_regions(grid, len(strip.panel_widths), strip.panel_widths)
    with tempfile.TemporaryDirectory(prefix="gaze-bench-capture-") as tmp:
        directory = Path(tmp)
        counter = iter(range(10**6))
        # The greedy run may stop at EOS before ``tokens``: both methods then use that count.
        _, n = _ours(loaded, strip, regions, tokens, directory, next(counter))
        if n < 1:
            raise RuntimeError("the captured generation produced no tokens")
        if warmup:
            _compared(loaded, strip, n)

        def ours() -> float:
            elapsed, got = _ours(loaded, strip, regions, tokens, directory, next(counter))
            return 1000.0 * elapsed / got

        def compared() -> float:
            return 1000.0 * _compared(loaded, strip, n) / n

        a, b = alternate(ours, compared, repeats)
        size = sum(p.stat().st_size for p in directory.glob("*.h5")) / max(1, len(a) + 1)
        # the split: the same generation and capture without the writer, against stock again
        no_writer, b2 = alternate(
            lambda: 1000.0 * _capture_only(loaded, strip, regions, n) / n, compared, repeats
        )
    ours_s, comp_s = summary(a), summary(b)
    ratio = ours_s["median"] / comp_s["median"]
    split_s, split_comp = summary(no_writer), summary(b2)
    return Result(
        name="capture",
        ours=ours_s,
        compared=comp_s,
        unit="ms/token",
        ratio=ratio,
        target=f"<= {TARGET}x",
        met=ratio <= TARGET,
        model=label,
        repeats=len(a),
        extra={
            "tokens": n,
            "requested_tokens": tokens,
            "session_bytes_per_run": int(size),
            "capture_without_writer": split_s,
            "compared_again": split_comp,
            "ratio_without_writer": split_s["median"] / split_comp["median"],
            "layers_x_heads": [loaded.n_layers, loaded.n_heads],
            "device": str(loaded.device),
        },
    )
