"""Head-selection criteria beside the gaze score, and the agreement between criteria (numpy only).

The paper compares gaze heads with two published criteria, both computed here from quantities that
discovery captures in the same forward passes (the last prompt token's attention row):

- **Image Heads** (MaskCD, Deng & Yang 2025): per head, the attention mass on all image tokens,
  averaged over the discovery prompts (``image_mass``, ``[layer, head]``); z-scored within each
  layer; every head ranked by that z-score (MaskCD flags ``z > 2.5``). :func:`image_head_scores`.
- **Localization Heads** (Kang et al., CVPR 2025): per head, the attention over the image token
  grid averaged over the prompts (``image_maps``, ``[layer, head, rows, cols]``). Criterion 1: the
  head's image-attention sum is at or above the elbow of the sorted sums (:func:`elbow_threshold`,
  the point farthest from the chord joining the curve's ends). Criterion 2: low spatial entropy of
  the thresholded map (:func:`spatial_entropy`). Heads in layers <= 1 and heads focused on the
  bottom row are dropped; the heads passing both are ranked by ascending entropy.
  :func:`localization_heads`.

Where the paper's text and the authors' public code differ, both are offered and the default is
named (``docs/session_schema.md``, discovery section):

- spatial entropy ``"paper"`` (default): binarise at the map's mean, 8-connected components,
  entropy of the component SIZES; ``"code"``: ``relu(map - 2 * mean) > 1e-3``, components weighted
  by their attention mass (the authors' code).
- bottom row ``"code"`` (default): any bottom-row cell above 0.05 (the authors' code, in raw
  attention units); ``"peak"``: the map's maximum lies in the bottom row; ``"off"``.

The elbow needs no axis normalisation: the perpendicular distance to the chord is the vertical
distance scaled by a constant, so its argmax does not depend on the axes' units.

:func:`agreement` gives the paper's Tab. 6 (overlap and Jaccard of the top-K sets, the common core
of all criteria, and what chance gives), and :func:`criteria_report` a JSON-ready summary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from gaze_explorer.core.errors import HeadSpecError
from gaze_explorer.core.heads import Head, ranking
from gaze_explorer.core.protocol_choices import BOTTOM_ROW_RULES, ENTROPY_VARIANTS

MASKCD_Z = 2.5  # MaskCD's flag: z-score above 2.5 within the layer
MIN_LAYER = 2  # Kang et al. drop layers 0 and 1
BOTTOM_ROW_THRESHOLD = 0.05  # the authors' code: any bottom-row cell above this (raw attention)
CODE_BINARY_THRESHOLD = 1e-3  # the authors' code binarises relu(map - 2 * mean) at this
AGREEMENT_KS = (10, 100)


# -- image heads ---------------------------------------------------------------------------------
def zscore_within_layer(values: np.ndarray) -> np.ndarray:
    """``[layer, head]`` values z-scored over the heads of each layer (population std; a layer whose
    heads are all equal gets z = 0)."""
    v = _grid(values, "values")
    mean = v.mean(axis=1, keepdims=True)
    std = v.std(axis=1, keepdims=True)
    z = np.divide(v - mean, std, out=np.zeros_like(v), where=std > 0)
    z[np.isnan(v)] = np.nan  # a linear-attention layer (Qwen3.5): not applicable, stays NaN
    return z


def image_head_scores(image_mass: np.ndarray) -> np.ndarray:
    """MaskCD's score ``[layer, head]``: the image mass z-scored within each layer (rank by it)."""
    return zscore_within_layer(image_mass)


# -- localization heads --------------------------------------------------------------------------
def elbow_threshold(values: Sequence[float] | np.ndarray) -> float:
    """The value at the elbow of ``values`` sorted ascending: the point farthest from the chord
    joining the first and last points. Two values or fewer: their minimum."""
    y = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if y.size == 0:
        raise ValueError("the elbow needs at least one value")
    if y.size <= 2 or y[-1] == y[0]:
        return float(y[0])
    x = np.arange(y.size, dtype=np.float64)
    # |cross product| with the chord direction = distance x chord length (a constant)
    cross = (x - x[0]) * (y[-1] - y[0]) - (y - y[0]) * (x[-1] - x[0])
    return float(y[int(np.argmax(np.abs(cross)))])


