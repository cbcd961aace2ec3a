"""Child process of the model crash test: a real greedy generation with full capture, recorded
into a session, one step printed per token so the parent can SIGKILL it at a chosen moment.

usage: model_crash_child.py MODEL_DIR SESSION_PATH N_STEPS
(the crash test forks it through tests/forked_children.py, entry ``model_crash_child:main``)
"""

import sys
import time

import numpy as np
from PIL import Image

from gaze_explorer.core.events import TokenEvent
from gaze_explorer.core.options import CaptureSpec, GenerationOptions
from gaze_explorer.core.regions import panel_regions
from gaze_explorer.core.run_spec import RunSpec
from gaze_explorer.inference.generation import generate_stream
from gaze_explorer.inference.loading import load_model
from gaze_explorer.storage import SessionWriter, record_events
from gaze_explorer.storage.writer import COMMIT_INTERVAL_S


def main(argv: list[str]) -> int:
    model_dir, session_path, n_steps = argv[0], argv[1], int(argv[2])
    loaded = load_model(model_dir, device="cpu", dtype="float32", num_threads=1)
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (64, 384, 3), dtype=np.uint8))
    prompt = "what is in the panel ?"
    grid = loaded.adapter.build_inputs(image, prompt).grids[0]
    regions = panel_regions(grid, 6)
    writer = SessionWriter(
        session_path, meta=loaded.describe(), image=np.asarray(image), grid=grid, regions=regions
    )
    options = GenerationOptions(max_new_tokens=n_steps)
    stream = generate_stream(
        loaded,
        image,
        prompt,
        regions=regions,
        options=options,
        capture=CaptureSpec(decode=True, prefill="last"),
    )
    spec = RunSpec(
        name="crash",
        prompt=prompt,
        n_layers=loaded.n_layers,
        n_heads=loaded.n_heads,
        max_new_tokens=n_steps,
        options=options,
        regions=regions,
    )
    for event in record_events(stream, writer, spec):
        if isinstance(event, TokenEvent):
            print(event.step, flush=True)
            # the tiny model makes a token in ~1 ms, far inside one commit interval; paced at a third
            # of it, a kill after a few printed steps finds some committed, about three per commit
            time.sleep(COMMIT_INTERVAL_S / 3)
    writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
