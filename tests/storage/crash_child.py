"""Child process of the crash and SWMR tests: records a synthetic run slowly into a session."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import storage_synthetic as synthetic

from gaze_explorer.core.events import TokenEvent
from gaze_explorer.core.run_spec import RunSpec
from gaze_explorer.storage import SessionWriter, record_events
from gaze_explorer.storage.writer import COMMIT_INTERVAL_S

path, n_steps = sys.argv[1], int(sys.argv[2])
grid = synthetic.make_grid()
w = SessionWriter(
    path, meta=synthetic.META, image=synthetic.make_image(), grid=grid, regions=synthetic.make_regions(grid)
)
spec = RunSpec(
    name="r",
    prompt="p",
    n_layers=synthetic.N_LAYERS,
    n_heads=synthetic.N_HEADS,
    max_new_tokens=n_steps,
)
for event in record_events(synthetic.events(n_steps), w, spec):
    if isinstance(event, TokenEvent):
        print(event.step, flush=True)
        # slower than the writer's commit interval, so every step but the last printed one is on
        # disk when the parent kills (the writer's promise: a queued step is committed within it)
        time.sleep(COMMIT_INTERVAL_S + 0.02)
w.close()