def connected_components(mask: np.ndarray, connectivity: int = 8) -> tuple[np.ndarray, int]:
    """Labels ``[rows, cols]`` (0 = background, components 1..n in row-major order of their first
    cell) and the component count n of a 2-D boolean mask; ``connectivity`` 8 or 4."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {m.shape}")
    if connectivity == 8:
        steps = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]
    elif connectivity == 4:
        steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    else:
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    labels = np.zeros(m.shape, dtype=np.int64)
    n = 0
    rows, cols = m.shape
    for r0, c0 in zip(*np.nonzero(m), strict=True):
        if labels[r0, c0]:
            continue
        n += 1
        labels[r0, c0] = n
        stack = [(int(r0), int(c0))]
        while stack:
            r, c = stack.pop()
            for dr, dc in steps:
                rr, cc = r + dr, c + dc
                if 0 <= rr < rows and 0 <= cc < cols and m[rr, cc] and not labels[rr, cc]:
                    labels[rr, cc] = n
                    stack.append((rr, cc))
    return labels, n


def spatial_entropy(attention_map: np.ndarray, variant: str = "paper") -> float:
    """Spatial entropy (nats) of a 2-D attention map; low = concentrated; ``inf`` when no cell is
    above the threshold (a flat map). ``variant`` ``"paper"`` or ``"code"``: see the module doc."""
    a = np.asarray(attention_map, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D map, got shape {a.shape}")
    if variant == "paper":
        labels, n = connected_components(a > a.mean())
        weights = np.bincount(labels.ravel(), minlength=n + 1)[1:].astype(np.float64)  # sizes
        total = weights.sum()
    elif variant == "code":
        high = np.maximum(a - 2.0 * a.mean(), 0.0)
        labels, n = connected_components(high > CODE_BINARY_THRESHOLD)
        weights = np.bincount(labels.ravel(), weights=high.ravel(), minlength=n + 1)[1:]
        total = high.sum()  # the code divides by all the mass above 2 x mean, in components or not
    else:
        raise ValueError(f"spatial entropy variant must be one of {ENTROPY_VARIANTS}, got {variant!r}")
    if n == 0 or total <= 0:
        return float("inf")
    p = weights / total
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def bottom_row_focused(
    attention_map: np.ndarray, rule: str = "code", threshold: float = BOTTOM_ROW_THRESHOLD
) -> bool:
    """Whether a head's map is focused on the image's bottom row (see the module doc for the rules)."""
    a = np.asarray(attention_map, dtype=np.float64)
    if rule == "code":
        return bool((a[-1] > threshold).any())
    if rule == "peak":
        return bool(np.unravel_index(int(np.argmax(a)), a.shape)[0] == a.shape[0] - 1)
    if rule == "off":
        return False
    raise ValueError(f"bottom-row rule must be one of {BOTTOM_ROW_RULES}, got {rule!r}")


@dataclass(frozen=True)
class LocalizationHeads:
    """Kang et al.'s two criteria for every head, and the resulting ranking."""

    entropy: np.ndarray  # [layer, head] spatial entropy (inf: nothing above the threshold)
    threshold: float  # the elbow of the image-attention sums
    passes_mass: np.ndarray  # [layer, head] criterion 1: image mass >= threshold
    bottom_row: np.ndarray  # [layer, head] dropped as focused on the bottom row
    selected: np.ndarray  # [layer, head] passes both criteria and both filters
    order: tuple[Head, ...]  # every head; the selected ones first, by ascending entropy
    params: dict

    @property
    def n_selected(self) -> int:
        return int(self.selected.sum())

    def scores(self) -> np.ndarray:
        """A ``[layer, head]`` score whose descending order is :attr:`order` (for top-K)."""
        return rank_scores(self.order, *self.entropy.shape)


