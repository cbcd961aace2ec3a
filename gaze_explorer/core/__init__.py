"""Pure Python + numpy state and math: regions, head sets, steering plans, scores, judges.

Never imports Qt, torch, transformers or h5py (tests/test_layering.py enforces it).
"""
