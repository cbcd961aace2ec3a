"""Per-family adapters: how to build inputs, where the image tokens are, and their pixel boxes."""