def localization_heads(
    image_mass: np.ndarray,
    image_maps: np.ndarray,
    *,
    min_layer: int = MIN_LAYER,
    entropy_variant: str = "paper",
    bottom_row: str = "code",
    bottom_row_threshold: float = BOTTOM_ROW_THRESHOLD,
) -> LocalizationHeads:
    """Kang et al.'s Localization Heads from ``image_mass`` ``[layer, head]`` and ``image_maps``
    ``[layer, head, rows, cols]``.

    The elbow is taken over every head's image mass. The ranking puts the heads that pass both
    criteria first (ascending entropy, then larger mass); beyond them, so that any K can be drawn,
    come the heads that fail only criterion 1 (ascending entropy), then the filtered ones (layers
    below ``min_layer``, bottom row, flat map) by descending mass. Only the first ``n_selected``
    are Localization Heads in the published sense.
    """
    mass = _grid(image_mass, "image mass")
    maps = np.asarray(image_maps, dtype=np.float64)
    if maps.ndim != 4 or maps.shape[:2] != mass.shape:
        raise ValueError(
            f"image maps must be [layer, head, rows, cols] matching {mass.shape}, got {maps.shape}"
        )
    n_layers, n_heads = mass.shape
    applicable = np.isfinite(mass)  # NaN: a linear-attention layer's head (Qwen3.5), ranked last
    threshold = elbow_threshold(mass[applicable]) if applicable.any() else float("nan")
    entropy = np.array(
        [
            [spatial_entropy(maps[layer, h], entropy_variant) for h in range(n_heads)]
            for layer in range(n_layers)
        ]
    )
    bottom = np.array(
        [
            [bottom_row_focused(maps[layer, h], bottom_row, bottom_row_threshold) for h in range(n_heads)]
            for layer in range(n_layers)
        ]
    ).reshape(n_layers, n_heads)
    passes_mass = mass >= threshold
    layer_ok = (np.arange(n_layers) >= min_layer)[:, None]
    eligible = layer_ok & ~bottom & np.isfinite(entropy)
    selected = eligible & passes_mass

    def key(hd: Head) -> tuple:
        layer, h = hd
        if not applicable[hd]:
            return (3, 0.0, 0.0, layer, h)
        if selected[hd]:
            return (0, entropy[hd], -mass[hd], layer, h)
        if eligible[hd]:
            return (1, entropy[hd], -mass[hd], layer, h)
        return (2, -mass[hd], 0.0, layer, h)

    order = tuple(sorted(((layer, h) for layer in range(n_layers) for h in range(n_heads)), key=key))
    params = {
        "min_layer": int(min_layer),
        "entropy_variant": entropy_variant,
        "bottom_row": bottom_row,
        "bottom_row_threshold": float(bottom_row_threshold),
    }
    return LocalizationHeads(entropy, threshold, passes_mass, bottom, selected, order, params)


def rank_scores(order: Sequence[Head], n_layers: int, n_heads: int) -> np.ndarray:
    """``[layer, head]`` scores (n for the first head of ``order`` ... 1 for the last) whose
    descending order is ``order``: lets ranking-only criteria use the score-based top-K."""
    if len(order) != n_layers * n_heads or len(set(order)) != len(order):
        raise HeadSpecError(f"the order must list each of the {n_layers * n_heads} heads once")
    scores = np.zeros((n_layers, n_heads), dtype=np.float64)
    for rank, (layer, h) in enumerate(order):
        scores[layer, h] = len(order) - rank
    return scores


