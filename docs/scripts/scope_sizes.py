"""Bytes per step of each capture scope, measured by re-recording a captured session's runs.

Each run of SESSION is written again, step for step, into three new sessions: ``full``,
``image-keys`` and ``heads`` (the first ``--heads`` heads of the session's gaze ranking, else of
layer 0 upwards), through the real ``SessionWriter`` (lz4, one chunk per step). Prints one JSON
record: file bytes, bytes per step and the step rows' share of them, per scope. Usage:

    python docs/scripts/scope_sizes.py SESSION.h5 [--heads 100]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import h5py


def rerecord(src: Path, dst: Path, scope) -> dict:
    from gaze_explorer.core.events import FinishedEvent, PrefillEvent, TokenEvent
    from gaze_explorer.core.options import GenerationOptions
    from gaze_explorer.core.run_spec import RunSpec
    from gaze_explorer.storage import SessionReader, SessionWriter
    from gaze_explorer.storage.record import record

    with SessionReader(src) as reader:
        meta = dict(reader.meta.get("model", {}))
        runs = [reader.run_info(r) for r in reader.run_ids()]
        steps = 0
        with SessionWriter(dst, meta=meta, image=reader.image, grid=reader.grid, regions=reader.regions) as w:
            for info in runs:
                ids, strings = reader.prompt_tokens(info.run_id)
                prefill = reader.prefill_rows(info.run_id)
                tokens = reader.tokens(info.run_id)
                token_ids = reader.token_ids(info.run_id)

                def events(
                    info=info, ids=ids, strings=strings, prefill=prefill, tokens=tokens, token_ids=token_ids
                ):
                    yield PrefillEvent(info.prompt_len, reader.grid, list(ids), strings, prefill)
                    for s in range(info.n_steps):
                        yield TokenEvent(
                            s, int(token_ids[s]), tokens[s], None, reader.step_rows(info.run_id, s)
                        )
                    yield FinishedEvent("finished", [], "")

                spec = RunSpec(info.name, info.prompt, info.n_layers, info.n_heads,
                               options=GenerationOptions(max_new_tokens=info.max_keys - info.prompt_len),
                               capture_scope=scope)  # fmt: skip
                record(events(), w, spec)
                steps += info.n_steps
    with h5py.File(dst, "r") as f:
        decode = sum(f["runs"][r]["attention"]["decode"].id.get_storage_size() for r in f["runs"])
    size = dst.stat().st_size
    return {
        "bytes": size,
        "steps": steps,
        "bytes_per_step": size / steps,
        "decode_bytes_per_step": decode / steps,
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("session")
    p.add_argument("--heads", type=int, default=100)
    args = p.parse_args()
    from gaze_explorer.core.capture_scope import CaptureScope, image_key_end
    from gaze_explorer.core.heads import HeadSet, top_k_heads
    from gaze_explorer.storage import SessionReader

    src = Path(args.session)
    with SessionReader(src) as reader:
        info = reader.run_info(reader.run_ids()[0])
        scores = reader.gaze_scores()
        end = image_key_end(reader.grid.positions)
    k = min(args.heads, info.n_layers * info.n_heads)
    if scores is not None:
        heads = top_k_heads(scores, k)
    else:
        heads = HeadSet("first", tuple(divmod(i, info.n_heads) for i in range(k)))
    out = {"session": str(src), "layers_x_heads": [info.n_layers, info.n_heads], "prompt_len": info.prompt_len,
           "max_keys": info.max_keys, "image_key_end": end, "heads_kept": k}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for name, scope in (("full", CaptureScope()), ("image-keys", CaptureScope("image-keys")),
                            (f"heads ({k})", CaptureScope("heads", heads))):  # fmt: skip
            out[name] = rerecord(src, Path(tmp) / f"{name.split()[0]}.h5", scope)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
