"""Offline judges: which panel does a generated text describe?

The authors judge with an LLM API; these judges run offline and are deterministic.

- :class:`AttributeJudge` (exact): each panel has ground-truth attributes, a dict of name -> value
  words (``{"colour": "red", "shape": "circle"}``). A panel scores the number of its attributes whose
  value appears in the text as whole words; the best-scoring panel is the choice. Ties go to the
  panel whose matched words appear first in the text; panels that stay tied share the credit.
- :class:`CaptionJudge` (lexical): each panel has a caption. The text is scored against each
  caption with Okapi BM25 (k1=1.2, b=0.75; IDF over the strip's captions, so words every caption
  shares weigh nothing; stop words dropped; each query word counted once so a loop cannot vote
  twice). The best-scoring caption is the choice.

- :class:`CategoryJudge` (COCO region steering): does the text name an object category, or one of
  its synonyms (:data:`COCO_SYNONYMS`, extended with a ``--synonyms`` file)?

All first flag degenerate outputs (:func:`degenerate_reason`): empty text, a repetition loop, or
nothing recognisable. A degenerate output is a miss. A new judge (an API judge, say) only has to
implement :class:`Judge`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

_STOP_TEXT = """a an the and or of in on at to is are was were be been it its this that these those there
    with for from by as into onto over under panel panels comic strip image picture shows show showing
    what which who one i you he she they we his her their our my your"""
STOP_WORDS = frozenset(_STOP_TEXT.split())


def words(text: str) -> list[str]:
    """Lower-case word tokens of ``text`` (letters and digits; apostrophes inside words kept)."""
    return _WORD.findall(str(text).lower())


@dataclass(frozen=True)
class PanelTruth:
    """What is known about a strip's panels: ground-truth attributes and/or captions."""

    attributes: Sequence[Mapping[str, str]] | None = None
    captions: Sequence[str] | None = None

    @property
    def n_panels(self) -> int:
        if self.attributes is not None:
            return len(self.attributes)
        return len(self.captions or ())


@dataclass(frozen=True)
class Judgement:
    """A judge's verdict on one text.

    ``choice`` is the 0-based panel the text is judged to describe (None when degenerate or when no
    panel matches at all); ``best`` all panels tied at the top score; ``scores`` one per panel.
    """

    choice: int | None
    best: tuple[int, ...] = ()
    scores: tuple[float, ...] = ()
    degenerate: bool = False
    reason: str = ""

    def credit(self, target: int) -> float:
        """1 for a hit, 1/n when the target is one of n indistinguishable best panels, else 0."""
        if self.degenerate or self.choice is None or target not in self.best:
            return 0.0
        return 1.0 / len(self.best)

    def to_dict(self) -> dict:
        return {
            "choice": self.choice,
            "best": list(self.best),
            "scores": [round(float(s), 6) for s in self.scores],
            "degenerate": self.degenerate,
            "reason": self.reason,
        }


class Judge(Protocol):
    """Anything that can say which panel a text describes."""

    name: str

    def judge(self, text: str, truth: PanelTruth) -> Judgement: ...