class MapAverage:
    """Running mean of ``[..., rows, cols]`` maps (one per strip) without keeping them all.

    Strips of different widths have different token grids: each grid shape keeps its own sum, and
    :meth:`mean` resamples every sum (bilinear, cell centres aligned: linear, so resampling the sum
    equals summing the resampled maps) to the most frequent shape."""

    def __init__(self) -> None:
        self._sums: dict[tuple[int, int], np.ndarray] = {}
        self._counts: dict[tuple[int, int], int] = {}

    def add(self, maps: np.ndarray) -> None:
        a = np.asarray(maps, dtype=np.float64)
        shape = (int(a.shape[-2]), int(a.shape[-1]))
        if shape in self._sums:
            self._sums[shape] = self._sums[shape] + a
        else:
            self._sums[shape] = a.copy()
        self._counts[shape] = self._counts.get(shape, 0) + 1

    def add_sum(self, total: np.ndarray, count: int) -> None:
        """Add the sum of ``count`` maps of one grid shape (another MapAverage's, e.g. a shard's)."""
        a = np.asarray(total, dtype=np.float64)
        shape = (int(a.shape[-2]), int(a.shape[-1]))
        self._sums[shape] = self._sums[shape] + a if shape in self._sums else a.copy()
        self._counts[shape] = self._counts.get(shape, 0) + int(count)

    def sums(self) -> dict[tuple[int, int], np.ndarray]:
        """The running sum per grid shape (``rows, cols``)."""
        return dict(self._sums)

    def counts(self) -> dict[tuple[int, int], int]:
        """How many maps each grid shape's sum holds."""
        return dict(self._counts)

    @property
    def count(self) -> int:
        return sum(self._counts.values())

    def mean(self) -> np.ndarray:
        if not self._sums:
            raise ValueError("no maps to average")
        target = max(self._counts, key=lambda s: (self._counts[s], s))
        total = sum(resample_map(v, *target) if s != target else v for s, v in self._sums.items())
        return total / self.count


