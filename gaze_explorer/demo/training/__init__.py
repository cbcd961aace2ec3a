"""Training code of the demo model: the recipe, batches, tokenizer, training-only attention and the
model card's measurements. Runtime code (the app, the CLI, inference) never imports it (an
import-linter contract in pyproject.toml); what it needs of the demo lives in ``gaze_explorer.demo``."""
