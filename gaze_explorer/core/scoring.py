"""Numpy math of gaze scores, panel matrices and attention trajectories (no torch).

The inference layer captures attention rows; these functions reduce them:

- :func:`region_attention`: attention summed over each region's image tokens (raw, NOT
  renormalised, so a head that ignores the image scores near 0, as in the paper);
- :func:`panel_matrix` / :func:`gaze_scores`: the queried x attended panel matrix of a strip and
  the gaze score (its diagonal mean over panels and strips);
- :func:`image_attention` / :func:`overlay_heat` / :func:`region_masses`: the mean selected head's
  attention on each image token, as a token grid, summed per region (the overlay, the reader's
  ``image_attention``);
- :func:`span_heat` / :func:`step_peaks`: a span's heatmap (the overlay averaged over a step range,
  raw or value-weighted) and the region each step's heatmap peaks in (for proposing spans);
- :func:`trajectory` / :func:`step_trajectory`: per decode step x region attention of a head set
  (the staircase), raw, normalised, and weighted by each image token's value-vector norm at
  prefill; from stacked rows, or step by step from a run's ``rows_at``.

Heads are averaged (not summed), so an overlay or trajectory reads as "the attention of a typical
selected head"; :func:`head_index` is the one place a head set becomes index arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from gaze_explorer.core.errors import HeadSpecError, RegionError
from gaze_explorer.core.heads import HeadSet
from gaze_explorer.core.regions import ImageTokenGrid, Region


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


def head_index(
    heads: HeadSet | Iterable[tuple[int, int]] | None, n_layers: int, n_heads: int
) -> tuple[np.ndarray, np.ndarray]:
    """(layers, heads) index arrays of a head set (``None``: every head), checked against the model's
    size, for fancy indexing ``rows[..., layers, heads, :]``. Raises HeadSpecError for an empty set
    or a head out of range."""
    if heads is None:
        layers, hs = np.meshgrid(np.arange(n_layers), np.arange(n_heads), indexing="ij")
        return layers.reshape(-1), hs.reshape(-1)
    hs = heads if isinstance(heads, HeadSet) else HeadSet("heads", tuple(heads))
    if len(hs) == 0:
        raise HeadSpecError("the head set is empty")
    hs.validate(n_layers, n_heads)
    arr = np.asarray(hs.heads, dtype=np.int64)
    return arr[:, 0], arr[:, 1]


def select_heads(rows: np.ndarray, heads: HeadSet | Iterable[tuple[int, int]] | None) -> np.ndarray:
    """The rows of ``heads``: ``[..., layer, head, key] -> [..., n_selected, key]``."""
    rows = np.asarray(rows)
    layers, hs = head_index(heads, rows.shape[-3], rows.shape[-2])
    return rows[..., layers, hs, :]


def image_attention(
    rows: np.ndarray, image_positions: np.ndarray, heads: HeadSet | Iterable[tuple[int, int]] | None = None
) -> np.ndarray:
    """Mean over ``heads`` (None: all) of the attention on each image token:
    ``[..., layer, head, key] -> [..., n_image_tokens]`` (float64, not renormalised)."""
    picked = select_heads(rows, heads)[..., np.asarray(image_positions, dtype=np.int64)]
    return picked.astype(np.float64).mean(axis=-2)


def region_masses(heat: np.ndarray, regions: Sequence[Region]) -> np.ndarray:
    """Sum of a per-image-token quantity (``[n_image_tokens]``, or an overlay's ``[rows, cols]``
    token grid) over each region's tokens: ``[region]``."""
    flat = np.asarray(heat, dtype=np.float64).reshape(-1)
    return np.array([flat[r.token_indices].sum() for r in regions], dtype=np.float64)


def overlay_heat(rows: np.ndarray, grid: ImageTokenGrid, heads: HeadSet) -> np.ndarray:
    """Mean attention of ``heads`` on each image token of one step's rows ``[layer, head, key]``, as
    the ``[rows, cols]`` token grid; zeros for an empty head set (nothing selected yet)."""
    if len(heads) == 0:
        return np.zeros((grid.rows, grid.cols), dtype=np.float64)
    return image_attention(rows, grid.positions, heads).reshape(grid.rows, grid.cols)


def head_region_mass(rows: np.ndarray, grid: ImageTokenGrid, region: Region) -> np.ndarray:
    """Attention mass of every head on ``region``'s image tokens: ``[layer, head, key] -> [layer, head]``."""
    return np.asarray(rows)[:, :, region.positions(grid)].astype(np.float64).sum(axis=-1)


def stack_step_rows(rows: Sequence[np.ndarray]) -> np.ndarray:
    """Decode steps' rows ``[layer, head, key_s]`` (one more key each step), zero-padded into one
    ``[step, layer, head, max_key]`` array for :func:`trajectory`."""
    if not rows:
        raise ValueError("no captured decode rows (CaptureSpec(decode=True) is needed)")
    n_keys = max(r.shape[-1] for r in rows)
    out = np.zeros((len(rows), *rows[0].shape[:2], n_keys), dtype=np.float32)
    for s, r in enumerate(rows):
        out[s, ..., : r.shape[-1]] = r
    return out


