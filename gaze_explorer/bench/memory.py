"""``memory`` benchmark: peak RSS growth from 50 to 400 generated tokens, with attention capture.

Ours: ``generate_stream`` with full decode capture drained into a ``SessionWriter`` (rows are
streamed to disk). Compared: eager attention with ``model.generate(..., output_attentions=True,
return_dict_in_generate=True)``, every step's attentions kept in memory (the usual way).
Each measurement runs in a fresh child process (peak RSS = ``VmHWM``), so allocations of one run
never hide another's, and several children may run at once (``jobs``) without changing their
peaks. Growth = (peak_long - peak_short) / peak_short.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gaze_explorer.bench.harness import Result, summary

TARGET_PCT = 5.0
PROMPT = "Describe each panel of this comic strip in order, one short sentence each."


def peak_rss_bytes() -> int:
    """This process's peak resident set size (VmHWM; ru_maxrss where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _child(variant: str, tokens: int, model: str, random_init: str | None, device: str, threads: int) -> dict:
    """Run one generation of ``tokens`` tokens in this (fresh) process; report its peak RSS."""
    import numpy as np
    import torch

    from gaze_explorer.bench.models import demo_strip, load_bench_model
    from gaze_explorer.core.regions import panel_regions

    torch.set_num_threads(threads)
    loaded, _ = load_bench_model(model, random_init, device)
    strip = demo_strip()
    prepared = loaded.prepare(strip.image, PROMPT)
    produced = 0
    if variant == "ours":
        from gaze_explorer.core.options import CaptureSpec, GenerationOptions
        from gaze_explorer.core.run_spec import RunSpec
        from gaze_explorer.inference.generation import generate_stream
        from gaze_explorer.storage import SessionReader, SessionWriter
        from gaze_explorer.storage.record import record

        grid = prepared.grids[0]
        regions = panel_regions(grid, len(strip.panel_widths), strip.panel_widths)
        options = GenerationOptions(max_new_tokens=tokens, ignore_eos=True)  # as long as stock min_new_tokens
        with tempfile.TemporaryDirectory(prefix="gaze-bench-memory-") as tmp:
            path = Path(tmp) / "memory.gaze.h5"
            with SessionWriter(
                path,
                meta=loaded.describe(),
                image=np.asarray(strip.image.convert("RGB")),
                grid=grid,
                regions=regions,
            ) as writer:
                stream = generate_stream(
                    loaded, strip.image, PROMPT, regions=regions, options=options, capture=CaptureSpec()
                )
                spec = RunSpec(
                    name="bench",
                    prompt=PROMPT,
                    n_layers=loaded.n_layers,
                    n_heads=loaded.n_heads,
                    max_new_tokens=tokens,
                    options=options,
                )
                run_id = record(stream, writer, spec)
            peak = peak_rss_bytes()
            with SessionReader(path) as reader:
                produced = len(reader.tokens(run_id))
    else:
        loaded.model.set_attn_implementation("eager")
        with torch.inference_mode():
            out = loaded.model.generate(
                **prepared.tensors,
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                do_sample=False,
                return_dict_in_generate=True,
                output_attentions=True,
            )
        peak = peak_rss_bytes()
        produced = int(out.sequences.shape[-1] - prepared.tensors["input_ids"].shape[-1])
        del out
    return {"variant": variant, "tokens": tokens, "produced": produced, "peak_rss": peak}


def _measure(
    variant: str, tokens: int, model: str, random_init: str | None, device: str, threads: int
) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "gaze_explorer.bench.memory",
        variant,
        str(tokens),
        model,
        random_init or "",
        device,
        str(threads),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child {variant}/{tokens} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(
    short: int = 50,
    long: int = 400,
    repeats: int = 3,
    model: str = "demo",
    random_init: str | None = None,
    device: str = "cpu",
    threads: int = 2,
    jobs: int = 1,
) -> Result:
    """Growth of peak RSS (percent) from ``short`` to ``long`` tokens, ours vs eager output_attentions.

    Each child uses ``threads`` torch threads; ``jobs`` children run at once (default one at a
    time: the children of a large model may not fit in memory together)."""
    growth: dict[str, list[float]] = {"ours": [], "compared": []}
    peaks: dict[str, list[dict]] = {"ours": [], "compared": []}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for i in range(max(1, repeats)):
            order = ("ours", "compared") if i % 2 == 0 else ("compared", "ours")
            started = {
                (variant, size): pool.submit(_measure, variant, n, model, random_init, device, threads)
                for variant in order
                for size, n in (("short", short), ("long", long))
            }
            for variant in order:
                a, b = started[variant, "short"].result(), started[variant, "long"].result()
                growth[variant].append(100.0 * (b["peak_rss"] - a["peak_rss"]) / a["peak_rss"])
                peaks[variant].append({"short": a, "long": b})
    ours_s, comp_s = summary(growth["ours"]), summary(growth["compared"])
    label = f"random-init {random_init}" if random_init else model
    produced = peaks["ours"][0]["long"]["produced"]
    # Ratio of the growth factors (compared / ours): positive even when our growth is ~0 or < 0.
    ratio = (1.0 + comp_s["median"] / 100.0) / (1.0 + ours_s["median"] / 100.0)
    return Result(
        name="memory",
        ours=ours_s,
        compared=comp_s,
        unit="% peak RSS growth",
        ratio=ratio,
        target=f"ours <= {TARGET_PCT}% growth",
        met=ours_s["median"] <= TARGET_PCT,
        model=label,
        repeats=len(growth["ours"]),
        extra={
            "short": short,
            "long": long,
            "ours_long_tokens_produced": produced,
            "peaks_mib": {
                v: [{k: round(p[k]["peak_rss"] / 2**20, 1) for k in ("short", "long")} for p in ps]
                for v, ps in peaks.items()
            },
        },
    )


if __name__ == "__main__":
    variant, tokens, model, random_init, device, threads = sys.argv[1:7]
    print(json.dumps(_child(variant, int(tokens), model, random_init or None, device, int(threads))))
