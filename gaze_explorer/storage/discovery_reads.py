"""The session-level part of :class:`~gaze_explorer.storage.reader.SessionReader`: derived arrays,
the stored discoveries (:class:`DiscoveryInfo`, their arrays and the criteria's), the schema version
and the selection the app saved (shown runs, the inspected head).

A mixin: it reads through the reader's ``_access()`` (the open file), ``_whole()`` (a bounded
whole-dataset read), ``_run_id()``, ``path`` and ``meta``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gaze_explorer.core.errors import SessionFileError
from gaze_explorer.storage.schema import (
    DERIVED_GROUP,
    DISCOVERIES_GROUP,
    DISCOVERY_ARRAYS,
    IMAGE_NAME_ATTR,
    MISSING_DISCOVERY_PARAMS,
    MISSING_DISCOVERY_V1,
    MISSING_FIRST_IMAGE_NAME,
    MISSING_HEAD_CHOICE,
    MISSING_RUN_NAMES,
    MISSING_SELECTION,
    RUNS_GROUP,
    UI_ATTR,
    UPGRADED_ATTR,
)
from gaze_explorer.storage.validate import as_json, as_str


@dataclass(frozen=True)
class DiscoveryInfo:
    """One stored discovery: where its arrays live and how it was made."""

    key: str  # disc_NNN, or "derived" for a version-1 file's single discovery
    created: str  # ISO time ("" in a version-1 file)
    source: str  # demo, folder, current image, ... ("" in a version-1 file)
    params: dict
    n_strips: int
    n_panels: int
    cancelled: bool
    criteria: dict | None = None  # core.criteria.criteria_report, when stored

    @property
    def localization(self) -> dict:
        """The Localization Heads variants the discovery was made with (its params' ``localization``:
        ``discover --loc-entropy/--loc-bottom-row``), unknown names or values left out; {} for the
        defaults."""
        from gaze_explorer.core.protocol_choices import BOTTOM_ROW_RULES, ENTROPY_VARIANTS

        raw = self.params.get("localization")
        allowed = {"entropy_variant": ENTROPY_VARIANTS, "bottom_row": BOTTOM_ROW_RULES}
        return {k: v for k, v in raw.items() if v in allowed.get(k, ())} if isinstance(raw, dict) else {}

    @property
    def label(self) -> str:
        """How a discovery is named where one is chosen: key, source, strips, time (to the minute),
        e.g. ``disc_002 · demo · 24 strips · 2026-12-01 21:03``; what the file does not record is
        left out (a version-1 file's: ``derived · 24 strips``)."""
        parts = [self.key]
        if self.source:
            parts.append(self.source)
        parts.append(f"{self.n_strips} strip{'' if self.n_strips == 1 else 's'}")
        if self.created:
            parts.append(self.created[:16].replace("T", " "))
        if self.cancelled:
            parts.append("partial")
        return " · ".join(parts)


class DiscoveryReads:
    """Derived arrays, discoveries and the saved selection of a session (see the module docstring)."""

    # ---- derived arrays ------------------------------------------------------------------
    def derived(self, name: str, run: str | int | None = None) -> np.ndarray | None:
        """A derived array written by ``SessionWriter.write_derived``, or None if absent."""
        with self._access() as f:
            parent = f if run is None else f[RUNS_GROUP][self._run_id(run)]
            if DERIVED_GROUP not in parent or name not in parent[DERIVED_GROUP]:
                return None
            return np.asarray(self._whole(parent[DERIVED_GROUP][name], f"the derived array {name!r}"))

    # ---- discoveries ---------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        return int(self.meta.get("schema_version", 1))

    def missing(self) -> list[str]:
        """What this file does not record that a file written now would (empty for a current file).
        Checked in its data, not only by its version: a version-1 file upgraded by a write (a rename,
        the selection) still lacks its discovery's parameters, its runs' head choice and the first
        image's name."""
        found = self.discoveries()
        out = []
        if any(d.key == "derived" for d in found):
            out.append(MISSING_DISCOVERY_V1)
        unmade = [d.key for d in found if d.key != "derived" and not (d.created or d.source or d.params)]
        if unmade:
            out.append(MISSING_DISCOVERY_PARAMS.format(keys=", ".join(unmade)))
        with self._access() as f:
            unchosen = []
            for run_id in sorted(f[RUNS_GROUP].keys()):
                raw = f[RUNS_GROUP][run_id].attrs.get("plan_json", "null")
                plan = as_json(raw, f"run {run_id}'s plan_json", self.path)
                # a steered run's plan without the 'choice' key (a custom pick stores choice null)
                if isinstance(plan, dict) and plan.get("heads") and "choice" not in plan:
                    unchosen.append(run_id)
            named_image = IMAGE_NAME_ATTR in f.attrs
            older = self.schema_version < 2 or UPGRADED_ATTR in f.attrs
            selection = UI_ATTR in f.attrs
        if unchosen:
            out.append(MISSING_HEAD_CHOICE.format(runs=", ".join(unchosen)))
        if not named_image:
            out.append(MISSING_FIRST_IMAGE_NAME)
        if self.schema_version < 2:
            out.append(MISSING_RUN_NAMES)
        if older and not selection:
            out.append(MISSING_SELECTION)
        return out

    def discoveries(self) -> list[DiscoveryInfo]:
        """Every discovery of the session, oldest first (the last one is the default)."""
        p = self.path
        with self._access() as f:
            if DISCOVERIES_GROUP in f and len(f[DISCOVERIES_GROUP]):
                out = []
                for key in sorted(f[DISCOVERIES_GROUP].keys()):
                    a = f[DISCOVERIES_GROUP][key].attrs
                    criteria = a.get("criteria_json")
                    out.append(
                        DiscoveryInfo(
                            key=key,
                            created=as_str(a.get("created", ""), "discovery created", p),
                            source=as_str(a.get("source", ""), "discovery source", p),
                            params=as_json(a.get("params_json", "{}"), "discovery params_json", p),
                            n_strips=int(a.get("n_strips", 0)),
                            n_panels=int(a.get("n_panels", 0)),
                            cancelled=bool(a.get("cancelled", 0)),
                            criteria=None if criteria is None else as_json(criteria, "criteria_json", p),
                        )
                    )
                return out
            derived = f.get(DERIVED_GROUP)
            if derived is None or "gaze_scores" not in derived:
                return []
            a = derived["gaze_scores"].attrs  # a version-1 file: one discovery, arrays only
            return [
                DiscoveryInfo(
                    "derived",
                    "",
                    "",
                    {},
                    int(a.get("n_strips", 0)),
                    int(a.get("n_panels", 0)),
                    bool(a.get("cancelled", 0)),
                )
            ]

    def discovery_array(self, name: str, key: str | None = None) -> np.ndarray | None:
        """One array (``gaze_scores``, ``panel_matrices``, ``image_mass``, ``image_maps``,
        ``ranking``) of the discovery ``key`` (default: the newest), or None if absent."""
        found = self.discoveries()
        if not found:
            return None
        key = found[-1].key if key is None else key
        if key == "derived":
            return self.derived(name)
        with self._access() as f:
            if DISCOVERIES_GROUP not in f or key not in f[DISCOVERIES_GROUP]:
                have = ", ".join(d.key for d in found)
                raise SessionFileError(f"{self.path} has no discovery {key!r} (it has {have})")
            g = f[DISCOVERIES_GROUP][key]
            if name not in g:
                return None
            return np.asarray(self._whole(g[name], f"the discovery array {name!r}"))

    def ui_state(self) -> dict:
        """The selection saved with the session (shown / compared run ids, step...), or {}."""
        with self._access() as f:
            raw = f.attrs.get(UI_ATTR)
        return {} if raw is None else dict(as_json(raw, "the saved selection", self.path) or {})

    def saved_discovery(self) -> str | None:
        """The key of the discovery the app showed when it saved the session (the ``discovery``
        entry of the saved selection), or None (none saved; files written before it existed)."""
        raw = self.ui_state().get("discovery")
        if raw is None:
            return None
        if not isinstance(raw, str) or not raw:
            raise SessionFileError(
                f"{self.path}: the saved discovery should be a key like disc_000, got {raw!r}"
            )
        return raw

    def chosen_discovery_with_note(self) -> tuple[str | None, str | None]:
        """:meth:`chosen_discovery`, and a note when it is not the one the file saved as chosen (a
        saved key the file no longer holds, or a damaged entry); None when it is."""
        key = self.chosen_discovery()
        try:
            saved = self.saved_discovery()
        except SessionFileError as err:
            return key, f"{err}; using the newest discovery, {key}"
        if saved is not None and saved != key:
            return (
                key,
                f"the session's chosen discovery {saved} is not in it any more; using the newest, {key}",
            )
        return key, None

    def chosen_discovery(self) -> str | None:
        """The key of the discovery to show: the one saved as chosen (:meth:`saved_discovery`) while
        the file still holds it, else the newest; None when the session holds no discovery."""
        keys = [d.key for d in self.discoveries()]
        if not keys:
            return None
        try:
            saved = self.saved_discovery()
        except SessionFileError:  # a damaged entry: the newest, as with none
            saved = None
        return saved if saved in keys else keys[-1]

    def inspected_head(self) -> tuple[int, int] | None:
        """The head that was open in the head inspector when the app saved the session (the
        ``inspected`` entry of the saved selection): ``(layer, head)``, or None when none was (files
        written before it existed have none)."""
        raw = self.ui_state().get("inspected")
        if raw is None:
            return None
        ok = (
            isinstance(raw, list)
            and len(raw) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in raw)
        )
        if not ok:
            raise SessionFileError(
                f"{self.path}: the saved inspected head should be [layer, head] (two counts from 0), "
                f"got {raw!r}"
            )
        return int(raw[0]), int(raw[1])

    def gaze_scores(self) -> np.ndarray | None:
        """Gaze scores ``[layer, head]`` if discovery stored them."""
        return self.discovery_array("gaze_scores")

    def panel_matrices(self) -> np.ndarray | None:
        """Per-head queried x attended panel matrices ``[layer, head, N, N]`` if stored."""
        return self.discovery_array("panel_matrices")

    def image_mass(self) -> np.ndarray | None:
        """Each head's attention on all image tokens ``[layer, head]`` (mean over the discovery
        questions; the Image Heads criterion) if discovery stored it."""
        return self.discovery_array(DISCOVERY_ARRAYS["image_mass"])

    def image_maps(self) -> np.ndarray | None:
        """Each head's attention over the image token grid ``[layer, head, rows, cols]`` (mean over
        the discovery questions; the Localization Heads criterion) if discovery stored it."""
        return self.discovery_array(DISCOVERY_ARRAYS["image_maps"])
