"""The ``--device`` and ``--dtype`` values a model can be loaded with: one list for the command line
(``cli.args``) and the app's Load model dialog, so both offer the same choices.

Standard library only (no numpy), so ``import gaze_explorer.cli`` stays cheap.
"""

from __future__ import annotations

# the weights' dtype; "auto" keeps the checkpoint's own
DTYPES = ("auto", "float32", "bfloat16", "float16")
# the dialog's device list; the command line also takes cuda:N (``cli.args.device``)
DEVICES = ("auto", "cpu", "cuda", "mps")
