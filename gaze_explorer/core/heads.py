"""Head sets: top-K heads by a criterion, seeded random controls, all heads, explicit lists; their files.

:func:`choose_heads` is the one place a head set is chosen from a spec (the CLI, the app, the
evaluations and the exports call it), with one policy for the random control
(:class:`ControlPool`, :data:`DEFAULT_CONTROL_POOL`, :data:`DEFAULT_CONTROL_SEED`).

A head is ``(layer, head)`` with 0-based indices into the language model's decoder layers and
query heads. The authors' ranking format is a JSON list of ``{"layer", "head", "score"}`` sorted
by score; CSV files have a ``layer,head[,score]`` header.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gaze_explorer.core.errors import ControlPoolError, HeadSpecError
from gaze_explorer.core.protocol_choices import CRITERIA

Head = tuple[int, int]


@dataclass(frozen=True)
class HeadSet:
    """A named, sorted, duplicate-free set of (layer, head) pairs."""

    name: str
    heads: tuple[Head, ...]

    def __post_init__(self) -> None:
        cleaned = tuple(sorted({(int(layer), int(h)) for layer, h in self.heads}))
        object.__setattr__(self, "heads", cleaned)

    def __len__(self) -> int:
        return len(self.heads)

    def __contains__(self, item: object) -> bool:
        return item in set(self.heads)

    def mask(self, n_layers: int, n_heads: int) -> np.ndarray:
        """Boolean ``[layer, head]`` mask of this set. Raises HeadSpecError if out of range."""
        self.validate(n_layers, n_heads)
        m = np.zeros((n_layers, n_heads), dtype=bool)
        for layer, h in self.heads:
            m[layer, h] = True
        return m

    def by_layer(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for layer, h in self.heads:
            out.setdefault(layer, []).append(h)
        return out

    def validate(self, n_layers: int, n_heads: int, attention_layers: Iterable[int] | None = None) -> None:
        """Raise HeadSpecError for a head out of range or, when ``attention_layers`` (the model's
        softmax-attention layers) is given, for a head in a linear-attention layer."""
        bad = [(layer, h) for layer, h in self.heads if not (0 <= layer < n_layers and 0 <= h < n_heads)]
        if bad:
            shown = ", ".join(f"L{layer}H{h}" for layer, h in bad[:5])
            raise HeadSpecError(
                f"{len(bad)} head(s) out of range for a model with {n_layers} layers x {n_heads} heads: {shown}"
            )
        if attention_layers is None:
            return
        allowed = {int(x) for x in attention_layers}
        linear = [(layer, h) for layer, h in self.heads if layer not in allowed]
        if linear:
            shown = ", ".join(f"L{layer}H{h}" for layer, h in linear[:5])
            raise HeadSpecError(
                f"{len(linear)} head(s) lie in linear-attention layers, which have no attention to steer "
                f"or capture: {shown}; this model's softmax-attention layers are {sorted(allowed)}"
            )


def all_heads(n_layers: int, n_heads: int) -> HeadSet:
    return HeadSet("all", tuple((layer, h) for layer in range(n_layers) for h in range(n_heads)))


def ranking(scores: np.ndarray) -> list[dict]:
    """The authors' ranking: every head as ``{"layer", "head", "score"}``, best first.

    Heads scored NaN (layers without softmax attention, e.g. Qwen3.5's linear-attention layers)
    are not applicable and left out."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, axis=None, kind="stable")
    order = order[~np.isnan(scores.flat[order])]
    n_heads = scores.shape[1]
    return [
        {"layer": int(i // n_heads), "head": int(i % n_heads), "score": float(scores.flat[i])} for i in order
    ]


def top_k_heads(scores: np.ndarray, k: int) -> HeadSet:
    """The ``k`` heads with the highest score (ties broken by layer, then head)."""
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise HeadSpecError(f"scores must be a [layer, head] grid, got shape {scores.shape}")
    n_scored = int(np.count_nonzero(~np.isnan(scores)))
    if not 1 <= k <= n_scored:
        raise HeadSpecError(f"top-K needs 1 <= K <= {n_scored} heads, got K={k}")
    rows = ranking(scores)[:k]
    return HeadSet(f"top-{k}", tuple((r["layer"], r["head"]) for r in rows))


# ---- choosing a head set: the one policy ---------------------------------------------------------
CONTROL_POOL_KINDS = ("percentile", "band", "all-non-gaze")
DEFAULT_CONTROL_SEED = 0
# The paper's headline non-gaze control (Sec. A, Tab. 3): the layer band of the top-K gaze heads,
# without them. The authors' code draws below the 5th percentile of gaze score instead
# (AUTHORS_CONTROL_POOL), which on small models holds fewer than K heads (5 of the demo's 96).
DEFAULT_CONTROL_POOL = "band"
AUTHORS_CONTROL_POOL = "percentile:5"


@dataclass(frozen=True)
class HeadSpec:
    """A parsed head-set spec: ``CRITERION:K`` (``gaze:100``, ``image:100``, ``localization:100``;
    ``top:K`` is ``gaze:K``), ``random:K``, ``all``, or a head-list file. ``HeadSpec("custom")``
    (hand-picked heads, the app's grid) is built directly, never parsed from text."""

    kind: str  # "top" | "random" | "all" | "custom" | "file"
    k: int | None = None
    criterion: str | None = None  # for "top": which score ranks the heads
    path: str | None = None  # for "file"

    @classmethod
    def parse(cls, spec: str) -> HeadSpec:
        """Parse a spec; anything that is not one of the named forms is taken as a file path."""
        text = str(spec).strip()
        if text == "all":
            return cls("all")
        name, sep, value = text.partition(":")
        if sep and name in (*CRITERIA, "top", "random"):
            try:
                k = int(value)
            except ValueError as exc:
                raise HeadSpecError(f"'{spec}': K must be a whole number, as in {name}:10") from exc
            if k < 1:
                raise HeadSpecError(f"'{spec}': K must be at least 1")
            if name == "random":
                return cls("random", k)
            return cls("top", k, "gaze" if name == "top" else name)
        return cls("file", path=text)

    def __str__(self) -> str:
        if self.kind == "top":
            return f"{self.criterion}:{self.k}"
        if self.kind == "random":
            return f"random:{self.k}"
        return str(self.path) if self.kind == "file" else self.kind


def parse_head_spec(spec: str) -> HeadSpec:
    """Parse ``gaze:K`` (alias ``top:K``), ``image:K``, ``localization:K``, ``random:K``, ``all`` or
    a file path (see :class:`HeadSpec`)."""
    return HeadSpec.parse(spec)


@dataclass(frozen=True)
class ControlPool:
    """Which heads a random control may be drawn from; never the top-K gaze heads, nor heads
    without a score (NaN: a linear-attention layer).

    - ``percentile:P``: heads whose gaze score is at or below the P-th percentile of all scores
      (the authors' code; ``percentile:5``);
    - ``band``: every head in the layers from the lowest to the highest layer that the top-K gaze
      heads occupy (the paper's headline control);
    - ``all-non-gaze``: every other head.
    """

    kind: str
    percentile: float | None = None

    @classmethod
    def parse(cls, text: str | ControlPool) -> ControlPool:
        if isinstance(text, ControlPool):
            return text
        raw = str(text).strip()
        name, sep, value = raw.partition(":")
        if name == "percentile" and sep:
            try:
                p = float(value)
            except ValueError:
                p = float("nan")
            if not 0 <= p <= 100:
                raise HeadSpecError(
                    f"control pool {raw!r}: P must be a number from 0 to 100, as in percentile:5"
                )
            return cls("percentile", p)
        if raw in ("band", "all-non-gaze"):
            return cls(raw)
        raise HeadSpecError(
            f"unknown control pool {raw!r}; use percentile:P (e.g. percentile:5), band or all-non-gaze"
        )

    def __str__(self) -> str:
        return f"percentile:{self.percentile:g}" if self.kind == "percentile" else self.kind

    def heads(self, gaze_scores: np.ndarray, top: Iterable[Head]) -> list[Head]:
        """The pool for the control of the gaze heads ``top``, in (layer, head) order."""
        scores = np.asarray(gaze_scores, dtype=np.float64)
        n_layers, n_heads = scores.shape
        excluded = {(int(layer), int(h)) for layer, h in top}
        candidates = [
            (layer, h)
            for layer in range(n_layers)
            for h in range(n_heads)
            if (layer, h) not in excluded and not np.isnan(scores[layer, h])
        ]
        if self.kind == "percentile":
            threshold = float(np.nanpercentile(scores, self.percentile))
            return [hd for hd in candidates if scores[hd] <= threshold]
        if self.kind == "band":
            lo, hi = self.band_layers(excluded) or (0, -1)
            return [hd for hd in candidates if lo <= hd[0] <= hi]
        return candidates

    def band_layers(self, top: Iterable[Head]) -> tuple[int, int] | None:
        """The layers ``(lo, hi)`` a ``band`` pool spans: from the lowest to the highest layer that the
        gaze heads ``top`` occupy (the paper's band: "the layer range of the top-K gaze heads"); None for
        the other pools and for no heads."""
        layers = [int(layer) for layer, _ in top]
        if self.kind != "band" or not layers:
            return None
        return min(layers), max(layers)


def default_top_k(n_layers: int, n_heads: int, demo: bool) -> int:
    """The K a head set defaults to (the app, the CLI's evaluation): 10% of the heads for the demo model; the paper's 100 otherwise (at most half the heads)."""
    total = n_layers * n_heads
    return max(1, round(0.1 * total)) if demo else max(1, min(100, total // 2))


def default_control_pool(demo: bool = False) -> str:
    """The control pool used when none is asked for: :data:`DEFAULT_CONTROL_POOL` (``band``) on
    every model, the demo included (``demo`` is kept for the callers that pass it; the band of the
    demo's top-10 gaze heads holds 38 others, where the 5th percentile held only 5)."""
    return DEFAULT_CONTROL_POOL


@dataclass(frozen=True)
class HeadChoice:
    """A chosen head set and how it was chosen (what a session or an evaluation JSON records)."""

    heads: HeadSet
    spec: str  # e.g. "gaze:10", "random:10", "all", "custom", or the file's path
    criterion: str | None = None  # the score that ranked the heads (top-K; "gaze" for a control)
    k: int | None = None
    seed: int | None = None  # random controls only
    pool: str | None = None  # random controls only
    pool_size: int | None = None  # random controls only: how many heads the draw was made from
    pool_layers: tuple[int, int] | None = None  # a band pool: the first and last layer it spans
    # image / localization top-K: how many heads pass the criterion's own selection (MaskCD's z > 2.5,
    # Kang et al.'s two criteria and filters) and the parameters it ran with; beyond n_selected,
    # the top-K is filled by the project's order (core.criteria.criterion_selection)
    n_selected: int | None = None
    criterion_params: Mapping | None = field(default=None, hash=False)

    def to_dict(self) -> dict:
        return {
            "spec": self.spec,
            "name": self.heads.name,
            "criterion": self.criterion,
            "k": self.k,
            "seed": self.seed,
            "pool": self.pool,
            "pool_size": self.pool_size,
            "pool_layers": None if self.pool_layers is None else list(self.pool_layers),
            "n_selected": self.n_selected,
            "criterion_params": None if self.criterion_params is None else dict(self.criterion_params),
            "heads": [list(hd) for hd in self.heads.heads],
        }

    def fill_in_note(self) -> str | None:
        """One line when K exceeds the heads that pass the criterion's own selection (the rest are
        fill-ins by the project's order), else None."""
        if self.n_selected is None or self.k is None or self.k <= self.n_selected:
            return None
        beyond = (self.criterion_params or {}).get("fill_in", "the project's order")
        return (
            f"note: {self.spec}: only {self.n_selected} head(s) pass the {self.criterion} criterion's own "
            f"selection; the other {self.k - self.n_selected} are fill-ins by {beyond}"
        )


def random_control(
    gaze_scores: np.ndarray,
    k: int,
    *,
    seed: int = DEFAULT_CONTROL_SEED,
    pool: str | ControlPool = DEFAULT_CONTROL_POOL,
) -> HeadChoice:
    """``k`` heads drawn uniformly without replacement (seeded) from the control pool of the top-K
    gaze heads (see :class:`ControlPool`).

    Raises ControlPoolError when the pool holds fewer than ``k`` heads: the control is then not
    what it claims to be, and is never padded with the lowest-scoring heads.
    """
    pool = ControlPool.parse(pool)
    top = top_k_heads(gaze_scores, k)
    candidates = pool.heads(gaze_scores, top.heads)
    if len(candidates) < k:
        advice = {  # what is wider than the pool that was too small
            "percentile": "a smaller K or a wider pool (a higher percentile, or all-non-gaze)",
            "band": "a smaller K or a wider pool (all-non-gaze, or percentile:P)",
            "all-non-gaze": "a smaller K (no pool is wider than all-non-gaze)",
        }[pool.kind]
        raise ControlPoolError(
            f"the random control's pool ({pool}) holds {len(candidates)} head(s), fewer than K={k}: use "
            f"{advice}"
        )
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(candidates), size=k, replace=False)
    heads = HeadSet(f"random-{k}", tuple(candidates[i] for i in sorted(picked)))
    return HeadChoice(
        heads, f"random:{k}", "gaze", k, int(seed), str(pool), len(candidates), pool.band_layers(top.heads)
    )


def choose_heads(
    spec: str | HeadSpec,
    n_layers: int,
    n_heads: int,
    *,
    scores: Mapping[str, np.ndarray] | np.ndarray | None = None,
    seed: int = DEFAULT_CONTROL_SEED,
    pool: str | ControlPool = DEFAULT_CONTROL_POOL,
    custom: Iterable[Head] = (),
    attention_layers: Iterable[int] | None = None,
    selection: Mapping[str, Mapping] | None = None,
) -> HeadChoice:
    """The head set of ``spec`` for a model of ``n_layers`` x ``n_heads`` heads: the one policy.

    ``scores`` maps a criterion (``gaze``, ``image``, ``localization``) to its ``[layer, head]``
    scores (higher is better; NaN: not applicable); a bare array is the gaze scores. ``CRITERION:K``
    takes the K best heads by that criterion; ``random:K`` draws K heads (``seed``) from the
    control ``pool`` of the top-K gaze heads (raises ControlPoolError when the pool is smaller
    than K); ``all`` is every head (every head with a gaze score when the scores mark some not
    applicable with NaN: linear-attention layers); ``custom`` is ``custom``; a file is read and checked against
    the model. ``attention_layers`` (the model's softmax-attention layers, when it has others:
    Qwen3.5) narrows ``all`` to them and refuses custom or listed heads outside them, with or
    without scores. ``selection`` (``core.criteria.criterion_selection``: per criterion
    ``{"n_selected", "params"}``) is recorded in a criterion's top-K choice. Raises HeadSpecError
    when the scores a spec needs are missing or the wrong shape.
    """
    spec = spec if isinstance(spec, HeadSpec) else HeadSpec.parse(spec)
    layers = None if attention_layers is None else frozenset(int(x) for x in attention_layers)
    if spec.kind == "all":
        heads = all_heads(n_layers, n_heads)
        gaze = scores if isinstance(scores, np.ndarray) else dict(scores or {}).get("gaze")
        keep = [hd for hd in heads.heads if layers is None or hd[0] in layers]
        if gaze is not None and np.shape(gaze) == (n_layers, n_heads) and np.isnan(gaze).any():
            # NaN-scored heads lie in linear-attention layers (Qwen3.5): nothing to steer there
            keep = [hd for hd in keep if not np.isnan(gaze[hd])]
        return HeadChoice(HeadSet("all", tuple(keep)), "all")
    if spec.kind == "custom":
        heads = HeadSet("custom", tuple(custom))
        heads.validate(n_layers, n_heads, layers)
        return HeadChoice(heads, "custom")
    if spec.kind == "file":
        heads = load_head_list(spec.path)
        heads.validate(n_layers, n_heads, layers)
        return HeadChoice(heads, str(spec.path))
    by_criterion = {"gaze": scores} if isinstance(scores, np.ndarray) else dict(scores or {})
    criterion = spec.criterion if spec.kind == "top" else "gaze"
    grid = by_criterion.get(criterion)
    if grid is None:
        raise HeadSpecError(f"'{spec}' needs {criterion} scores (run discovery first)")
    grid = np.asarray(grid, dtype=np.float64)
    if grid.shape != (n_layers, n_heads):
        raise HeadSpecError(
            f"{criterion} scores are {grid.shape[0]} x {grid.shape[1]}, but the model has {n_layers} x {n_heads} heads"
            if grid.ndim == 2
            else f"{criterion} scores must be a [layer, head] grid, got shape {grid.shape}"
        )
    if spec.kind == "random":
        return random_control(grid, spec.k, seed=seed, pool=pool)
    heads = top_k_heads(grid, spec.k)
    if criterion != "gaze":
        heads = HeadSet(f"{criterion}-{spec.k}", heads.heads)
    own = (selection or {}).get(criterion)
    if own is None:
        return HeadChoice(heads, str(spec), criterion, spec.k)
    n_selected, params = int(own["n_selected"]), dict(own["params"])
    return HeadChoice(heads, str(spec), criterion, spec.k, n_selected=n_selected, criterion_params=params)


def _head_from_record(rec: object, where: str) -> tuple[Head, float | None]:
    if not isinstance(rec, dict):
        raise HeadSpecError(f"{where}: each entry must be an object with 'layer' and 'head', got {rec!r}")
    try:
        layer, head = rec["layer"], rec["head"]
    except KeyError as exc:
        raise HeadSpecError(f"{where}: entry {rec!r} lacks {exc.args[0]!r}") from exc
    if (
        isinstance(layer, bool)
        or isinstance(head, bool)
        or not isinstance(layer, int)
        or not isinstance(head, int)
    ):
        raise HeadSpecError(f"{where}: 'layer' and 'head' must be whole numbers, got {rec!r}")
    score = rec.get("score")
    if score is not None and (
        not isinstance(score, int | float) or isinstance(score, bool) or not math.isfinite(score)
    ):
        raise HeadSpecError(f"{where}: 'score' must be a finite number, got {score!r}")
    return (layer, head), (None if score is None else float(score))


def parse_head_list(text: str, fmt: str, source: str = "head list") -> tuple[HeadSet, list[float | None]]:
    """Parse a head list (``fmt`` is ``json`` or ``csv``). Duplicates are an error."""
    heads: list[Head] = []
    scores: list[float | None] = []
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HeadSpecError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
        if isinstance(data, dict) and "heads" in data:
            data = data["heads"]
        if not isinstance(data, list):
            raise HeadSpecError(f'{source}: expected a JSON list of {{"layer", "head", "score"}} objects')
        for i, rec in enumerate(data):
            hd, sc = _head_from_record(rec, f"{source} entry {i}")
            heads.append(hd)
            scores.append(sc)
    elif fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or not {"layer", "head"} <= {f.strip() for f in reader.fieldnames}:
            raise HeadSpecError(f"{source}: CSV needs a header with 'layer' and 'head' columns")
        for i, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            try:
                layer, head = int(row["layer"]), int(row["head"])
                score = float(row["score"]) if row.get("score") else None
            except ValueError as exc:
                raise HeadSpecError(
                    f"{source} line {i}: layer and head must be whole numbers, got {row}"
                ) from exc
            heads.append((layer, head))
            scores.append(score)
    else:
        raise HeadSpecError(f"{source}: unknown head-list format {fmt!r} (use .json or .csv)")
    if not heads:
        raise HeadSpecError(f"{source}: the list names no heads")
    seen: set[Head] = set()
    dups = sorted({hd for hd in heads if hd in seen or seen.add(hd)})  # type: ignore[func-returns-value]
    if dups:
        shown = ", ".join(f"L{layer}H{h}" for layer, h in dups[:5])
        raise HeadSpecError(f"{source}: duplicate heads {shown}")
    if any((layer < 0 or h < 0) for layer, h in heads):
        raise HeadSpecError(f"{source}: layer and head indices must be >= 0")
    return HeadSet(Path(source).stem or "custom", tuple(heads)), scores


def load_head_list(path: str | Path, limit: int | None = None) -> HeadSet:
    """Read a JSON (authors' ranking) or CSV head list; ``limit`` keeps the first N entries."""
    p = Path(path)
    fmt = p.suffix.lower().lstrip(".")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise HeadSpecError(f"head list {p} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise HeadSpecError(f"cannot read head list {p}: {exc}") from exc
    heads, _ = parse_head_list(text, fmt, str(p))
    if limit is not None:
        # keep file order (a ranking is best-first)
        order = _file_order(text, fmt, str(p))[:limit]
        heads = HeadSet(heads.name, tuple(order))
    return heads


def _file_order(text: str, fmt: str, source: str) -> list[Head]:
    if fmt == "json":
        data = json.loads(text)
        data = data["heads"] if isinstance(data, dict) else data
        return [(int(r["layer"]), int(r["head"])) for r in data]
    return [(int(r["layer"]), int(r["head"])) for r in csv.DictReader(io.StringIO(text))]


def head_list_records(heads: HeadSet, scores: np.ndarray | None = None) -> list[dict]:
    """Records in the authors' format, sorted by score when scores are given."""
    recs = [
        {"layer": layer, "head": h, "score": (None if scores is None else float(scores[layer, h]))}
        for layer, h in heads.heads
    ]
    if scores is not None:
        recs.sort(key=lambda r: -r["score"])
    return recs


def save_head_list(path: str | Path, heads: HeadSet, scores: np.ndarray | None = None) -> Path:
    """Write JSON (authors' format) or CSV according to the suffix, atomically."""
    p = Path(path)
    recs = head_list_records(heads, scores)
    fmt = p.suffix.lower()
    if fmt == ".json":
        text = json.dumps(recs, indent=1)
    elif fmt == ".csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["layer", "head", "score"])
        for r in recs:
            w.writerow([r["layer"], r["head"], "" if r["score"] is None else repr(r["score"])])
        text = buf.getvalue()
    else:
        raise HeadSpecError(f"cannot write head list {p}: use a .json or .csv file name")
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(p)
    return p
