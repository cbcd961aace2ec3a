"""``gaze-explorer export --session FILE --discovery KEY`` exports from the chosen one of a session's
discoveries; without ``--discovery``, from the one the app saved as chosen, else the newest. The head
list written is read back and compared with the stored arrays (hand-written v2 sessions, the real
SessionWriter and the real command)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from handmade_sessions import discovery, write_session

from gaze_explorer.cli import main
from gaze_explorer.core.heads import choose_heads
from gaze_explorer.storage import SessionReader

OLD, NEW = discovery(0, 5), discovery(1, 24, reverse=True)


def _head_list(path, *extra) -> list[dict]:
    out = path.with_name(f"heads{len(extra)}{'_'.join(extra)}.json")
    assert main(["export", "--session", str(path), "--figure", "heads", "--out", str(out), *extra]) == 0
    return json.loads(out.read_text())


def _expected(path, key: str) -> list[dict]:
    """The top 10 of discovery ``key``'s stored gaze scores, with those scores."""
    with SessionReader(path) as r:
        scores = np.asarray(r.discovery_array("gaze_scores", key), dtype=np.float64)
    heads = choose_heads("gaze:10", *scores.shape, scores=scores).heads.heads
    return [{"layer": ly, "head": h, "score": float(scores[ly, h])} for ly, h in heads]


def _as_set(records: list[dict]) -> dict:
    return {(r["layer"], r["head"]): r["score"] for r in records}


@pytest.mark.parametrize("key", ["disc_000", "disc_001"])
def test_export_discovery_writes_that_discoverys_head_list(tmp_path, key):
    path = write_session(tmp_path / "s.h5", (OLD, NEW), second_image=False)
    got, want = _as_set(_head_list(path, "--discovery", key)), _as_set(_expected(path, key))
    assert got.keys() == want.keys() and len(got) == 10
    np.testing.assert_allclose([got[h] for h in want], [want[h] for h in want], rtol=1e-6)


def test_export_defaults_to_the_saved_choice_else_the_newest(tmp_path, capsys):
    newest = write_session(tmp_path / "a.h5", (OLD, NEW), second_image=False)
    assert _as_set(_head_list(newest)).keys() == _as_set(_expected(newest, "disc_001")).keys()
    saved = write_session(tmp_path / "b.h5", (OLD, NEW), second_image=False, ui={"discovery": "disc_000"})
    assert _as_set(_head_list(saved)).keys() == _as_set(_expected(saved, "disc_000")).keys()
    stale = write_session(tmp_path / "c.h5", (OLD, NEW), second_image=False, ui={"discovery": "disc_005"})
    capsys.readouterr()
    assert _as_set(_head_list(stale)).keys() == _as_set(_expected(stale, "disc_001")).keys()
    assert "disc_005" in capsys.readouterr().err


def test_export_refuses_a_discovery_the_session_does_not_hold(tmp_path, capsys):
    path = write_session(tmp_path / "s.h5", (OLD, NEW), second_image=False)
    assert main(["export", "--session", str(path), "--figure", "heads", "--discovery", "disc_009"]) == 1
    err = capsys.readouterr().err
    assert "no discovery 'disc_009'" in err and "disc_000 · folder · 5 strips" in err


@pytest.mark.parametrize("criterion", ["image", "localization"])
def test_export_heads_by_another_criterion_ranks_by_the_stored_image_attention(tmp_path, criterion):
    """``--heads image:K`` / ``localization:K`` rank by the discovery's stored image mass and maps
    (core.criteria), as the app and ``generate`` do; a gaze-only ranking would differ."""
    from gaze_explorer.core.criteria import criterion_scores

    path = write_session(tmp_path / "s.h5", (OLD, NEW), second_image=False)
    got = [(r["layer"], r["head"]) for r in _head_list(path, "--heads", f"{criterion}:5")]
    with SessionReader(path) as r:
        grids = criterion_scores(
            np.asarray(r.discovery_array("gaze_scores")),
            np.asarray(r.discovery_array("image_mass")),
            np.asarray(r.discovery_array("image_maps")),
        )
    want = choose_heads(f"{criterion}:5", *grids["gaze"].shape, scores=grids).heads.heads
    assert sorted(got) == sorted(want) and len(got) == 5
    assert sorted(got) != sorted(choose_heads("gaze:5", *grids["gaze"].shape, scores=grids).heads.heads)
