"""Measured at real size on the CPU: a random-initialised Qwen3-VL (default 2B geometry) through
discovery (a couple of demo strips), generation with and without capture into a session, steering
with 100 heads (captured, into the same session) and scrubbing that session in the real main window.

Prints one JSON record (seconds per token, peak RSS, session bytes per step, scrub p95). Nothing is
downloaded: the weights are random (gaze_explorer.inference.random_init). Usage:

    nice -n 10 python docs/scripts/real_size_cpu.py --geometry Qwen3-VL-2B-Instruct --tokens 24 \
        --strips 2 --json real-size-2b.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _generate(
    loaded, strip, regions, prompt, n_tokens, capture, plan=None, target=None, writer=None, name="run"
):
    from gaze_explorer.core.events import TokenEvent
    from gaze_explorer.core.options import CaptureSpec, GenerationOptions
    from gaze_explorer.core.run_spec import RunSpec
    from gaze_explorer.inference.generation import generate_stream
    from gaze_explorer.storage.record import record

    options = GenerationOptions(max_new_tokens=n_tokens, ignore_eos=True)
    spec = CaptureSpec() if capture else CaptureSpec(decode=False, prefill="none")
    t0, c0 = time.perf_counter(), time.process_time()
    stream = generate_stream(
        loaded, strip.image, prompt, regions=regions, plan=plan, target=target, options=options, capture=spec
    )
    if writer is None:
        n = sum(1 for ev in stream if isinstance(ev, TokenEvent))
    else:
        run_spec = RunSpec(
            name=name,
            prompt=prompt,
            n_layers=loaded.n_layers,
            n_heads=loaded.n_heads,
            max_new_tokens=n_tokens,
            options=options,
            plan=plan,
        )
        record(stream, writer, run_spec)
        n = n_tokens
    _generate.cpu_s = time.process_time() - c0  # CPU seconds of the last call (all threads)
    return time.perf_counter() - t0, n


def _scrub(path: Path, steps: int, n_steps: int) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtWidgets

    from gaze_explorer.bench.scrub import _settle
    from gaze_explorer.qt.main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["real-size"])
    window = MainWindow()
    window.show()
    lat = []
    try:
        if not window.open_session(str(path)):
            raise RuntimeError(f"could not open {path}: {window.messages}")
        views = [window.grid_view, window.overlay_view, window.timeline_view]
        _settle(app, views)
        rng = random.Random(0)
        for _ in range(steps):
            t0 = time.perf_counter()
            window.state.step.set_step(rng.randrange(n_steps))
            _settle(app, views)
            for v in views:
                v.repaint()
            lat.append(1000.0 * (time.perf_counter() - t0))
    finally:
        window.close()
        app.processEvents()
    return {
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "max_ms": float(max(lat)),
        "steps": steps,
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--geometry", default="Qwen3-VL-2B-Instruct")
    p.add_argument("--tokens", type=int, default=24)
    p.add_argument("--strips", type=int, default=2)
    p.add_argument("--heads", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="auto", help="auto (float32 on the CPU) or bfloat16")
    p.add_argument("--scrub-steps", type=int, default=100)
    p.add_argument("--keep", default=None, help="copy the session here")
    p.add_argument("--json", default=None)
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from gaze_explorer.bench.harness import machine
    from gaze_explorer.bench.models import demo_strip, demo_strips, load_bench_model
    from gaze_explorer.core.heads import HeadSet, top_k_heads
    from gaze_explorer.core.regions import panel_regions
    from gaze_explorer.core.steering import SteeringPlan
    from gaze_explorer.inference.discovery import DiscoveryResult, discover
    from gaze_explorer.storage import SessionReader, SessionWriter

    rec: dict = {
        "geometry": args.geometry,
        "tokens": args.tokens,
        "machine": machine(),
        "load_avg_start": os.getloadavg(),
    }
    t0 = time.perf_counter()
    loaded, _label = load_bench_model("demo", args.geometry, "cpu", dtype=args.dtype)
    rec["load_s"] = time.perf_counter() - t0
    rec["rss_after_load_mib"] = _rss_mib()
    rec["layers_x_heads"] = [loaded.n_layers, loaded.n_heads]
    rec["dtype"] = str(loaded.model.dtype)

    result = None
    if args.strips:  # --strips 0: no discovery; steer 100 seeded random heads instead
        strips = demo_strips(args.strips)
        t0, c0 = time.perf_counter(), time.process_time()
        for item in discover(loaded, strips):
            if isinstance(item, DiscoveryResult):
                result = item
        rec["discovery"] = {
            "strips": len(strips),
            "seconds": time.perf_counter() - t0,
            "seconds_per_strip": (time.perf_counter() - t0) / len(strips),
            "cpu_s": time.process_time() - c0,
        }
        print(json.dumps(rec["discovery"]), flush=True)

    strip = demo_strip()
    prompt = "Describe each panel of this comic strip in order, one short sentence each."
    prepared = loaded.prepare(strip.image, prompt)
    grid = prepared.grids[0]
    regions = panel_regions(grid, len(strip.panel_widths), strip.panel_widths)
    rec["prompt_len"] = int(prepared.prompt_len)
    rec["image_tokens"] = int(grid.n_tokens)

    el, n = _generate(loaded, strip, regions, prompt, args.tokens, capture=False)
    rec["no_capture"] = {"seconds": el, "tokens": n, "s_per_token": el / n, "cpu_s": _generate.cpu_s}
    print(json.dumps(rec["no_capture"]), flush=True)

    tmp = tempfile.TemporaryDirectory(prefix="real-size-")
    path = Path(tmp.name) / "real.gaze.h5"
    writer = SessionWriter(
        path, meta=loaded.describe(), image=np.asarray(strip.image.convert("RGB")), grid=grid, regions=regions
    )
    try:
        el, n = _generate(
            loaded, strip, regions, prompt, args.tokens, capture=True, writer=writer, name="baseline"
        )
        rec["capture"] = {"seconds": el, "tokens": n, "s_per_token": el / n, "cpu_s": _generate.cpu_s}
        print(json.dumps(rec["capture"]), flush=True)
        el, n = _generate(loaded, strip, regions, prompt, args.tokens, capture=False)  # again, alternating
        rec["no_capture_again"] = {
            "seconds": el,
            "tokens": n,
            "s_per_token": el / n,
            "cpu_s": _generate.cpu_s,
        }
        print(json.dumps(rec["no_capture_again"]), flush=True)
        if result is not None:
            heads = top_k_heads(np.asarray(result.scores), args.heads)
        else:
            rng = np.random.default_rng(0)
            picked = rng.choice(loaded.n_layers * loaded.n_heads, size=args.heads, replace=False)
            heads = HeadSet("random", tuple(divmod(int(i), loaded.n_heads) for i in picked))
        plan = SteeringPlan(heads)
        el, n = _generate(
            loaded,
            strip,
            regions,
            prompt,
            args.tokens,
            capture=True,
            plan=plan,
            target=0,
            writer=writer,
            name="steered-100",
        )
        rec["steering_capture"] = {
            "seconds": el,
            "tokens": n,
            "s_per_token": el / n,
            "heads": len(heads.heads),
            "cpu_s": _generate.cpu_s,
        }
        print(json.dumps(rec["steering_capture"]), flush=True)
    finally:
        writer.close()
    rec["peak_rss_mib"] = _rss_mib()
    print(json.dumps({"peak_rss_mib": rec["peak_rss_mib"]}), flush=True)
    size = path.stat().st_size
    with SessionReader(path) as reader:
        runs = reader.runs()
        n_steps = sum(len(reader.tokens(r.run_id if hasattr(r, "run_id") else r)) for r in runs)
    rec["session"] = {
        "bytes": size,
        "steps": n_steps,
        "bytes_per_step": size / max(1, n_steps),
        "raw_float16_bytes_per_step_at_last_key": 2
        * loaded.n_layers
        * loaded.n_heads
        * (rec["prompt_len"] + args.tokens),
    }
    print(json.dumps(rec["session"]), flush=True)
    if args.keep:
        import shutil

        shutil.copy(path, args.keep)
    del loaded
    rec["scrub"] = _scrub(path, args.scrub_steps, args.tokens)
    rec["load_avg_end"] = os.getloadavg()
    text = json.dumps(rec, indent=1, default=str)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
