"""End to end on the bundled demo model: ``discover`` -> ``generate`` (baseline, then steered by a
schedule) into the same session -> ``export`` of every figure kind and of the head lists, all through
``gaze_explorer.cli.main`` in-process, checking the files each command leaves behind."""

from __future__ import annotations

import argparse
import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from gaze_explorer.cli import main
from gaze_explorer.cli.helpers import load_strips
from gaze_explorer.core.heads import load_head_list, ranking

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "resources" / "demo_model" / "config.json"
N_LAYERS, N_HEADS = 6, 16  # the demo model (resources/demo_model/config.json)
SCHEDULE = (4, 2, 1, 6, 5, 3)
SWITCH_EVERY = 2
N_TOKENS = 12  # with --ignore-eos: every scheduled panel gets one 2-token segment

pytestmark = pytest.mark.skipif(not DEMO.exists(), reason="the demo model is not bundled in this checkout")


def _first_demo_strip():
    ns = argparse.Namespace(comics="demo", use_raw=False, n_panels=6, panel_height=None, seed=0)
    return load_strips(ns, 1)[0]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Run the three commands once; each test then checks one part of what they wrote."""
    tmp = tmp_path_factory.mktemp("cli_e2e")
    session = tmp / "session.h5"
    out = tmp / "discovery"
    strip = _first_demo_strip()
    image = tmp / "strip.png"
    strip.image.save(image)  # lossless, so generate's image equals the discovery session's
    codes = {}
    common = ["--model", "demo", "--device", "cpu"]
    codes["discover"] = main(
        ["discover", *common, "--n-strips", "3", "--out", str(out), "--session", str(session)]
    )
    gen = ["generate", *common, "--image", str(image), "--panels", "6", "--session", str(session)]
    gen += ["--prompt", "Describe each panel of this comic strip in order, one short sentence each."]
    codes["baseline"] = main([*gen, "--max-new-tokens", "8"])
    codes["steered"] = main(
        [
            *gen,
            "--heads",
            "top:4",
            "--ranking",
            str(out / "ranking.json"),
            "--schedule",
            ",".join(map(str, SCHEDULE)),
            "--switch-every",
            str(SWITCH_EVERY),
            "--max-new-tokens",
            str(N_TOKENS),
            "--ignore-eos",
        ]
    )
    return {"tmp": tmp, "session": session, "out": out, "codes": codes}


def test_discover_writes_a_ranking_that_core_heads_parses_back_in_score_order(pipeline):
    assert pipeline["codes"]["discover"] == 0
    out = pipeline["out"]
    records = json.loads((out / "ranking.json").read_text())
    assert len(records) == N_LAYERS * N_HEADS
    scores = [r["score"] for r in records]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) > 1
    grid = np.load(out / "gaze_scores.npy")  # [layer, head]
    assert grid.shape == (N_LAYERS, N_HEADS)
    for r in records:
        assert r["score"] == pytest.approx(grid[r["layer"], r["head"]])
    assert [(r["layer"], r["head"]) for r in records] == [(r["layer"], r["head"]) for r in ranking(grid)]
    heads = load_head_list(out / "ranking.json", limit=5)  # the parser the app and --heads FILE use
    assert sorted(heads.heads) == sorted((r["layer"], r["head"]) for r in records[:5])
    matrices = np.load(out / "panel_matrices.npy")  # [layer, head, N, N]
    assert matrices.shape == (N_LAYERS, N_HEADS, 6, 6) and np.isfinite(matrices).all()
    meta = json.loads((out / "discovery.json").read_text())
    assert {k: meta[k] for k in ("model", "n_strips", "n_panels", "partial")} == {
        "model": "demo",
        "n_strips": 3,
        "n_panels": 6,
        "partial": False,
    }


def test_discover_writes_the_other_criteria_and_their_agreement(pipeline):
    from gaze_explorer.core.criteria import criteria_report, image_head_scores
    from gaze_explorer.storage.reader import SessionReader

    out = pipeline["out"]
    mass, maps = np.load(out / "image_mass.npy"), np.load(out / "image_maps.npy")
    assert mass.shape == (N_LAYERS, N_HEADS) and maps.shape[:2] == (N_LAYERS, N_HEADS)
    np.testing.assert_allclose(np.load(out / "image_scores.npy"), image_head_scores(mass))
    expected = criteria_report(np.load(out / "gaze_scores.npy"), mass, maps)
    image = json.loads((out / "image_ranking.json").read_text())
    assert [(r["layer"], r["head"]) for r in image] == [
        (r["layer"], r["head"]) for r in expected["image"]["ranking"]
    ]
    localization = json.loads((out / "localization.json").read_text())
    assert localization["n_selected"] == expected["localization"]["n_selected"]
    assert localization["entropy_variant"] == "paper" and localization["bottom_row"] == "code"
    meta = json.loads((out / "discovery.json").read_text())
    # Tab. 6 at K = 10 and K = 100, the latter clipped to the demo's 96 heads
    assert [(r["k"], r["k_used"], r["clipped"]) for r in meta["agreement"]] == [
        (10, 10, False),
        (100, 96, True),
    ]
    assert meta["agreement"] == expected["agreement"]
    assert {p["a"] + "/" + p["b"] for p in meta["agreement"][0]["pairs"]} == {
        "gaze/image",
        "gaze/localization",
        "image/localization",
    }
    assert meta["criteria"]["localization"]["elbow_threshold"] == expected["localization"]["elbow_threshold"]
    # the session holds the same inputs, so the app can recompute the same table
    with SessionReader(pipeline["session"]) as reader:
        np.testing.assert_allclose(reader.image_mass(), mass, rtol=1e-6)
        np.testing.assert_allclose(reader.image_maps(), maps)


def test_generate_appends_baseline_and_scheduled_runs_with_tokens_and_switches(pipeline):
    from gaze_explorer.storage.reader import SessionReader

    assert pipeline["codes"]["baseline"] == 0 and pipeline["codes"]["steered"] == 0
    reader = SessionReader(pipeline["session"])
    grid = np.asarray(reader.gaze_scores())  # the discovery stored in the same session
    assert grid.shape == (N_LAYERS, N_HEADS)
    runs = reader.runs()
    assert [r.name for r in runs] == ["baseline", "steered"]
    base, steered = runs
    assert base.status == "finished" and base.plan is None and base.switches == ()
    assert 1 <= base.n_steps <= 8 and len(reader.tokens(base.run_id)) == base.n_steps
    assert steered.status == "finished" and steered.n_steps == N_TOKENS  # --ignore-eos: no early stop
    assert len(reader.tokens(steered.run_id)) == N_TOKENS
    assert steered.plan is not None and len(steered.plan["heads"]) == 4
    top4 = [(r["layer"], r["head"]) for r in ranking(grid)[:4]]
    assert sorted(map(tuple, steered.plan["heads"])) == sorted(top4)
    assert steered.plan["choice"] == {
        "spec": "gaze:4",
        "name": "top-4",
        "criterion": "gaze",
        "k": 4,
        "seed": None,
        "pool": None,
        "pool_size": None,
        "pool_layers": None,
        "n_selected": None,  # the gaze score has no selection of its own: top-K is the definition
        "criterion_params": None,
    }  # how the heads were chosen is recorded with the run
    # the schedule, 0-based: one switch at the start of every segment after the first
    assert [(s.previous, s.to) for s in steered.switches] == [
        (a - 1, b - 1) for a, b in itertools.pairwise(SCHEDULE)
    ]
    assert [s.step for s in steered.switches] == list(range(SWITCH_EVERY, N_TOKENS, SWITCH_EVERY))
    assert list(steered.targets) == [p - 1 for p in SCHEDULE for _ in range(SWITCH_EVERY)]


def test_generate_prints_the_streamed_text_and_the_switches(tmp_path, capsys):
    image = tmp_path / "strip.png"
    _first_demo_strip().image.save(image)
    argv = ["generate", "--model", "demo", "--device", "cpu", "--image", str(image), "--panels", "6"]
    argv += ["--prompt", "What is happening in this panel of the comic strip?", "--heads", "all"]
    argv += ["--schedule", "2,1", "--switch-every", "3", "--max-new-tokens", "6", "--ignore-eos"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.strip()  # the tokens, streamed to stdout
    assert "switch at step 3: panel 2 -> 1" in captured.err
    assert "steering 96 heads (all)" in captured.err  # the demo model's 6 layers x 16 heads


@pytest.mark.parametrize("criterion", ["image", "localization"])
def test_generate_steers_the_heads_of_another_criterion_read_beside_the_ranking(pipeline, criterion):
    """``--heads image:K`` / ``localization:K`` take the K best heads by that criterion, from the
    image mass and maps that ``discover --out`` wrote beside ``ranking.json``."""
    from gaze_explorer.core.criteria import criterion_scores
    from gaze_explorer.storage.reader import SessionReader

    out, tmp = pipeline["out"], pipeline["tmp"]
    session = tmp / f"{criterion}.h5"
    image = tmp / "strip.png"
    argv = ["generate", "--model", "demo", "--device", "cpu", "--image", str(image), "--panels", "6"]
    argv += ["--prompt", "What is happening in this panel of the comic strip?", "--target", "4"]
    argv += ["--heads", f"{criterion}:3", "--ranking", str(out / "ranking.json"), "--max-new-tokens", "3"]
    assert main([*argv, "--session", str(session)]) == 0
    scores = criterion_scores(
        np.load(out / "gaze_scores.npy"), np.load(out / "image_mass.npy"), np.load(out / "image_maps.npy")
    )[criterion]
    expected = sorted((r["layer"], r["head"]) for r in ranking(scores)[:3])
    with SessionReader(session) as reader:
        (run,) = reader.runs()
    assert sorted(map(tuple, run.plan["heads"])) == expected
    assert run.plan["choice"]["criterion"] == criterion and run.plan["choice"]["k"] == 3


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_export_writes_every_figure_and_the_head_lists(pipeline, capsys):
    session, tmp = str(pipeline["session"]), pipeline["tmp"]
    figs = tmp / "figs"
    assert main(["export", "--session", session, "--out", str(figs)]) == 0
    lines = capsys.readouterr().out.splitlines()
    printed = [line for line in lines if not line.startswith("matrix:")]  # the matrix's head is said
    assert sorted(Path(p).name for p in printed) == [
        "grid.png",
        "heads.json",
        "matrix.png",
        "overlay.png",
        "timeline.png",
    ]
    assert any(line.startswith("matrix: L") for line in lines)
    for name in ("grid.png", "matrix.png", "overlay.png", "timeline.png"):
        w, h = _png_size(figs / name)
        assert w >= 300 and h >= 200 and (figs / name).stat().st_size > 5000
    heads = json.loads((figs / "heads.json").read_text())
    # by default the last run's own head set (issue 15), with each head's gaze score
    from gaze_explorer.storage import SessionReader

    with SessionReader(session) as reader:
        own = sorted(tuple(h) for h in reader.runs()[-1].plan["heads"])
    assert sorted((h["layer"], h["head"]) for h in heads) == own and {"layer", "head", "score"} <= set(
        heads[0]
    )
    assert [h["score"] for h in heads] == sorted((h["score"] for h in heads), reverse=True)

    svg = tmp / "timeline.svg"
    argv = ["export", "--session", session, "--figure", "timeline", "--run", "baseline", "--out", str(svg)]
    assert main([*argv, "--format", "svg"]) == 0
    text = svg.read_text()
    assert text.lstrip().startswith(("<?xml", "<svg")) and "</svg>" in text
    assert "Trajectory" in text and "P6" in text

    matrix = tmp / "matrix.svg"
    argv = ["export", "--session", session, "--figure", "matrix", "--layer", "2", "--head", "3"]
    assert main([*argv, "--out", str(matrix), "--format", "svg"]) == 0
    assert "Panel matrix · L2H3" in matrix.read_text()

    overlay = tmp / "overlay_step5.png"
    argv = ["export", "--session", session, "--figure", "overlay", "--step", "5", "--heads", "top:3"]
    assert main([*argv, "--out", str(overlay)]) == 0
    assert _png_size(overlay)[0] >= 300
    # the overlay of another step of the steered run is a different picture
    assert overlay.read_bytes() != (figs / "overlay.png").read_bytes()

    csv_path = tmp / "top3.csv"
    argv = ["export", "--session", session, "--figure", "heads", "--heads", "top:3", "--out", str(csv_path)]
    assert main(argv) == 0
    rows = list(csv.DictReader(csv_path.open()))
    assert [(int(r["layer"]), int(r["head"])) for r in rows] == [(h["layer"], h["head"]) for h in heads[:3]]
    assert load_head_list(csv_path).heads == load_head_list(figs / "heads.json", limit=3).heads

    control = tmp / "random3.json"
    argv = ["export", "--session", session, "--figure", "heads", "--heads", "random:3", "--out", str(control)]
    assert main(argv) == 0
    random3 = load_head_list(control).heads
    assert len(random3) == 3 and not set(random3) & set(load_head_list(csv_path).heads)


USER_ERRORS = [
    (["export", "--session", "{tmp}/missing.h5", "--out", "{tmp}/o"], "missing.h5"),
    (["export", "--session", "{session}", "--out", "{tmp}/o", "--run", "nope"], "no run 'nope'"),
    (
        [
            "export",
            "--session",
            "{session}",
            "--figure",
            "matrix",
            "--layer",
            "9",
            "--head",
            "0",
            "--out",
            "{tmp}/m.png",
        ],
        "out of range",
    ),
    (["export", "--session", "{session}", "--figure", "grid", "--out", "{tmp}/g.gif"], ".gif"),
    (
        ["export", "--session", "{session}", "--heads", "{tmp}/none.json", "--out", "{tmp}/o"],
        "does not exist",
    ),
    (
        [
            "generate",
            "--model",
            "demo",
            "--device",
            "cpu",
            "--image",
            "{tmp}/strip.png",
            "--prompt",
            "p",
            "--panels",
            "6",
            "--heads",
            "top:3",
            "--ranking",
            "{tmp}/none.json",
            "--target",
            "2",
        ],
        "does not exist",
    ),
    (["discover", "--model", "{tmp}", "--out", "{tmp}/o", "--n-strips", "1"], "config.json"),
]


@pytest.mark.parametrize(("argv", "message"), USER_ERRORS, ids=[" ".join(a[:3]) + m for a, m in USER_ERRORS])
def test_bad_input_gives_one_clear_line_and_exit_1(pipeline, argv, message, capsys):
    argv = [a.format(tmp=pipeline["tmp"], session=pipeline["session"]) for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith(f"gaze-explorer {argv[0]}")]
    assert len(lines) == 1 and lines[0].startswith(f"gaze-explorer {argv[0]}: error:"), err
    assert message in lines[0] and "Traceback" not in err


def test_bad_arguments_exit_2_with_one_error_line(pipeline, capsys):
    argv = ["generate", "--image", str(pipeline["tmp"] / "strip.png"), "--prompt", "p", "--panels", "6"]
    with pytest.raises(SystemExit) as info:
        main([*argv, "--heads", "top:3", "--schedule", "1,7"])
    err = capsys.readouterr().err
    assert info.value.code == 2
    errors = [ln for ln in err.splitlines() if "error:" in ln]
    assert errors == [
        "gaze-explorer generate: error: --schedule: panel 7 does not exist: the image has 6 panel(s)"
    ]
