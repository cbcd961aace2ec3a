"""``gaze-explorer export --session FILE`` with no other argument writes every figure, the panel
matrix included (of the head inspected when the session was saved, else the chosen discovery's top
gaze head), titles name runs by their label, and ``--run`` takes a run's id, user name or current
label. Real v2 sessions written through the real SessionWriter (tests/handmade_sessions.py's image,
grid and discovery) and the real command, in process."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pytest
from handmade_sessions import GRID_A, IMAGE_A, META, N_HEADS, N_LAYERS, discovery

from gaze_explorer.cli import main
from gaze_explorer.core.events import TokenEvent
from gaze_explorer.core.regions import panel_regions
from gaze_explorer.core.steering import Switch
from gaze_explorer.storage import SessionReader, SessionWriter

PROMPT_LEN, N_STEPS = 20, 16
TOP10 = [[ly, h] for ly in range(N_LAYERS) for h in range(N_HEADS)][-10:]
LIVE = "top-10 gaze → 4 → 2 (live @7) → 6 (live @14)"  # the first run's label, as it happened
RENAMED_LABEL = "top-10 gaze → 2"


def _rows(seed: int, n_keys: int) -> np.ndarray:
    e = np.exp(np.random.default_rng(seed).standard_normal((N_LAYERS, N_HEADS, n_keys)) * 3)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def _steered(w: SessionWriter, name: str, target: int, switches: list[Switch]) -> str:
    """A steered top-10 run begun as ``name`` on panel ``target`` (0-based), switched at ``switches``."""
    plan = {
        "head_set": "top-10",
        "heads": TOP10,
        "mode": "boost_suppress",
        "strength": 1e4,
        "decode_only": True,
        "choice": {"criterion": "gaze", "k": 10, "spec": "gaze:10", "seed": 0, "pool": None},
    }
    run_id = w.begin_run(
        name,
        prompt="what happens?",
        plan=plan,
        target={"fixed": target},
        n_layers=N_LAYERS,
        n_heads=N_HEADS,
        max_keys=PROMPT_LEN + N_STEPS,
        prompt_len=PROMPT_LEN,
    )
    at = {s.step: s for s in switches}
    current = target
    for step in range(N_STEPS):
        current = at[step].to if step in at else current
        event = TokenEvent(
            step, 100 + step, f" w{step}", current, _rows(step, PROMPT_LEN + step), at.get(step)
        )
        w.append_step(run_id, event)
    w.end_run(run_id, "finished", switches)
    return run_id


def _session(path: Path, *, with_discovery: bool = True, ui: dict | None = None) -> Path:
    """Two steered runs on a 6-panel image: run_000 begun as "top-10 gaze → 4" and switched live to
    2 then 6; run_001 renamed "favourite" by the user. Optionally a discovery and a saved selection."""
    w = SessionWriter(
        path, meta=META, image=IMAGE_A, grid=GRID_A, regions=panel_regions(GRID_A, 6), image_name="a.png"
    )
    try:
        _steered(w, "top-10 gaze → 4", 3, [Switch(7, 3, 1, "live"), Switch(14, 1, 5, "live")])
        renamed = _steered(w, "top-10 gaze → 2", 1, [])
        w.rename_run(renamed, "favourite")
        if with_discovery:
            w.write_discovery(discovery(0, 5), source="demo", params={"n_strips": 5})
        if ui is not None:
            w.write_ui(ui)
    finally:
        w.close()
    return path


def _svg_text(path: Path) -> str:
    return html.unescape(path.read_text(encoding="utf-8"))


def test_the_labels_are_what_the_runs_did(tmp_path):
    with SessionReader(_session(tmp_path / "s.h5")) as r:
        first, second = r.runs()
    assert first.name == "top-10 gaze → 4" and first.label == LIVE
    assert second.user_name == "favourite" and second.label == RENAMED_LABEL


def test_export_with_only_the_session_writes_the_matrix_of_the_inspected_head(tmp_path, capsys):
    path = _session(tmp_path / "s.h5", ui={"shown": "run_000", "step": 3, "inspected": [2, 3]})
    assert main(["export", "--session", str(path), "--format", "svg"]) == 0
    out = capsys.readouterr().out
    figures = tmp_path / "s_figures"
    names = sorted(p.name for p in figures.iterdir())
    assert names == ["grid.svg", "heads.json", "matrix.svg", "overlay.svg", "timeline.svg"]
    assert "Panel matrix · L2H3" in _svg_text(figures / "matrix.svg")
    assert "matrix: L2H3, the head inspected when the session was saved" in out


def test_without_an_inspected_head_the_matrix_is_the_discoverys_top_gaze_head(tmp_path, capsys):
    path = _session(tmp_path / "s.h5")
    scores = discovery(0, 5).scores
    layer, head = np.unravel_index(np.argmax(scores), scores.shape)  # (3, 5): ascending scores
    out_file = tmp_path / "m.svg"
    # --figure matrix alone: the same default (it needed --layer and --head)
    assert main(["export", "--session", str(path), "--figure", "matrix", "--out", str(out_file)]) == 0
    assert f"Panel matrix · L{layer}H{head}" in _svg_text(out_file)
    assert f"matrix: L{layer}H{head}, the top gaze head of discovery disc_000" in capsys.readouterr().out


def test_a_session_without_discovery_skips_the_matrix_with_a_note(tmp_path, capsys):
    path = _session(tmp_path / "s.h5", with_discovery=False)
    assert main(["export", "--session", str(path)]) == 0
    out = capsys.readouterr()
    assert "matrix: skipped, the session holds no panel matrices" in out.out and "Traceback" not in out.err
    assert not (tmp_path / "s_figures" / "matrix.png").exists()
    assert (tmp_path / "s_figures" / "overlay.png").exists()
    assert (
        main(["export", "--session", str(path), "--figure", "matrix", "--out", str(tmp_path / "m.png")]) == 1
    )
    assert "no panel matrices" in capsys.readouterr().err


def test_overlay_and_timeline_titles_name_the_run_by_its_label(tmp_path):
    path = _session(tmp_path / "s.h5")
    for figure in ("overlay", "timeline"):
        for run, shown in (("run_000", LIVE), ("run_001", "favourite")):
            target = tmp_path / f"{figure}_{run}.svg"
            argv = ["export", "--session", str(path), "--figure", figure, "--run", run, "--out", str(target)]
            assert main(argv) == 0
            text = _svg_text(target)
            assert shown in text and f"run {run}" not in text, (figure, run)


@pytest.mark.parametrize(
    ("wanted", "run_id", "title"),
    [
        (LIVE, "run_000", LIVE),  # the current label, with the switches as they happened
        ("favourite", "run_001", "favourite"),  # the user's name
        (RENAMED_LABEL, "run_001", "favourite"),  # a renamed run's derived label
        ("run_001", "run_001", "favourite"),
    ],
)
def test_run_takes_an_id_a_user_name_or_the_current_label(tmp_path, wanted, run_id, title):
    path = _session(tmp_path / "s.h5")
    target = tmp_path / "t.svg"
    argv = ["export", "--session", str(path), "--figure", "timeline", "--run", wanted, "--out", str(target)]
    assert main(argv) == 0
    assert f"Trajectory · {title} ·" in _svg_text(target)


def test_an_unknown_run_lists_each_runs_id_and_current_label(tmp_path, capsys):
    path = _session(tmp_path / "s.h5")
    argv = ["export", "--session", str(path), "--figure", "timeline", "--run", "nope"]
    assert main([*argv, "--out", str(tmp_path / "t.png")]) == 1
    err = capsys.readouterr().err
    assert f"run_000 ({LIVE})" in err and f'run_001 "favourite" ({RENAMED_LABEL})' in err, err


def test_a_label_several_runs_share_exports_the_newest_and_says_so(tmp_path, capsys):
    from handmade_sessions import write_session

    path = write_session(tmp_path / "two.h5", (discovery(0, 5),))  # two baselines: one label
    with SessionReader(path) as r:
        assert [info.label for info in r.runs()] == ["baseline", "baseline"]
    argv = ["export", "--session", str(path), "--figure", "timeline", "--run", "baseline"]
    assert main([*argv, "--out", str(tmp_path / "t.png")]) == 0
    err = capsys.readouterr().err
    assert "names 2 runs; exporting the newest, run_001" in err and "run_000" in err, err
