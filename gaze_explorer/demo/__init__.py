"""The bundled demo: its runtime assets (prompts, comic strips and the held-out loader) and, under
``training/``, the code that trained the tiny Qwen3-VL demo model."""
