"""Head sets: top-K gaze heads, seeded random controls, all heads, explicit lists; their files.

A head is ``(layer, head)`` with 0-based indices into the language model's decoder layers and
query heads. The authors' ranking format is a JSON list of ``{"layer", "head", "score"}`` sorted
by score; CSV files have a ``layer,head[,score]`` header.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gaze_explorer.core.errors import HeadSpecError

Head = tuple[int, int]


@dataclass(frozen=True)
class HeadSet:
    """A named, sorted, duplicate-free set of (layer, head) pairs."""

    name: str
    heads: tuple[Head, ...]

    def __post_init__(self) -> None:
        cleaned = tuple(sorted({(int(l), int(h)) for l, h in self.heads}))
        object.__setattr__(self, "heads", cleaned)

    def __len__(self) -> int:
        return len(self.heads)

    def __contains__(self, item: object) -> bool:
        return item in set(self.heads)

    def mask(self, n_layers: int, n_heads: int) -> np.ndarray:
        """Boolean ``[layer, head]`` mask of this set. Raises HeadSpecError if out of range."""
        self.validate(n_layers, n_heads)
        m = np.zeros((n_layers, n_heads), dtype=bool)
        for l, h in self.heads:
            m[l, h] = True
        return m

    def by_layer(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for l, h in self.heads:
            out.setdefault(l, []).append(h)
        return out

    def validate(self, n_layers: int, n_heads: int, attention_layers: Iterable[int] | None = None) -> None:
        """Raise HeadSpecError for a head out of range or, when ``attention_layers`` (the model's
        softmax-attention layers) is given, for a head in a linear-attention layer."""
        bad = [(l, h) for l, h in self.heads if not (0 <= l < n_layers and 0 <= h < n_heads)]
        if bad:
            shown = ", ".join(f"L{l}H{h}" for l, h in bad[:5])
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
    return HeadSet("all", tuple((l, h) for l in range(n_layers) for h in range(n_heads)))


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


def random_control_heads(
    scores: np.ndarray,
    k: int,
    seed: int = 0,
    percentile: float = 5.0,
    exclude: Iterable[Head] = (),
) -> HeadSet:
    """``k`` seeded random heads among those scoring at or below ``percentile``, minus ``exclude``.

    If the bottom percentile holds fewer than ``k`` eligible heads, the pool grows to the lowest
    scoring eligible heads until it has ``k`` (so the control is always the same size as the set
    it controls for).
    """
    scores = np.asarray(scores, dtype=np.float64)
    n_layers, n_heads = scores.shape
    excluded = {(int(l), int(h)) for l, h in exclude}
    eligible = [
        (layer, h) for layer in range(n_layers) for h in range(n_heads)
        if (layer, h) not in excluded and not np.isnan(scores[layer, h])  # NaN: a linear-attention layer
    ]  # fmt: skip
    if not 1 <= k <= len(eligible):
        raise HeadSpecError(f"a random control of {k} heads needs at least {k} eligible heads, have {len(eligible)}")
    threshold = float(np.nanpercentile(scores, percentile))
    pool = [hd for hd in eligible if scores[hd] <= threshold]
    if len(pool) < k:
        pool = sorted(eligible, key=lambda hd: (scores[hd], hd))[:k]
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(pool), size=k, replace=False)
    return HeadSet(f"random-{k}", tuple(pool[i] for i in sorted(picked)))


def parse_head_spec(spec: str) -> tuple[str, int | None]:
    """Parse ``top:K``, ``random:K``, ``all`` into (kind, K). Anything else is taken as a file path."""
    text = spec.strip()
    if text == "all":
        return "all", None
    for kind in ("top", "random"):
        if text.startswith(kind + ":"):
            try:
                k = int(text[len(kind) + 1 :])
            except ValueError as exc:
                raise HeadSpecError(f"'{spec}': K must be a whole number, as in {kind}:10") from exc
            if k < 1:
                raise HeadSpecError(f"'{spec}': K must be at least 1")
            return kind, k
    return "file", None


def _head_from_record(rec: object, where: str) -> tuple[Head, float | None]:
    if not isinstance(rec, dict):
        raise HeadSpecError(f"{where}: each entry must be an object with 'layer' and 'head', got {rec!r}")
    try:
        layer, head = rec["layer"], rec["head"]
    except KeyError as exc:
        raise HeadSpecError(f"{where}: entry {rec!r} lacks {exc.args[0]!r}") from exc
    if isinstance(layer, bool) or isinstance(head, bool) or not isinstance(layer, int) or not isinstance(head, int):
        raise HeadSpecError(f"{where}: 'layer' and 'head' must be whole numbers, got {rec!r}")
    score = rec.get("score")
    if score is not None and (not isinstance(score, int | float) or isinstance(score, bool) or not math.isfinite(score)):
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
            raise HeadSpecError(f"{source}: expected a JSON list of {{\"layer\", \"head\", \"score\"}} objects")
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
                raise HeadSpecError(f"{source} line {i}: layer and head must be whole numbers, got {row}") from exc
            heads.append((layer, head))
            scores.append(score)
    else:
        raise HeadSpecError(f"{source}: unknown head-list format {fmt!r} (use .json or .csv)")
    if not heads:
        raise HeadSpecError(f"{source}: the list names no heads")
    seen: set[Head] = set()
    dups = sorted({hd for hd in heads if hd in seen or seen.add(hd)})  # type: ignore[func-returns-value]
    if dups:
        shown = ", ".join(f"L{l}H{h}" for l, h in dups[:5])
        raise HeadSpecError(f"{source}: duplicate heads {shown}")
    if any((l < 0 or h < 0) for l, h in heads):
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
        {"layer": l, "head": h, "score": (None if scores is None else float(scores[l, h]))} for l, h in heads.heads
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