def repetition_loop(tokens: Sequence[str], *, min_repeats: int = 3, min_cover: float = 0.5) -> int | None:
    """The period of a loop at the end of ``tokens``, or None.

    A loop is a block of 1..n/3 tokens repeated back to back at least ``min_repeats`` times (4 for a
    single repeated token) at the end of the text, covering at least ``min_cover`` of it.
    """
    n = len(tokens)
    for period in range(1, n // min_repeats + 1):
        block = list(tokens[n - period :])
        reps = 1
        while (reps + 1) * period <= n and list(tokens[n - (reps + 1) * period : n - reps * period]) == block:
            reps += 1
        needed = max(min_repeats, 4) if period == 1 else min_repeats
        if reps >= needed and reps * period >= min_cover * n:
            return period
    return None


def degenerate_reason(text: str) -> str:
    """``"empty"``, ``"repetition loop"`` or ``""`` (not degenerate on its face)."""
    toks = words(text)
    if not toks:
        return "empty"
    if repetition_loop(toks) is not None:
        return "repetition loop"
    return ""


def _phrase_positions(tokens: Sequence[str], phrase: Sequence[str]) -> list[int]:
    m = len(phrase)
    return [i for i in range(len(tokens) - m + 1) if list(tokens[i : i + m]) == list(phrase)]


@dataclass
class AttributeJudge:
    """The exact judge: match each panel's attribute values against the words of the text.

    ``synonyms`` maps a value to other words that name it (``{"grey": ["gray"]}``).
    """

    synonyms: Mapping[str, Sequence[str]] = field(default_factory=dict)
    name: str = "attributes"

    def _forms(self, value: str) -> list[list[str]]:
        forms = [words(value)]
        forms += [words(s) for s in self.synonyms.get(str(value).lower(), ())]
        return [f for f in forms if f]

    def judge(self, text: str, truth: PanelTruth) -> Judgement:
        if not truth.attributes:
            raise ValueError("the attribute judge needs per-panel attributes")
        reason = degenerate_reason(text)
        if reason:
            return Judgement(None, (), (0.0,) * truth.n_panels, True, reason)
        toks = words(text)
        scores: list[float] = []
        first_seen: list[int] = []
        for attrs in truth.attributes:
            matched = 0
            first = len(toks)
            for value in attrs.values():
                hits = [p for form in self._forms(value) for p in _phrase_positions(toks, form)]
                if hits:
                    matched += 1
                    first = min(first, min(hits))
            scores.append(float(matched))
            first_seen.append(first)
        top = max(scores)
        if top == 0:
            return Judgement(None, (), tuple(scores), True, "no recognisable attributes")
        best = [k for k, s in enumerate(scores) if s == top]
        earliest = min(first_seen[k] for k in best)
        best = [k for k in best if first_seen[k] == earliest]
        return Judgement(best[0], tuple(best), tuple(scores))


@dataclass
class CaptionJudge:
    """The lexical judge: BM25 of the text against each panel's caption."""

    k1: float = 1.2
    b: float = 0.75
    name: str = "captions"

    def scores(self, text: str, captions: Sequence[str]) -> list[float]:
        """BM25 score of ``text`` (the query) against each caption (the documents)."""
        docs = [[w for w in words(c) if w not in STOP_WORDS] for c in captions]
        query = {w for w in words(text) if w not in STOP_WORDS}
        n_docs = len(docs)
        avg_len = (sum(len(d) for d in docs) / n_docs) or 1.0
        df = Counter(w for d in docs for w in set(d))
        out = []
        for d in docs:
            tf = Counter(d)
            s = 0.0
            for w in query:
                if tf[w] == 0:
                    continue
                # IDF is 0 for a word in every caption: it cannot tell the panels apart
                idf = math.log(1.0 + (n_docs - df[w] + 0.5) / (df[w] + 0.5)) if df[w] < n_docs else 0.0
                s += (
                    idf * tf[w] * (self.k1 + 1) / (tf[w] + self.k1 * (1 - self.b + self.b * len(d) / avg_len))
                )
            out.append(s)
        return out

    def judge(self, text: str, truth: PanelTruth) -> Judgement:
        if not truth.captions:
            raise ValueError("the caption judge needs per-panel captions")
        reason = degenerate_reason(text)
        if reason:
            return Judgement(None, (), (0.0,) * len(truth.captions), True, reason)
        scores = self.scores(text, truth.captions)
        top = max(scores)
        if top <= 0.0:
            return Judgement(None, (), tuple(scores), True, "no words in common with any caption")
        best = tuple(k for k, s in enumerate(scores) if math.isclose(s, top, rel_tol=1e-9))
        return Judgement(best[0], best, tuple(scores))


def token_jaccard(a: str, b: str) -> float:
    """Jaccard similarity of the word sets of two texts (:func:`words`: lower-case, punctuation
    dropped); two texts without words are identical (1.0)."""
    wa, wb = set(words(a)), set(words(b))
    union = wa | wb
    return len(wa & wb) / len(union) if union else 1.0


# Other words that name each of the 80 COCO categories (the category's own name always counts; a
# plural "s"/"es" is accepted on every form). Kept small and literal: extend it with --synonyms FILE.
COCO_SYNONYMS: dict[str, tuple[str, ...]] = {
    "person": (
        "man",
        "woman",
        "boy",
        "girl",
        "child",
        "kid",
        "people",
        "men",
        "women",
        "children",
        "player",
        "lady",
        "guy",
        "baby",
        "human",
        "skier",
        "surfer",
        "skateboarder",
        "rider",
    ),
    "bicycle": ("bike", "cycle"),
    "car": ("automobile", "sedan", "vehicle", "taxi", "suv"),
    "motorcycle": ("motorbike", "scooter", "moped"),
    "airplane": ("plane", "aeroplane", "aircraft", "jet"),
    "bus": ("coach",),
    "train": ("locomotive", "tram"),
    "truck": ("lorry", "pickup"),
    "boat": ("ship", "sailboat", "canoe", "kayak", "yacht"),
    "traffic light": ("stoplight", "traffic signal"),
    "fire hydrant": ("hydrant",),
    "stop sign": ("sign",),
    "parking meter": ("meter",),
    "bench": ("park bench",),
    "bird": ("pigeon", "seagull", "gull", "duck", "parrot"),
    "cat": ("kitten", "kitty"),
    "dog": ("puppy", "pup"),
    "horse": ("pony", "foal"),
    "sheep": ("lamb",),
    "cow": ("cattle", "bull", "calf", "cows"),
    "elephant": (),
    "bear": (),
    "zebra": (),
    "giraffe": (),
    "backpack": ("rucksack", "bag"),
    "umbrella": ("parasol",),
    "handbag": ("purse", "bag"),
    "tie": ("necktie",),
    "suitcase": ("luggage", "bag"),
    "frisbee": ("disc", "flying disc"),
    "skis": ("ski",),
    "snowboard": ("board",),
    "sports ball": ("ball", "football", "soccer ball", "baseball", "tennis ball", "basketball"),
    "kite": (),
    "baseball bat": ("bat",),
    "baseball glove": ("glove", "mitt"),
    "skateboard": ("board",),
    "surfboard": ("surf board", "board"),
    "tennis racket": ("racket", "racquet"),
    "bottle": (),
    "wine glass": ("glass",),
    "cup": ("mug",),
    "fork": (),
    "knife": ("knives",),
    "spoon": (),
    "bowl": (),
    "banana": (),
    "apple": (),
    "sandwich": ("sub", "burger"),
    "orange": ("tangerine",),
    "broccoli": (),
    "carrot": (),
    "hot dog": ("hotdog", "sausage"),
    "pizza": (),
    "donut": ("doughnut",),
    "cake": ("cupcake",),
    "chair": ("seat", "stool"),
    "couch": ("sofa",),
    "potted plant": ("plant", "houseplant", "flower"),
    "bed": (),
    "dining table": ("table",),
    "toilet": (),
    "tv": ("television", "monitor", "screen"),
    "laptop": ("computer", "notebook"),
    "mouse": (),
    "remote": ("remote control", "controller"),
    "keyboard": (),
    "cell phone": ("phone", "cellphone", "smartphone", "mobile"),
    "microwave": (),
    "oven": ("stove",),
    "toaster": (),
    "sink": ("basin",),
    "refrigerator": ("fridge",),
    "book": (),
    "clock": (),
    "vase": (),
    "scissors": (),
    "teddy bear": ("teddy", "bear", "stuffed animal", "toy"),
    "hair drier": ("hair dryer", "dryer", "drier", "blow dryer"),
    "toothbrush": ("tooth brush", "brush"),
}


def _singular(word: str) -> str:
    """A crude singular: ``dogs`` -> ``dog``, ``boxes`` -> ``box`` (enough to match a plural answer)."""
    if len(word) > 3 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if len(word) > 2 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def read_synonyms(path) -> dict[str, tuple[str, ...]]:
    """Synonyms from a JSON file ``{"category": ["other name", ...]}`` (``--synonyms``)."""
    import json
    from pathlib import Path

    from gaze_explorer.core.errors import DatasetError

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read synonyms file {path}: {exc}") from exc
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(w, str) for w in v) for v in data.values()
    ):
        raise DatasetError(f'synonyms file {path} must be {{"category": ["other name", ...], ...}}')
    return {str(k).lower(): tuple(v) for k, v in data.items()}


