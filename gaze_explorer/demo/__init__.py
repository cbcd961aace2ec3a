"""The bundled demo: synthetic comic strips and the training script of the tiny Qwen3-VL demo model."""
