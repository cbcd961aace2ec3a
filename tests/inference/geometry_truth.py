"""Ground-truth image geometry, measured on the model itself, independently of the adapter's map.

An adapter CLAIMS which pixel box of the original image each image token covers
(``ImageTokenGrid.token_boxes``). This module MEASURES it on a loaded (tiny) model:

1. :func:`isolated_vision_tokens` zeroes the output of every attention module of the vision tower
   (forward hooks, removed on exit), so each vision token is a function of its own pixels only
   (patch embedding, MLPs, norms, merger/pooling/pixel-shuffle of its own patches);
2. the image goes through the adapter's real processor and the real model, which is stopped at the
   language model's input (a pre-hook on the decoder raises once it has the ``inputs_embeds``), so
   only the vision tower and projector run;
3. flipping the pixels inside a region (``v -> (v + 128) % 256``) and seeing which image-token input
   embeddings change tells which tokens see that region.

:class:`GeometryOracle` turns this into per-token measured boxes (vertical and horizontal stripe
probes, see :meth:`GeometryOracle.measure_boxes`) and region checks (which tokens a panel or a box
reaches). The resizing filters of the processors spread a pixel over a couple of resized pixels, so
a raw dependency range is the true box widened by that "bleed" on each side; the measurement removes
it (the half-overlap of neighbouring tokens' ranges), so measured boxes are comparable with the
claimed ones to about one stripe width.

Hooks on the vision tower are fine here: this is a test oracle, not the product.

Usage (any family, tiny random model + its adapter)::

    oracle = GeometryOracle(model, adapter)
    report = oracle.compare_boxes(image)          # measured vs claimed, per token
    assert report.max_error_px <= report.tolerance_px
    seen = oracle.tokens_reached_by(image, (x0, y0, x1, y1))   # grid-token indices
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

# modules whose class name ends like this inside the vision tower are attention blocks; pooling
# heads (SigLIP's MAP head) hold an attention module of their own but pool across tokens anyway
_ATTENTION_SUFFIXES = ("Attention", "SdpaAttention", "FlashAttention2")


class _ReachedLanguageModel(Exception):
    """Raised by the decoder pre-hook: the LM input embeddings are captured, stop the forward."""

    def __init__(self, inputs_embeds: torch.Tensor) -> None:
        super().__init__("reached the language model")
        self.inputs_embeds = inputs_embeds


def vision_tower(model: torch.nn.Module) -> torch.nn.Module:
    """The vision encoder of a VLM (the submodule configured by ``config.vision_config``)."""
    vision_config = getattr(model.config, "vision_config", None)
    for _, module in model.named_modules():
        if vision_config is not None and getattr(module, "config", None) is vision_config:
            return module
    for name in ("visual", "vision_tower", "vision_model", "vision_encoder"):
        for holder in (model, getattr(model, "model", None)):
            sub = getattr(holder, name, None) if holder is not None else None
            if isinstance(sub, torch.nn.Module):
                return sub
    raise LookupError(f"cannot find the vision tower of {type(model).__name__}")


def vision_attention_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The attention modules of the vision tower (outermost only, not their projections)."""
    tower = vision_tower(model)
    found: list[torch.nn.Module] = []
    for _, module in tower.named_modules():
        name = type(module).__name__
        inside_found = any(module in set(f.modules()) for f in found)
        if name.endswith(_ATTENTION_SUFFIXES) and "Pooling" not in name and not inside_found:
            found.append(module)
    if not found:
        raise LookupError(f"no attention module found in the vision tower of {type(model).__name__}")
    return found


@contextlib.contextmanager
def isolated_vision_tokens(model: torch.nn.Module) -> Iterator[int]:
    """Zero every vision attention module's output, so no vision token sees another's pixels.

    Yields the number of hooked modules; the hooks are removed on exit (also on error).
    """

    def zero_output(module, args, output):
        if isinstance(output, tuple):
            return (torch.zeros_like(output[0]), *output[1:])
        return torch.zeros_like(output)

    handles = [m.register_forward_hook(zero_output) for m in vision_attention_modules(model)]
    try:
        yield len(handles)
    finally:
        for h in handles:
            h.remove()


def language_model(model: torch.nn.Module) -> torch.nn.Module:
    """The decoder that receives the merged (text + image) input embeddings."""
    inner = getattr(model, "model", model)
    for name in ("language_model", "text_model"):
        sub = getattr(inner, name, None)
        if isinstance(sub, torch.nn.Module):
            return sub
    return model.get_decoder()