@dataclass
class CategoryJudge:
    """The category judge (COCO region steering): does the text name an object category?

    Each "panel" of the truth is a candidate category, given as the attribute ``category``
    (``PanelTruth(attributes=[{"category": "dog"}])``). A candidate scores 1 when the text names it
    or one of its synonyms as whole words (plurals accepted), else 0. With one candidate -- the
    target -- ``credit(0)`` is 1 exactly when the answer names the target. ``synonyms`` extend (not
    replace) :data:`COCO_SYNONYMS`.
    """

    synonyms: Mapping[str, Sequence[str]] = field(default_factory=dict)
    name: str = "category"

    def forms(self, category: str) -> list[list[str]]:
        """The word sequences that name ``category`` (singularised)."""
        key = str(category).lower()
        names = [key, *COCO_SYNONYMS.get(key, ()), *self.synonyms.get(key, ())]
        out = []
        for n in names:
            form = [_singular(w) for w in words(n)]
            if form and form not in out:
                out.append(form)
        return out

    def first_mention(self, text: str, category: str) -> int | None:
        """Word index where ``text`` first names ``category``, or None."""
        toks = [_singular(w) for w in words(text)]
        hits = [p for form in self.forms(category) for p in _phrase_positions(toks, form)]
        return min(hits) if hits else None

    def judge(self, text: str, truth: PanelTruth) -> Judgement:
        if not truth.attributes or not all("category" in a for a in truth.attributes):
            raise ValueError("the category judge needs a 'category' attribute per candidate")
        reason = degenerate_reason(text)
        if reason:
            return Judgement(None, (), (0.0,) * truth.n_panels, True, reason)
        firsts = [self.first_mention(text, a["category"]) for a in truth.attributes]
        scores = tuple(0.0 if f is None else 1.0 for f in firsts)
        named = [k for k, f in enumerate(firsts) if f is not None]
        if not named:
            return Judgement(None, (), scores, False, "names no candidate category")
        # a text naming several candidates is credited for each: it named the target
        return Judgement(min(named, key=lambda k: firsts[k]), tuple(named), scores)

    def names(self, text: str, category: str) -> bool:
        """Whether ``text`` (not degenerate) names ``category``."""
        return self.judge(text, PanelTruth(attributes=[{"category": category}])).credit(0) == 1.0


def judge_for(truth: PanelTruth) -> Judge:
    """The best offline judge available for ``truth``: exact when there are attributes."""
    if truth.attributes:
        return AttributeJudge()
    if truth.captions:
        return CaptionJudge()
    raise ValueError("no attributes or captions to judge against")


def segment_tokens(token_texts: Sequence[str], switch_every: int) -> list[str]:
    """Join streamed token texts into one text per schedule segment of ``switch_every`` tokens."""
    if switch_every < 1:
        raise ValueError("switch_every must be >= 1")
    return ["".join(token_texts[i : i + switch_every]) for i in range(0, len(token_texts), switch_every)]
