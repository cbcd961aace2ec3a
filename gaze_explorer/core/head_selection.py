"""The head-selection model of the app (Qt-free, psygnal signals): per-head scores of each
criterion and what each criterion's own selection keeps, the model's softmax-attention layers, the
custom picks, a fixed set (a loaded list or a shown run's own set) and the active head set, chosen
by ``core.heads.choose_heads``. Part of :class:`~gaze_explorer.core.state.AppState`, which
re-exports it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from psygnal import Signal

from gaze_explorer.core.criteria import criterion_scores_and_selection
from gaze_explorer.core.errors import HeadSpecError
from gaze_explorer.core.heads import (
    CRITERIA,
    DEFAULT_CONTROL_POOL,
    DEFAULT_CONTROL_SEED,
    ControlPool,
    Head,
    HeadChoice,
    HeadSet,
    HeadSpec,
    choose_heads,
)

HEAD_SET_KINDS = ("top", "random", "all", "custom", "file")


class HeadSelectionModel:
    """Per-head scores, the custom picks and the active head set used for steering and plots."""

    scores_changed = Signal()
    custom_changed = Signal()
    selection_changed = Signal()  # the active head set changed

    def __init__(self, n_layers: int = 0, n_heads: int = 0) -> None:
        self.n_layers = n_layers
        self.n_heads = n_heads
        # the true indices of the model's softmax-attention layers (LoadedModel.describe(), the
        # session's meta); None: not known (an older session file), every layer counts as attention
        self.attention_layers: tuple[int, ...] | None = None
        self.gaze_scores: np.ndarray | None = None  # [layer, head] from discovery
        # criterion -> [layer, head] scores (core.criteria.criterion_scores): what top-K ranks by
        self.scores: dict[str, np.ndarray] = {}
        # criterion -> what its own selection keeps ({"n_selected", "params"}; image, localization)
        self.selection: dict[str, dict] = {}
        self.criterion = "gaze"  # the top-K set's criterion (core.heads.CRITERIA)
        self.custom: set[Head] = set()
        self.kind = "top"
        self.k = 5
        self.seed = DEFAULT_CONTROL_SEED
        self.pool = DEFAULT_CONTROL_POOL  # the random control's pool (core.heads.ControlPool)
        self.file_set: HeadSet | None = None
        # where the fixed set came from: "" a head-list file, else the run whose own set it is
        # ("heads of run 'top-10 gaze → 4'", set by use_run_heads)
        self.file_source = ""
        self.active = HeadSet("none", ())
        self.problem = ""  # why the active set is empty when it could not be chosen
        self.choice: HeadChoice | None = None  # how the active set was chosen (runs record it)

    def set_shape(self, n_layers: int, n_heads: int, attention_layers: Sequence[int] | None = None) -> None:
        """The model's grid, and which of its layers are softmax attention (None: not known).
        A new shape drops the scores and picks of the previous one."""
        layers = None if attention_layers is None else tuple(sorted({int(x) for x in attention_layers}))
        if (n_layers, n_heads) != (self.n_layers, self.n_heads):
            self.n_layers, self.n_heads = n_layers, n_heads
            self.attention_layers = layers
            self.gaze_scores = None
            self.scores, self.selection = {}, {}
            self.custom = set()
            self.scores_changed.emit()
            self.custom_changed.emit()
        elif layers != self.attention_layers:  # the same grid, another model (or what a file knew)
            self.attention_layers = layers
            self.scores_changed.emit()
        self._recompute()

    def set_gaze_scores(
        self,
        scores: np.ndarray | None,
        image_mass: np.ndarray | None = None,
        image_maps: np.ndarray | None = None,
        localization: Mapping | None = None,
    ) -> None:
        """The discovery's gaze scores, and with its image mass (and maps) the image (and
        localization) criteria's scores too (``core.criteria.criterion_scores``; ``localization``:
        the Localization Heads variants the discovery was made with, default the paper's)."""
        if scores is not None:
            scores = np.asarray(scores, dtype=np.float64)
            if scores.shape != (self.n_layers, self.n_heads):
                self.n_layers, self.n_heads = scores.shape
                self.attention_layers = None  # another model's discovery: its NaN rows say which
                self.custom = set()
        self.gaze_scores = scores
        options = dict(localization or {})
        self.scores, self.selection = (
            ({}, {})
            if scores is None
            else criterion_scores_and_selection(scores, image_mass, image_maps, **options)
        )
        self.scores_changed.emit()
        self._recompute()

    def toggle(self, head: Head) -> None:
        head = (int(head[0]), int(head[1]))
        if not (0 <= head[0] < self.n_layers and 0 <= head[1] < self.n_heads):
            return
        self.custom ^= {head}
        self.custom_changed.emit()
        if self.kind == "custom":
            self._recompute()

    def set_custom(self, heads: Sequence[Head]) -> None:
        self.custom = {
            (int(ly), int(h)) for ly, h in heads if 0 <= ly < self.n_layers and 0 <= h < self.n_heads
        }
        self.custom_changed.emit()
        if self.kind == "custom":
            self._recompute()

    def set_kind(
        self,
        kind: str,
        k: int | None = None,
        seed: int | None = None,
        pool: str | None = None,
        criterion: str | None = None,
    ) -> None:
        if kind not in HEAD_SET_KINDS:
            raise ValueError(f"head set kind must be one of {HEAD_SET_KINDS}, got {kind!r}")
        if criterion is not None and criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
        self.kind = kind
        if criterion is not None:
            self.criterion = criterion
        if k is not None:
            self.k = int(k)
        if seed is not None:
            self.seed = int(seed)
        if pool is not None:
            self.pool = str(ControlPool.parse(pool))
        self._recompute()

    def set_file_set(self, heads: HeadSet, source: str = "") -> None:
        """Use a fixed head list (raises HeadSpecError if out of range): loaded from a file, or
        (``source``, e.g. "heads of run 'top-10 gaze → 4'") a run's own set."""
        if self.n_layers:
            heads.validate(self.n_layers, self.n_heads)
        self.file_set = heads
        self.file_source = str(source)
        self.set_kind("file")

    def recorded_kind(self, plan: dict | None) -> dict | None:
        """The head-set kind and boxes (``set_kind``'s arguments) that give a steered run's own set
        under the scores on screen: its recorded choice (``plan['choice']``: top-K by a criterion,
        random control, all heads) when ``core.heads.choose_heads`` gives exactly the run's heads;
        None when it does not (another discovery, a custom pick, a file) or the plan has no heads."""
        heads = tuple(sorted((int(ly), int(h)) for ly, h in (plan or {}).get("heads") or ()))
        choice = (plan or {}).get("choice") or {}
        spec = str(choice.get("spec") or "")
        if not heads or not self.n_layers:
            return None
        try:
            parsed = HeadSpec.parse(spec) if spec else None
        except HeadSpecError:
            return None
        if parsed is None or parsed.kind not in ("top", "random", "all"):
            return None
        seed = self.seed if choice.get("seed") is None else int(choice["seed"])
        pool = self.pool if choice.get("pool") is None else str(choice["pool"])
        try:
            got = choose_heads(
                parsed,
                self.n_layers,
                self.n_heads,
                scores=self.scores,
                seed=seed,
                pool=pool,
                attention_layers=self.attention_layers,
            )
        except HeadSpecError:  # no scores on screen, another model's, a pool too small
            return None
        if got.heads.heads != heads:
            return None
        kind = {"top": dict(kind="top", k=parsed.k, criterion=parsed.criterion)}.get(parsed.kind)
        if parsed.kind == "random":
            kind = dict(kind="random", k=parsed.k, seed=seed, pool=pool)
        return kind or dict(kind="all")

    def use_run_heads(self, plan: dict | None, run_name: str = "") -> bool:
        """Make a steered run's own head set the active one (``plan``: the run's stored steering
        plan); a baseline (no plan, no heads) keeps the current set. The set is shown as the kind
        its recorded choice gives (:meth:`recorded_kind`), else as a fixed set named for the run
        (``file_source``), with the boxes (K, criterion, seed, pool) its choice recorded. A set the
        model's grid cannot hold (a run of another model) keeps the current one. True if it changed
        what is active. The one path for a reopened session and a selected run."""
        if not plan or not plan.get("heads"):
            return False
        kind = self.recorded_kind(plan)
        if kind is not None:
            self.set_kind(**kind)
            return True
        from gaze_explorer.core.run_label import heads_label

        heads = HeadSet(heads_label(plan), tuple((int(ly), int(h)) for ly, h in plan["heads"]))
        if self.n_layers:
            try:
                heads.validate(self.n_layers, self.n_heads)
            except HeadSpecError:
                return False
        choice = plan.get("choice") or {}
        self.file_set = heads
        self.file_source = f"heads of run '{run_name}'" if run_name else "heads of the shown run"
        criterion = choice.get("criterion")
        self.set_kind(
            "file",
            k=choice.get("k"),
            seed=choice.get("seed"),
            pool=choice.get("pool"),
            criterion=criterion if criterion in CRITERIA else None,
        )
        return True

    def ui_state(self) -> dict:
        """The head-set control as the saved selection holds it (``ui_json``'s ``heads``): kind, K,
        criterion, seed, pool, the custom picks, and the fixed set (name, heads, where from)."""
        state = {
            "kind": self.kind,
            "k": int(self.k),
            "criterion": self.criterion,
            "seed": int(self.seed),
            "pool": str(self.pool),
            "custom": [[int(ly), int(h)] for ly, h in sorted(self.custom)],
        }
        if self.file_set is not None:
            state["file"] = {
                "name": self.file_set.name,
                "heads": [[int(ly), int(h)] for ly, h in self.file_set.heads],
                "source": self.file_source,
            }
        return state

    def restore_ui(self, saved: dict) -> None:
        """Set the head-set control from :meth:`ui_state`'s dict (a saved session). Raises
        HeadSpecError (or ValueError) for an entry that is not one; nothing is changed then."""
        if not isinstance(saved, dict):
            raise HeadSpecError(f"the saved head set should be an object, got {saved!r}")
        try:
            kind = str(saved.get("kind", self.kind))
            criterion = saved.get("criterion")
            k = None if saved.get("k") is None else int(saved["k"])
            seed = None if saved.get("seed") is None else int(saved["seed"])
            pool = None if saved.get("pool") is None else str(ControlPool.parse(saved["pool"]))
            custom = [(int(ly), int(h)) for ly, h in saved.get("custom") or ()]
            fixed = saved.get("file")
            file_set = None
            if fixed is not None:
                file_set = HeadSet(str(fixed["name"]), tuple((int(ly), int(h)) for ly, h in fixed["heads"]))
                if self.n_layers:
                    file_set.validate(self.n_layers, self.n_heads)
        except (TypeError, ValueError, KeyError) as err:
            raise HeadSpecError(f"the saved head set is damaged: {saved!r} ({err})") from err
        if kind not in HEAD_SET_KINDS or (kind == "file" and file_set is None):
            raise HeadSpecError(f"the saved head set's kind {kind!r} is not one of {HEAD_SET_KINDS}")
        if criterion is not None and criterion not in CRITERIA:
            raise HeadSpecError(f"the saved head set's criterion {criterion!r} is not one of {CRITERIA}")
        if file_set is not None:
            self.file_set, self.file_source = file_set, str(fixed.get("source") or "")
        self.set_custom(custom)
        self.set_kind(kind, k=k, seed=seed, pool=pool, criterion=criterion)

    def _recompute(self) -> None:
        self.active = self._build()
        self.selection_changed.emit()

    def _build(self) -> HeadSet:
        """The active set, chosen by ``core.heads.choose_heads``; a set that cannot be chosen is
        empty, named for why, with the full reason in ``problem``."""
        self.problem = ""
        self.choice = None
        if not self.n_layers:
            return HeadSet("none", ())
        if self.kind == "file":
            heads = self.file_set or HeadSet("file", ())
            self.choice = HeadChoice(heads, spec=f"file:{heads.name}")
            return heads
        k = min(max(self.k, 1), self.n_layers * self.n_heads)
        if self.kind in ("top", "random") and self.gaze_scores is None:
            self.problem = "run discovery first: top-K and random heads need gaze scores"
            return HeadSet(f"{self.kind}-{k} (run discovery first)", ())
        spec = {"top": f"{self.criterion}:{k}", "random": f"random:{k}", "all": "all"}.get(
            self.kind
        ) or HeadSpec("custom")
        try:
            choice = choose_heads(
                spec,
                self.n_layers,
                self.n_heads,
                scores=self.scores,
                seed=self.seed,
                pool=self.pool,
                custom=self.custom,
                attention_layers=self.attention_layers,
                selection=self.selection,
            )
        except HeadSpecError as err:  # e.g. a random control whose pool is smaller than K
            self.problem = str(err)
            return HeadSet(f"{self.kind}-{k} (cannot be chosen)", ())
        self.choice = choice
        return choice.heads

    def mask(self) -> np.ndarray:
        """Boolean ``[layer, head]`` mask of the active set."""
        m = np.zeros((self.n_layers, self.n_heads), dtype=bool)
        for ly, h in self.active.heads:
            m[ly, h] = True
        return m