def flipped(image: Image.Image, boxes: Sequence[Sequence[float]]) -> Image.Image:
    """A copy of ``image`` with every pixel inside ``boxes`` moved by half the colour range.

    Box edges are rounded to whole pixels (a pixel is flipped when its centre is inside).
    ``(v + 128) % 256`` changes every channel by 128, whatever the colour (255 - v would leave
    mid-grey unchanged).
    """
    arr = np.asarray(image.convert("RGB")).copy()
    height, width = arr.shape[:2]
    for x0, y0, x1, y1 in boxes:
        c0, c1 = int(np.clip(round(x0), 0, width)), int(np.clip(round(x1), 0, width))
        r0, r1 = int(np.clip(round(y0), 0, height)), int(np.clip(round(y1), 0, height))
        arr[r0:r1, c0:c1] = (arr[r0:r1, c0:c1].astype(np.int16) + 128) % 256
    return Image.fromarray(arr.astype(np.uint8))


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """Random RGB noise: every pixel differs from its neighbours, so every flip is visible."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


@dataclass
class BoxComparison:
    """Measured vs claimed token boxes of one image (``[n_grid_tokens, 4]`` each, x0 y0 x1 y1).

    An edge is measured as an interval ``[measured_lo, measured_hi]``: a point between two
    neighbours, but for an outer edge whose dependency reaches the image's border the true edge can
    be anywhere within one bleed of that border (the filter's spread hides it).
    """

    measured_lo: np.ndarray
    measured_hi: np.ndarray
    claimed: np.ndarray
    tolerance_px: float  # half a stripe, a pixel, and 15% of the bleed (the larger axis)
    bleed_px: tuple[float, float]  # the resize filter's spread, measured (x, y)

    @property
    def measured(self) -> np.ndarray:  # [n, 4] the measured edges (middle of each interval)
        return (self.measured_lo + self.measured_hi) / 2.0

    @property
    def errors(self) -> np.ndarray:  # [n, 4] distance of each claimed edge from its measured interval
        return np.maximum(np.maximum(self.measured_lo - self.claimed, self.claimed - self.measured_hi), 0.0)

    @property
    def max_error_px(self) -> float:
        return float(self.errors.max())

    def worst(self) -> str:
        """A readable line about the worst token, for assertion messages."""
        i = int(self.errors.max(axis=1).argmax())
        return (
            f"token {i}: claimed {np.round(self.claimed[i], 2).tolist()}, measured "
            f"{np.round(self.measured_lo[i], 2).tolist()}..{np.round(self.measured_hi[i], 2).tolist()} "
            f"(tolerance {self.tolerance_px:.2f} px, bleed {self.bleed_px[0]:.1f}/{self.bleed_px[1]:.1f} px)"
        )


class GeometryOracle:
    """Measures which pixels each image token's LM input embedding depends on (module docstring)."""

    def __init__(self, model: torch.nn.Module, adapter, prompt: str = "describe the image .") -> None:
        self.model = model
        self.adapter = adapter
        self.prompt = prompt
        self.passes = 0  # forward passes run so far (to keep the tests' cost visible)

    # ----- forward passes -------------------------------------------------------------------
    def embeddings(self, image: Image.Image) -> tuple[np.ndarray, np.ndarray, object]:
        """``(grid, other, prepared)``: the LM input embeddings of the grid tokens ``[n_grid, d]`` (grid
        order) and of the image tokens outside the grid ``[n_other, d]`` (sequence order)."""
        prepared = self.adapter.build_inputs(image, self.prompt)
        embeds = self._input_embeddings(prepared)[0]  # [T, hidden]
        grid = prepared.grid
        others = prepared.info.get("vision", {}).get("non_grid_positions")
        other_pos = np.asarray(others[0], dtype=np.int64) if others is not None else np.zeros(0, np.int64)
        return embeds[grid.positions], embeds[other_pos], prepared

    def grid_embeddings(self, images: Sequence[Image.Image], chunk: int = 32) -> list[np.ndarray]:
        """The grid tokens' LM input embeddings ``[n_grid, d]`` of each image (all of one size).

        Images of one size give inputs of one shape, so they run as one batch, stacked on dim 0 as
        the adapter stacks a batch of prompts about one image (the family's own batch path).
        """
        out: list[np.ndarray] = []
        for i in range(0, len(images), chunk):
            parts = [self.adapter.build_inputs(im, self.prompt) for im in images[i : i + chunk]]
            tensors = {k: torch.cat([p.tensors[k] for p in parts], dim=0) for k in parts[0].tensors}
            batch = type(parts[0])(
                tensors,
                [p.grid for p in parts],
                parts[0].prompt_len,
                [self.prompt] * len(parts),
                parts[0].info,
            )
            embeds = self._input_embeddings(batch)  # [batch, T, hidden]
            out.extend(embeds[b][p.grid.positions] for b, p in enumerate(parts))
        return out

    def _input_embeddings(self, prepared) -> np.ndarray:
        """``[batch, T, hidden]``: the LM input embeddings, vision tokens isolated, LM not run."""
        stop = language_model(self.model).register_forward_pre_hook(self._stop, with_kwargs=True)
        try:
            with torch.no_grad(), isolated_vision_tokens(self.model):
                self.model(**self.adapter.prefill_kwargs(self.model, prepared))
        except _ReachedLanguageModel as reached:
            embeds = reached.inputs_embeds.detach().double().cpu().numpy()
        else:
            raise AssertionError("the forward pass never reached the language model")
        finally:
            stop.remove()
        self.passes += int(embeds.shape[0])
        return embeds

    @staticmethod
    def _stop(module, args, kwargs):
        embeds = kwargs.get("inputs_embeds")
        if embeds is None:
            raise AssertionError("the language model was called without inputs_embeds")
        raise _ReachedLanguageModel(embeds)

    def changed(self, image: Image.Image, boxes: Sequence[Sequence[float]], base=None) -> np.ndarray:
        """Boolean ``[n_grid]``: which grid tokens change when the pixels in ``boxes`` are flipped."""
        return self.changed_many(image, [boxes], base)[0]

    def changed_many(
        self, image: Image.Image, probes: Sequence[Sequence[Sequence[float]]], base=None
    ) -> list[np.ndarray]:
        """For each probe (a list of boxes flipped together), which grid tokens change (batched)."""
        base_grid = (base if base is not None else self.embeddings(image))[0]
        return [_differs(base_grid, e) for e in self.grid_embeddings([flipped(image, p) for p in probes])]

    def tokens_reached_by(self, image: Image.Image, box: Sequence[float]) -> np.ndarray:
        """Grid-token indices whose embedding changes when the pixels inside ``box`` are flipped."""
        return np.flatnonzero(self.changed(image, [box]))

    # ----- measured boxes -------------------------------------------------------------------
    def measure_boxes(
        self, image: Image.Image, stripe_px: int | None = None, axes: Sequence[int] = (0, 1)
    ) -> BoxComparison:
        """Measure every grid token's pixel box with stripe probes and compare with the claimed one.

        Along x: the image is cut into vertical stripes ``stripe_px`` wide; pass ``j`` flips every
        stripe ``s`` with ``s % period == j`` (the period is wider than any token's dependency range,
        so a token meets at most one flipped stripe per pass). The passes a token changes in give its
        range of stripes; the adapter's claimed box is used only to pick which repeat of the period
        it is (a mistake of less than half a period cannot alias). Same along y with horizontal
        stripes. The resize filter widens each range by its "bleed" on both sides, equally for two
        neighbours, so the edge between two neighbours is the midpoint of the overlap of their
        ranges; an outer edge is the range's end narrowed by the median bleed, or the image's edge
        when the range reaches it. ``axes`` limits the measurement to x (0) or y (1); the other
        axis keeps the claimed edges.
        """
        base = self.embeddings(image)
        grid = base[2].grid
        claimed = grid.token_boxes
        width, height = image.size
        lo_edges, hi_edges = claimed.copy(), claimed.copy()
        tolerances, bleeds = [], [0.0, 0.0]
        for axis in axes:
            extent = (width, height)[axis]
            sizes = claimed[:, axis + 2] - claimed[:, axis]
            w = int(stripe_px or max(1, round(float(np.median(sizes)) / 4.0)))
            n_stripes = int(np.ceil(extent / w))
            # a range is a token plus the filter's bleed on each side (about two resized pixels, more
            # where a processor resizes twice, as Idefics3's tiles): two tokens fit in a period
            period = min(int(np.ceil((2.0 * sizes.max() + 8.0) / w)) + 2, n_stripes)
            probes = []
            for j in range(period):
                stripes = [(s * w, s * w + w) for s in range(j, n_stripes, period)]
                probes.append([(a, 0, b, height) if axis == 0 else (0, a, width, b) for a, b in stripes])
            hits = np.stack(self.changed_many(image, probes, base=base), axis=1)  # [token, residue]
            lo, hi = _stripe_ranges(hits, claimed[:, axis] / w, claimed[:, axis + 2] / w, n_stripes)
            start = lo * w  # [n] first pixel the token depends on
            end = np.minimum(hi * w, extent)  # [n] one past the last
            first, last, bleed = _edges_from_ranges(start, end, grid.rows, grid.cols, axis, extent)
            for col, (lo, hi) in ((axis, first), (axis + 2, last)):
                lo_edges[:, col], hi_edges[:, col] = lo, hi
            # quantisation (half a stripe) plus the filter's slight asymmetry (PIL rounds tiny tail
            # weights to zero unevenly: about a tenth of the bleed, measured on 1000 px -> 56 px)
            tolerances.append(w / 2.0 + 1.0 + 0.15 * bleed)
            bleeds[axis] = bleed
        return BoxComparison(lo_edges, hi_edges, claimed, max(tolerances), (bleeds[0], bleeds[1]))

    # ----- regions --------------------------------------------------------------------------
    def region_reach(self, image: Image.Image, boxes: Sequence[Sequence[float]]) -> list[np.ndarray]:
        """For each pixel box, the grid tokens that see it (one flip pass per box)."""
        return [np.flatnonzero(c) for c in self.changed_many(image, [[b] for b in boxes])]


def _differs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per token (row): did the embedding change beyond float noise?"""
    scale = max(float(np.abs(a).max()), 1e-12)
    return np.abs(a - b).max(axis=1) > 1e-6 * scale


def _stripe_ranges(
    hits: np.ndarray, claimed_lo: np.ndarray, claimed_hi: np.ndarray, n_stripes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per token, the stripe range ``[lo, hi)`` it depends on, from the residues it changed at.

    The hit residues of a token lie on one cyclic arc (its range is shorter than the period; a
    stripe inside the range can miss when the filter weights on it happen to cancel, so gaps are
    bridged); the arc is the shortest one holding every hit, and it is placed in the repeat of the
    period nearest the claimed range's centre.
    """
    n, period = hits.shape
    lo = np.zeros(n)
    hi = np.zeros(n)
    for t in range(n):
        res = np.flatnonzero(hits[t])
        if res.size == 0:
            raise AssertionError(f"grid token {t} changed for no stripe: it sees none of the image")
        # the largest cyclic gap between hit residues lies outside the token's range
        gaps = np.diff(np.append(res, res[0] + period))  # gap after each hit
        after = int(gaps.argmax())
        if gaps[after] < 2:
            raise AssertionError(
                f"grid token {t} changed for every stripe residue of {period}: its pixels span more than "
                "the stripe period"
            )
        start = int(res[(after + 1) % res.size])
        length = period - int(gaps[after]) + 1
        centre = (claimed_lo[t] + claimed_hi[t]) / 2.0
        k = np.round((centre - length / 2.0 - start) / period)
        first = int(start + k * period)
        lo[t] = max(first, 0)
        hi[t] = min(first + length, n_stripes)
    return lo, hi


def _edges_from_ranges(
    start: np.ndarray, end: np.ndarray, rows: int, cols: int, axis: int, extent: float
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], float]:
    """Token edges along ``axis`` from dependency ranges ``[start, end)`` (grid order).

    Between two neighbours the edge is the midpoint of their ranges' overlap (the filter widens
    both equally). An outer edge is the range's end narrowed by the median bleed; when the range
    reaches the image's border, the edge is anywhere from one bleed inside the border to the border.
    Returns ``((first_lo, first_hi), (last_lo, last_hi), bleed)``, per token.
    """
    s = start.reshape(rows, cols).astype(np.float64)
    e = end.reshape(rows, cols).astype(np.float64)
    if axis == 1:
        s, e = s.T, e.T  # neighbours along y become neighbours along the last axis
    overlap = e[:, :-1] - s[:, 1:]
    bleed = max(float(np.median(overlap)) / 2.0, 0.0) if overlap.size else 0.0
    first_hi = np.where(s <= 0, bleed, s + bleed)
    first_lo = np.where(s <= 0, 0.0, s + bleed)
    last_lo = np.where(e >= extent, extent - bleed, e - bleed)
    last_hi = np.where(e >= extent, float(extent), e - bleed)
    shared = (e[:, :-1] + s[:, 1:]) / 2.0
    for arr in (last_lo, last_hi):
        arr[:, :-1] = shared
    for arr in (first_lo, first_hi):
        arr[:, 1:] = shared
    out = []
    for arr in (first_lo, first_hi, last_lo, last_hi):
        arr = np.clip(arr, 0.0, extent)
        out.append((arr.T if axis == 1 else arr).reshape(-1))
    return (out[0], out[1]), (out[2], out[3]), bleed