def resample_map(maps: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``[..., r, c]`` maps resampled to ``[..., rows, cols]`` by bilinear interpolation between cell
    centres (a uniform map stays uniform)."""
    a = np.asarray(maps, dtype=np.float64)
    wr = _interp_matrix(a.shape[-2], rows)  # [rows, r]
    wc = _interp_matrix(a.shape[-1], cols)  # [cols, c]
    return np.einsum("ir,...rc,jc->...ij", wr, a, wc)


def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
    centres = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5  # output cell centres in input cell units
    centres = np.clip(centres, 0.0, n_in - 1.0)
    lo = np.floor(centres).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = centres - lo
    w = np.zeros((n_out, n_in))
    w[np.arange(n_out), lo] += 1.0 - frac
    w[np.arange(n_out), hi] += frac
    return w


# -- agreement -----------------------------------------------------------------------------------
def agreement(
    orders: Mapping[str, Sequence[Head]], n_total: int, ks: Sequence[int] = AGREEMENT_KS
) -> list[dict]:
    """The paper's Tab. 6: for each K, the top-K sets of every criterion compared pairwise (overlap,
    Jaccard, and the overlap two random K-sets have on average, K^2 / n) plus the core common to all.

    K is clipped to ``n_total`` (small models have fewer than 100 heads); each row says so."""
    names = list(orders)
    if len(names) < 2:
        raise ValueError("agreement needs at least two criteria")
    rows = []
    for k in ks:
        k_eff = min(int(k), int(n_total))
        tops = {name: set(map(tuple, list(orders[name])[:k_eff])) for name in names}
        pairs = []
        for a, b in combinations(names, 2):
            inter, union = tops[a] & tops[b], tops[a] | tops[b]
            pairs.append(
                {
                    "a": a,
                    "b": b,
                    "overlap": len(inter),
                    "jaccard": len(inter) / len(union) if union else 0.0,
                    "chance_overlap": k_eff * k_eff / n_total,
                }
            )
        core = set.intersection(*tops.values())
        rows.append(
            {
                "k": int(k),
                "k_used": k_eff,
                "clipped": k_eff < int(k),
                "pairs": pairs,
                "common": len(core),
                "common_heads": [list(hd) for hd in sorted(core)],
                "chance_common": k_eff ** len(names) / n_total ** (len(names) - 1),
            }
        )
    return rows


def criteria_report(
    gaze_scores: np.ndarray,
    image_mass: np.ndarray,
    image_maps: np.ndarray,
    ks: Sequence[int] = AGREEMENT_KS,
    **localization_options,
) -> dict:
    """A JSON-ready summary of the three criteria on one discovery: each criterion's ranking and
    facts (MaskCD's flagged count, the elbow threshold and the number of Localization Heads) and the
    agreement table. ``localization_options`` go to :func:`localization_heads`."""
    gaze = _grid(gaze_scores, "gaze scores")
    z = image_head_scores(image_mass)
    loc = localization_heads(image_mass, image_maps, **localization_options)
    orders = {
        "gaze": [(r["layer"], r["head"]) for r in ranking(gaze)],
        "image": [(r["layer"], r["head"]) for r in ranking(z)],
        # heads of linear-attention layers (NaN image mass) are not applicable: out of the agreement
        "localization": [hd for hd in loc.order if np.isfinite(np.asarray(image_mass, dtype=np.float64)[hd])],
    }
    n_total = len(orders["localization"])
    return {
        "n_heads": int(n_total),
        "image": {
            "definition": "MaskCD: image mass of the last prompt token, mean over prompts, z-scored per layer",
            "flag_z": MASKCD_Z,
            "n_flagged": int((z > MASKCD_Z).sum()),
            "ranking": [
                {"layer": layer, "head": h, "score": _json_float(z[layer, h])} for layer, h in orders["image"]
            ],
        },
        "localization": {
            "definition": "Kang et al.: image mass >= elbow, low spatial entropy; layers < min_layer and "
            "bottom-row heads dropped; ranked by ascending entropy",
            "elbow_threshold": loc.threshold,
            "n_passing_mass": int(loc.passes_mass.sum()),
            "n_bottom_row": int(loc.bottom_row.sum()),
            "n_selected": loc.n_selected,
            **loc.params,
            "ranking": [
                {
                    "layer": layer,
                    "head": h,
                    "entropy": _json_float(loc.entropy[layer, h]),
                    "image_mass": _json_float(np.asarray(image_mass)[layer, h]),
                    "selected": bool(loc.selected[layer, h]),
                }
                for layer, h in loc.order
            ],
        },
        "agreement": agreement(orders, n_total, ks),
    }


def criterion_scores(
    gaze_scores: np.ndarray,
    image_mass: np.ndarray | None = None,
    image_maps: np.ndarray | None = None,
    **localization_options,
) -> dict[str, np.ndarray]:
    """``[layer, head]`` scores per criterion, higher = better, for ``core.heads.choose_heads``:
    ``gaze``; with the image mass ``image`` (its per-layer z-score); with the maps too
    ``localization`` (rank scores of :func:`localization_heads`' order)."""
    return criterion_scores_and_selection(gaze_scores, image_mass, image_maps, **localization_options)[0]


def criterion_scores_and_selection(
    gaze_scores: np.ndarray,
    image_mass: np.ndarray | None = None,
    image_maps: np.ndarray | None = None,
    **localization_options,
) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """:func:`criterion_scores` and, per criterion beside the gaze score, what its own selection
    keeps and with which parameters (``{"n_selected", "params"}``, ``core.heads.choose_heads``'s
    ``selection``): Image Heads: the heads MaskCD flags (z > 2.5); Localization Heads: the heads that
    pass both of Kang et al.'s criteria and filters. A top-K beyond ``n_selected`` is filled by the
    ranking (``params["fill_in"]`` says how)."""
    out = {"gaze": _grid(gaze_scores, "gaze scores")}
    selection: dict[str, dict] = {}
    if image_mass is not None:
        out["image"] = image_head_scores(image_mass)
        selection["image"] = {
            "n_selected": int((out["image"] > MASKCD_Z).sum()),
            "params": {
                "score": "image mass z-scored within each layer",
                "flag_z": MASKCD_Z,
                "fill_in": "the next heads by z-score (the paper ranks every head by it)",
            },
        }
        if image_maps is not None:
            found = localization_heads(image_mass, image_maps, **localization_options)
            loc = found.scores()
            loc[np.isnan(out["image"])] = np.nan  # not applicable (linear attention): no rank
            out["localization"] = loc
            selection["localization"] = {
                "n_selected": found.n_selected,
                "params": {
                    **found.params,
                    "elbow_threshold": _json_float(found.threshold),
                    "fill_in": "the project's order (heads failing only the mass criterion by ascending "
                    "entropy, then the filtered ones by descending mass)",
                },
            }
    return out, selection


def _json_float(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None  # JSON has no inf


def _grid(values: np.ndarray, what: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"{what} must be a [layer, head] grid, got shape {v.shape}")
    return v
