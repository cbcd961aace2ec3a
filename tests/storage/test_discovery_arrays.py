"""A discovery stored in a session: the gaze arrays and the other criteria's image mass and maps
come back from a real HDF5 file, and the criteria recomputed from the file equal those of the
result that was written."""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

from gaze_explorer.core.criteria import criteria_report
from gaze_explorer.storage import SessionReader


@dataclass
class _Result:  # the fields of inference.discovery.DiscoveryResult that storage reads
    scores: np.ndarray
    matrices: np.ndarray
    n_strips: int
    n_panels: int
    cancelled: bool = False
    image_mass: np.ndarray | None = None
    image_maps: np.ndarray | None = None


def _result(with_criteria: bool = True) -> _Result:
    rng = np.random.default_rng(3)
    maps = (rng.random((3, 4, 2, 5)) * 0.05).astype(np.float32)
    return _Result(
        scores=rng.random((3, 4)).astype(np.float32),
        matrices=rng.random((3, 4, 6, 6)).astype(np.float32),
        n_strips=7,
        n_panels=6,
        cancelled=True,
        image_mass=maps.sum(axis=(2, 3)) if with_criteria else None,
        image_maps=maps if with_criteria else None,
    )


def test_discovery_round_trip_with_criteria(new_writer, tmp_path):
    res = _result()
    w = new_writer("d.h5")
    w.write_discovery(res)
    w.close()
    with SessionReader(tmp_path / "d.h5") as r:
        np.testing.assert_array_equal(r.gaze_scores(), res.scores)
        np.testing.assert_array_equal(r.panel_matrices(), res.matrices)
        np.testing.assert_array_equal(r.image_mass(), res.image_mass)
        np.testing.assert_array_equal(r.image_maps(), res.image_maps)
        stored = criteria_report(r.gaze_scores(), r.image_mass(), r.image_maps())
        (info,) = r.discoveries()
    assert stored == criteria_report(res.scores, res.image_mass, res.image_maps)
    assert (info.n_strips, info.n_panels, info.cancelled) == (7, 6, True)
    with h5py.File(tmp_path / "d.h5", "r") as f:  # schema 2: each discovery in its own group
        assert "gaze_scores" in f["discoveries/disc_000"] and "derived" not in f


def test_several_discoveries_newest_default(new_writer, tmp_path):
    """Every discovery is kept with its source, parameters, time stamp, ranking and criteria; the
    readers' default arrays are the newest one's, and an older one stays readable by key."""
    first, second = _result(), _result()
    second.scores = second.scores[::-1].copy()
    w = new_writer("two.h5")
    w.write_discovery(first, source="demo", params={"n_strips": 7, "criterion": "gaze"})
    w.write_discovery(second, source="current image", params={"prompt": "what is in panel k"})
    w.close()
    with SessionReader(tmp_path / "two.h5") as r:
        old, new = r.discoveries()
        np.testing.assert_array_equal(r.gaze_scores(), second.scores)
        np.testing.assert_array_equal(r.discovery_array("gaze_scores", old.key), first.scores)
        ranking = r.discovery_array("ranking", old.key)
    assert (old.source, old.params, new.source) == (
        "demo",
        {"n_strips": 7, "criterion": "gaze"},
        "current image",
    )
    assert old.created and new.created
    best = np.unravel_index(np.argmax(first.scores), first.scores.shape)
    assert tuple(ranking[0]) == tuple(int(i) for i in best) and len(ranking) == first.scores.size
    assert new.criteria is not None and "agreement" in new.criteria


def test_discovery_without_criteria_arrays(new_writer, tmp_path):
    w = new_writer("old.h5")
    w.write_discovery(_result(with_criteria=False))  # a result from before the criteria
    w.close()
    with SessionReader(tmp_path / "old.h5") as r:
        assert r.gaze_scores() is not None
        assert r.image_mass() is None and r.image_maps() is None