def trajectory(
    step_rows: np.ndarray,
    heads: HeadSet | Iterable[tuple[int, int]] | None,
    region_positions: Sequence[np.ndarray],
    value_norms: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per step x region attention of a head set (mean over the heads): the paper's staircase.

    ``step_rows`` is ``[step, layer, head, key]`` (keys padded to the longest step; zeros beyond a
    step's keys are harmless since regions are prompt positions). ``value_norms`` is
    ``[layer, head, key>=prompt]`` (query heads; GQA already repeated). Returns ``raw``
    ``[step, region]``; ``normalised`` (each step's regions sum to 1); and, with value norms,
    ``weighted`` (attention x ||v|| summed over each region) and ``weighted_normalised``.
    """
    rows = np.asarray(step_rows)
    if rows.ndim != 4:
        raise ValueError(f"expected [step, layer, head, key] rows, got shape {rows.shape}")
    layers, hs = head_index(heads, rows.shape[1], rows.shape[2])
    sel = rows[:, layers, hs].astype(np.float64)  # [step, n_sel, key]: select first, then widen
    out = {"raw": region_attention(sel, region_positions).mean(axis=1)}  # [step, region]
    out["normalised"] = _normalise(out["raw"])
    if value_norms is not None:
        norms = np.asarray(value_norms, dtype=np.float64)[layers, hs]  # [n_sel, key]
        weighted = weight_by_value_norms(sel, norms)  # [step, n_sel, key] x [n_sel, key]
        out["weighted"] = region_attention(weighted, region_positions).mean(axis=1)
        out["weighted_normalised"] = _normalise(out["weighted"])
    return out


def step_trajectory(
    rows_at: Callable[[int], np.ndarray | None],
    n_steps: int,
    grid: ImageTokenGrid,
    regions: Sequence[Region],
    heads: HeadSet,
    start: int = 0,
) -> np.ndarray:
    """The staircase of a run read step by step (``rows_at(step)`` -> ``[layer, head, key]``, or
    None for a step without rows): ``[step, region]`` raw attention of the mean selected head for
    steps ``start`` to ``n_steps - 1`` (a streaming view adds only its new steps), NaN where a step
    has no rows."""
    out = np.full((max(n_steps - start, 0), len(regions)), np.nan, dtype=np.float64)
    for i, step in enumerate(range(start, n_steps)):
        rows = rows_at(step)
        if rows is not None:
            out[i] = region_masses(overlay_heat(rows, grid, heads), regions)
    return out


def weight_by_value_norms(rows: np.ndarray, value_norms: np.ndarray) -> np.ndarray:
    """``rows [..., layer, head, key]`` times each key's ``||v||`` (``value_norms [layer, head,
    key>=prompt]``, query heads): value-weighted attention. Keys beyond the norms (generated
    tokens) weigh 0; image tokens are prompt keys, so overlays are unaffected by that."""
    rows = np.asarray(rows, dtype=np.float64)
    norms = np.asarray(value_norms, dtype=np.float64)
    k = min(norms.shape[-1], rows.shape[-1])
    out = np.zeros_like(rows)
    out[..., :k] = rows[..., :k] * norms[..., :k]
    return out


def span_heat(
    rows_at: Callable[[int], np.ndarray | None],
    steps: Iterable[int],
    grid: ImageTokenGrid,
    heads: HeadSet,
    value_norms: np.ndarray | None = None,
) -> np.ndarray:
    """A span's heatmap: the mean over ``steps`` of each step's :func:`overlay_heat` (the selected
    heads' mean attention on each image token), ``[rows, cols]``. Raw, or value-weighted with
    ``value_norms`` ``[layer, head, key]``: each step's heat of attention x ``||v||``
    (:func:`weight_by_value_norms`) renormalised to sum 1 over the image tokens (``||v||`` has no
    unit; the same per-step normalisation as :func:`trajectory`'s ``weighted_normalised``). Steps
    without rows (``rows_at`` -> None) are left out of the mean; a span with none is all NaN."""
    heats = []
    for step in steps:
        rows = rows_at(step)
        if rows is None:
            continue
        if value_norms is None:
            heats.append(overlay_heat(rows, grid, heads))
        else:
            heat = overlay_heat(weight_by_value_norms(rows, value_norms), grid, heads)  # [rows, cols]
            heats.append(_normalise(heat.reshape(-1)).reshape(heat.shape))  # over the whole image
    if not heats:
        return np.full((grid.rows, grid.cols), np.nan, dtype=np.float64)
    return np.mean(heats, axis=0)


def step_peaks(heats: np.ndarray, regions: Sequence[Region]) -> np.ndarray:
    """The region (index) holding the most heat at each step: ``[step, rows, cols]`` (or ``[step,
    n_image_tokens]``) -> ``[step]`` int; -1 where a step has no heat (NaN or all zero)."""
    heats = np.asarray(heats, dtype=np.float64)
    out = np.full(heats.shape[0], -1, dtype=np.int64)
    for s, heat in enumerate(heats):
        masses = region_masses(np.nan_to_num(heat, nan=0.0), regions)
        if masses.max() > 0:
            out[s] = int(masses.argmax())
    return out


def _normalise(x: np.ndarray) -> np.ndarray:
    total = x.sum(axis=-1, keepdims=True)
    return np.divide(x, total, out=np.zeros_like(x), where=total > 0)
