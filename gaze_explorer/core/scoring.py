"""Numpy math of gaze scores, panel matrices and attention trajectories (no torch).

The inference layer captures attention rows; these functions reduce them:

- :func:`region_attention`: attention summed over each region's image tokens (raw, NOT
  renormalised, so a head that ignores the image scores near 0, as in the paper);
- :func:`panel_matrix` / :func:`gaze_scores`: the queried x attended panel matrix of a strip and
  the gaze score (its diagonal mean over panels and strips);
- :func:`trajectory`: per decode step x region attention of a head set, raw, normalised, and
  weighted by each image token's value-vector norm at prefill.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from gaze_explorer.core.errors import HeadSpecError, RegionError
from gaze_explorer.core.heads import HeadSet


def region_attention(rows: np.ndarray, region_positions: Sequence[np.ndarray]) -> np.ndarray:
    """Sum of ``rows`` over each region's key positions: ``[..., key] -> [..., region]``."""
    rows = np.asarray(rows)
    if not region_positions:
        raise RegionError("at least one region is needed")
    out = []
    for pos in region_positions:
        pos = np.asarray(pos, dtype=np.int64)
        if pos.size == 0:
            raise RegionError("a region holds no image tokens")
        if pos.max() >= rows.shape[-1] or pos.min() < 0:
            raise RegionError(f"region positions reach {pos.max()}, beyond the {rows.shape[-1]} keys")
        out.append(rows[..., pos].sum(axis=-1))
    return np.stack(out, axis=-1)


def panel_matrix(query_rows: np.ndarray, panel_positions: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """The queried x attended panel matrix of one strip.

    ``query_rows[k]`` is ``[layer, head, key]``: the last prompt row of the query about panel k
    (its own padded sequence); ``panel_positions[k][j]`` are panel j's key positions in that row's
    sequence (rows of a left-padded batch are shifted differently). Returns ``[layer, head, N, N]``
    (queried, attended).
    """
    query_rows = np.asarray(query_rows)
    n = query_rows.shape[0]
    if len(panel_positions) != n:
        raise RegionError(f"{n} query rows but {len(panel_positions)} position lists")
    per_query = [region_attention(query_rows[k], panel_positions[k]) for k in range(n)]  # [layer, head, N]
    return np.stack(per_query, axis=-2)  # [layer, head, queried, attended]


def gaze_scores(matrices: np.ndarray) -> np.ndarray:
    """Gaze score ``[layer, head]``: mean diagonal of ``[strip, layer, head, N, N]`` (or one strip)."""
    m = np.asarray(matrices, dtype=np.float64)
    if m.ndim == 4:
        m = m[None]
    if m.ndim != 5 or m.shape[-1] != m.shape[-2]:
        raise ValueError(f"expected [strip, layer, head, N, N] matrices, got shape {m.shape}")
    diag = np.diagonal(m, axis1=-2, axis2=-1)  # [strip, layer, head, N]
    return diag.mean(axis=(0, -1))


def mean_matrices(matrices: np.ndarray) -> np.ndarray:
    """Mean ``[layer, head, N, N]`` matrix over strips."""
    m = np.asarray(matrices, dtype=np.float64)
    return m if m.ndim == 4 else m.mean(axis=0)


def head_index(heads: HeadSet | Iterable[tuple[int, int]], n_layers: int, n_heads: int) -> tuple[np.ndarray, np.ndarray]:
    """(layers, heads) index arrays of a head set, checked against the model's size."""
    hs = heads if isinstance(heads, HeadSet) else HeadSet("heads", tuple(heads))
    if len(hs) == 0:
        raise HeadSpecError("the head set is empty")
    hs.validate(n_layers, n_heads)
    arr = np.asarray(hs.heads, dtype=np.int64)
    return arr[:, 0], arr[:, 1]


def trajectory(
    step_rows: np.ndarray,
    heads: HeadSet | Iterable[tuple[int, int]],
    region_positions: Sequence[np.ndarray],
    value_norms: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per step x region attention of a head set (mean over the heads).

    ``step_rows`` is ``[step, layer, head, key]`` (keys padded to the longest step; zeros beyond a
    step's keys are harmless since regions are prompt positions). ``value_norms`` is
    ``[layer, head, key>=prompt]`` (query heads; GQA already repeated). Returns ``raw``
    ``[step, region]``; ``normalised`` (each step's regions sum to 1); and, with value norms,
    ``weighted`` (attention x ||v|| summed over each region) and ``weighted_normalised``.
    """
    rows = np.asarray(step_rows, dtype=np.float64)
    if rows.ndim != 4:
        raise ValueError(f"expected [step, layer, head, key] rows, got shape {rows.shape}")
    layers, hs = head_index(heads, rows.shape[1], rows.shape[2])
    sel = rows[:, layers, hs]  # [step, n_sel, key]
    out = {"raw": region_attention(sel, region_positions).mean(axis=1)}  # [step, region]
    out["normalised"] = _normalise(out["raw"])
    if value_norms is not None:
        norms = np.asarray(value_norms, dtype=np.float64)[layers, hs]  # [n_sel, key]
        k = min(norms.shape[-1], sel.shape[-1])
        weighted = np.zeros_like(sel)
        weighted[..., :k] = sel[..., :k] * norms[None, :, :k]
        out["weighted"] = region_attention(weighted, region_positions).mean(axis=1)
        out["weighted_normalised"] = _normalise(out["weighted"])
    return out


def _normalise(x: np.ndarray) -> np.ndarray:
    total = x.sum(axis=-1, keepdims=True)
    return np.divide(x, total, out=np.zeros_like(x), where=total > 0)
