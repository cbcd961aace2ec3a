"""Package data of gaze-explorer, installed as ``gaze_explorer.resources`` (see pyproject.toml):
the bundled demo model, the held-out demo comics and the Qwen3-VL geometries. Find them with
``gaze_explorer.core.paths``."""
