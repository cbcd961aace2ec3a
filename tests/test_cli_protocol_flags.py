"""The paper-protocol flags of issue 17's audit, on the bundled demo model (2 strips, short answers):
``evaluate sweep --baseline-rule`` honoured, recorded and checked on ``--resume``; ``--n-resamples``;
``generate --bias-on`` (per-protocol default, recorded in the run's plan) and ``--switch-alignment``;
the band's layers and each criterion's own selection (n_selected, parameters, the fill-in note) in
``head_choices``; the Localization Heads variants on ``discover`` / ``evaluate``; the dynamic sweep's
rho panel and trajectory columns; the docs' defaults table naming a flag for every default."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest

from gaze_explorer.cli import main
from gaze_explorer.cli.helpers import load_strips
from gaze_explorer.core.sweep import cell_record, curves, sweep_cells

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "resources" / "demo_model" / "config.json"
needs_demo = pytest.mark.skipif(not DEMO.exists(), reason="the demo model is not bundled in this checkout")
CPU = ["--model", "demo", "--device", "cpu"]


@pytest.fixture(scope="module")
def discovery(tmp_path_factory):
    if not DEMO.exists():
        pytest.skip("the demo model is not bundled")
    out = tmp_path_factory.mktemp("protocol_flags") / "disc"
    assert main(["discover", *CPU, "--n-strips", "2", "--out", str(out)]) == 0
    return out


def _sweep(discovery, out, *extra):
    argv = ["evaluate", "sweep", "--protocol", "static", *CPU, "--max-strips", "2"]
    argv += ["--heads-file", str(discovery / "ranking.json"), "--max-new-tokens", "4", "--criteria", "gaze"]
    return main([*argv, "--over", "k=3", *extra, "--json", str(out)])


def _evaluate(discovery, out, *extra):
    argv = ["evaluate", "static", *CPU, "--max-strips", "2", "--heads-file", str(discovery / "ranking.json")]
    assert main([*argv, "--max-new-tokens", "3", *extra, "--json", str(out)]) == 0
    return json.loads(Path(out).read_text())


# -- 1, 5: the sweep's same-as-unsteered rule and resamples ------------------------------------------
@needs_demo
def test_sweep_honours_the_baseline_rule_records_it_and_refuses_a_resume_under_another(
    discovery, tmp_path, capsys
):
    paper = tmp_path / "jaccard.json"
    assert _sweep(discovery, paper) == 0
    off = tmp_path / "off.json"
    assert _sweep(discovery, off, "--baseline-rule", "off", "--n-resamples", "300") == 0
    a, b = json.loads(paper.read_text()), json.loads(off.read_text())
    assert (a["settings"]["baseline_rule"], a["settings"]["n_resamples"]) == ("jaccard", 10_000)
    assert (b["settings"]["baseline_rule"], b["settings"]["n_resamples"]) == ("off", 300)
    gaze_a, gaze_b = a["cells"][0], b["cells"][0]
    assert gaze_a["criterion"] == gaze_b["criterion"] == "gaze"
    # the same generations: without the rule the sweep's accuracy is the judge's verdicts alone
    assert gaze_b["accuracy"] == pytest.approx(gaze_a["accuracy_without_rule"])
    # the demo's unsteered answer is panel 1's: the rule removes the steered target-1 hits
    assert gaze_a["accuracy"] < gaze_a["accuracy_without_rule"]
    capsys.readouterr()
    assert _sweep(discovery, tmp_path / "x.json", "--baseline-rule", "off", "--resume", str(paper)) == 1
    assert "baseline_rule 'jaccard' -> 'off'" in capsys.readouterr().err


@needs_demo
def test_a_resume_of_a_sweep_written_before_the_rule_was_recorded_assumes_the_papers(
    discovery, tmp_path, capsys
):
    old = tmp_path / "old.json"
    old.write_text(
        json.dumps({"kind": "sweep", "protocol": "static", "model": "demo", "cells": [], "settings": {}})
    )
    assert _sweep(discovery, tmp_path / "x.json", "--baseline-rule", "exact", "--resume", str(old)) == 1
    assert "baseline_rule 'jaccard' -> 'exact'" in capsys.readouterr().err


# -- 3, 4, 5: head_choices record the band's layers and each criterion's own selection --------------
@needs_demo
def test_evaluate_records_the_band_layers_and_each_criterions_selection(discovery, tmp_path, capsys):
    from gaze_explorer.core.criteria import MASKCD_Z, image_head_scores, localization_heads

    k = 10
    report = _evaluate(
        discovery,
        tmp_path / "e.json",
        "--conditions",
        "gaze,image,localization,random,baseline",
        "--top-k",
        str(k),
        "--n-resamples",
        "250",
    )
    err = capsys.readouterr().err
    assert report["settings"]["n_resamples"] == 250
    choices = report["head_choices"]
    gaze_layers = [layer for layer, _ in choices["gaze"]["heads"]]
    band = choices["random"]
    assert band["pool"] == "band" and band["pool_layers"] == [min(gaze_layers), max(gaze_layers)]
    assert all(band["pool_layers"][0] <= layer <= band["pool_layers"][1] for layer, _ in band["heads"])
    mass, maps = np.load(discovery / "image_mass.npy"), np.load(discovery / "image_maps.npy")
    loc = localization_heads(mass, maps)
    meta = json.loads((discovery / "discovery.json").read_text())
    assert (
        choices["localization"]["n_selected"]
        == loc.n_selected
        == meta["criteria"]["localization"]["n_selected"]
    )
    params = choices["localization"]["criterion_params"]
    assert (params["entropy_variant"], params["bottom_row"]) == ("paper", "code")
    assert params["elbow_threshold"] == pytest.approx(loc.threshold)
    assert params["min_layer"] == 2 and params["bottom_row_threshold"] == 0.05
    assert choices["image"]["n_selected"] == int((image_head_scores(mass) > MASKCD_Z).sum())
    assert choices["image"]["criterion_params"]["flag_z"] == MASKCD_Z
    assert choices["gaze"]["n_selected"] is None and band["n_selected"] is None
    for name in ("image", "localization"):
        n = choices[name]["n_selected"]
        line = f"note: {name}:{k}: only {n} head(s) pass"
        assert (line in err) == (k > n), err
        if k > n:
            assert f"the other {k - n} are fill-ins" in err


@needs_demo
def test_the_localization_variants_are_flags_of_discover_and_evaluate_and_recorded(discovery, tmp_path):
    from gaze_explorer.core.criteria import localization_heads

    out = tmp_path / "disc_code"
    argv = ["discover", *CPU, "--n-strips", "2", "--out", str(out)]
    assert main([*argv, "--loc-entropy", "code", "--loc-bottom-row", "peak"]) == 0
    stored = json.loads((out / "localization.json").read_text())
    mass, maps = np.load(out / "image_mass.npy"), np.load(out / "image_maps.npy")
    expected = localization_heads(mass, maps, entropy_variant="code", bottom_row="peak")
    assert (stored["entropy_variant"], stored["bottom_row"]) == ("code", "peak")
    assert stored["n_selected"] == expected.n_selected
    assert [[r["layer"], r["head"]] for r in stored["ranking"]] == [list(hd) for hd in expected.order]

    report = _evaluate(
        discovery,
        tmp_path / "e.json",
        "--conditions",
        "localization,baseline",
        "--top-k",
        "4",
        "--loc-entropy",
        "code",
        "--loc-bottom-row",
        "off",
    )
    mass, maps = np.load(discovery / "image_mass.npy"), np.load(discovery / "image_maps.npy")
    found = localization_heads(mass, maps, entropy_variant="code", bottom_row="off")
    choice = report["head_choices"]["localization"]
    assert choice["criterion_params"]["entropy_variant"] == "code"
    assert choice["criterion_params"]["bottom_row"] == "off"
    assert choice["n_selected"] == found.n_selected
    assert sorted(map(tuple, choice["heads"])) == sorted(found.order[:4])


# -- 2: generate's --bias-on and --switch-alignment ------------------------------------------------
def _strip_image(tmp_path) -> Path:
    ns = argparse.Namespace(comics="demo", use_raw=False, n_panels=6, panel_height=None, seed=0)
    image = tmp_path / "strip.png"
    load_strips(ns, 1)[0].image.save(image)
    return image


@needs_demo
@pytest.mark.parametrize(
    ("where", "bias", "decode_only"),
    [
        (["--target", "2"], None, False),  # a panel target: static steering, prefill + decode
        (["--box", "0,0,64,64"], None, False),  # a box: region steering, prefill + decode
        (["--schedule", "2,1", "--switch-every", "2"], None, True),  # a schedule: dynamic, decode only
        (["--target", "2"], "decode", True),
        (["--schedule", "2,1", "--switch-every", "2"], "prefill+decode", False),
    ],
)
def test_generate_bias_on_defaults_per_protocol_and_is_recorded_in_the_plan(
    discovery, tmp_path, capsys, where, bias, decode_only
):
    from gaze_explorer.storage.reader import SessionReader

    session = tmp_path / "s.h5"
    argv = ["generate", *CPU, "--image", str(_strip_image(tmp_path)), "--prompt", "What is happening?"]
    argv += ["--heads", "gaze:4", "--ranking", str(discovery / "ranking.json"), "--max-new-tokens", "3"]
    argv += [*([] if "--box" in where else ["--panels", "6"]), *where]
    argv += [] if bias is None else ["--bias-on", bias]
    assert main([*argv, "--session", str(session)]) == 0
    with SessionReader(session) as reader:
        (run,) = reader.runs()
    assert run.plan["decode_only"] is decode_only
    where_text = "decode steps only" if decode_only else "prefill and decode"
    assert f"on {where_text}" in capsys.readouterr().err


@needs_demo
def test_generate_switch_alignment_authors_switches_one_token_later(tmp_path, capsys):
    argv = ["generate", *CPU, "--image", str(_strip_image(tmp_path)), "--panels", "6", "--prompt", "p"]
    argv += ["--heads", "all", "--schedule", "2,1,3", "--switch-every", "2", "--max-new-tokens", "6"]
    argv += ["--ignore-eos"]
    assert main(argv) == 0
    project = re.findall(r"switch at step (\d+)", capsys.readouterr().err)
    assert main([*argv, "--switch-alignment", "authors"]) == 0
    authors = re.findall(r"switch at step (\d+)", capsys.readouterr().err)
    assert project == ["2", "4"] and authors == ["3", "5"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            [
                "generate",
                "--image",
                "i.png",
                "--prompt",
                "p",
                "--panels",
                "6",
                "--heads",
                "all",
                "--target",
                "1",
                "--switch-alignment",
                "authors",
            ],
            "--switch-alignment needs --schedule",
        ),
        (["generate", "--image", "i.png", "--prompt", "p", "--bias-on", "decode"], "--bias-on needs --heads"),
        (["generate", "--image", "i.png", "--prompt", "p", "--bias-on", "always"], "invalid choice"),
        (["evaluate", "static", "--n-resamples", "0"], "at least 1"),
        (["evaluate", "static", "--loc-entropy", "shannon"], "invalid choice"),
        (["discover", "--out", "o", "--loc-bottom-row", "top"], "invalid choice"),
    ],
)
def test_bad_protocol_flags_are_refused_by_the_parser(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_generate_help_names_every_head_criterion():
    from gaze_explorer.cli.parser import build_parsers

    text = " ".join(build_parsers().commands["generate"].format_help().split())
    for spec in ("gaze:K", "image:K", "localization:K", "random:K", "all"):
        assert spec in text, spec


def test_the_parsers_switch_alignments_are_the_steering_ones():
    from gaze_explorer.cli.parser import SWITCH_ALIGNMENT_CHOICES
    from gaze_explorer.core.steering import SWITCH_ALIGNMENTS

    assert (
        set(SWITCH_ALIGNMENT_CHOICES) == set(SWITCH_ALIGNMENTS) and SWITCH_ALIGNMENT_CHOICES[0] == "project"
    )


# -- 6: a dynamic sweep's rho panel and trajectory columns -------------------------------------------
def _dynamic_report() -> dict:
    cells = sweep_cells(["gaze"], [2, 4], [1e4], [None])  # gaze, random at K 2 and 4, then all heads
    rhos = {("gaze", 2): 0.4, ("random", 2): -0.2, ("gaze", 4): 0.9, ("random", 4): -0.1, ("all", None): 0.05}
    recs = []
    for c in cells:
        rho = rhos[(c.criterion, c.k)]
        condition = {
            "accuracy": 0.5,
            "ci95": [0.4, 0.6],
            "n": 12,
            "spearman": {"mean": rho, "ci95": [rho - 0.1, rho + 0.1]},
            "trajectory": {
                "n_strips": 2,
                "n_excluded": 0,
                "rho_schedule": {"mean": rho / 2, "ci95": [0.0, 0.0]},
                "rho_natural": {"mean": -0.25, "ci95": [0.0, 0.0]},
                "starts_correct": {"mean": 0.5, "ci95": [0.0, 1.0], "n": 2},
            },
        }
        if c.criterion == "all":  # every strip excluded: nothing to average
            nothing = {"mean": None, "ci95": [None, None]}
            condition["trajectory"].update(
                n_excluded=2, rho_schedule=nothing, rho_natural=nothing, starts_correct={**nothing, "n": 0}
            )
        recs.append(cell_record(c, condition))
    return {
        "protocol": "dynamic",
        "model": "demo",
        "status": "finished",
        "n_cells": len(recs),
        "n_done": len(recs),
        "over": {"k": [2, 4], "strength": [1e4]},
        "prompts": [None],
        "settings": {"n_strips": 2, "n_panels": 6},
        "baselines": {},
        "cells": recs,
    }


def test_a_dynamic_sweeps_table_prints_rho_and_the_trajectory_results():
    from gaze_explorer.cli.sweep import format_sweep_table

    lines = format_sweep_table(_dynamic_report()).splitlines()
    gaze4 = next(line for line in lines if line.startswith("gaze") and "K=4" in line)
    assert "rho +0.90" in gaze4 and "blind rho +0.45" in gaze4 and "order -0.25" in gaze4
    assert "starts-correct 50.0 %" in gaze4 and "excluded 0/2" in gaze4
    all_heads = next(line for line in lines if line.startswith("all"))
    assert "blind rho n/a order n/a starts-correct n/a excluded 2/2" in all_heads


def test_a_dynamic_sweeps_figure_draws_rho_against_the_schedule(tmp_path, monkeypatch):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from gaze_explorer.cli.sweep import save_sweep_figure

    report = _dynamic_report()
    assert [y for _, y, *_ in curves(report["cells"], "k", "spearman")["gaze"]] == [0.4, 0.9]
    drawn = {}
    real = Figure.savefig

    def spy(fig, *args, **kwargs):
        drawn.update(
            {ax.get_ylabel(): [list(line.get_ydata()) for line in ax.get_lines()] for ax in fig.axes}
        )
        return real(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    save_sweep_figure(report, tmp_path / "dyn.png")
    rho_axis = next(label for label in drawn if "rho" in label)
    assert [0.4, 0.9] in drawn[rho_axis] and [-0.2, -0.1] in drawn[rho_axis]  # gaze, random along K
    assert any("accuracy" in label for label in drawn)
    assert (tmp_path / "dyn.png").read_bytes()[:4] == b"\x89PNG"


# -- 7: docs --------------------------------------------------------------------------------------
def test_the_defaults_table_names_an_existing_flag_for_every_default():
    from gaze_explorer.cli.parser import build_parsers

    text = (ROOT / "docs" / "paper_protocol.md").read_text(encoding="utf-8")
    section = text.split("## Defaults and where they are recorded", 1)[1].split("\n## ", 1)[0]
    table = section.strip().split("\n\n", 1)[0]  # the section's first table
    rows = [line for line in table.splitlines() if line.startswith("|") and not line.startswith("|---")][1:]
    assert len(rows) >= 5
    helps = {name: p.format_help() for name, p in build_parsers().commands.items()}
    for row in rows:
        flags = re.findall(r"`(--[a-z-]+)", row.split("|")[4])
        assert flags, f"no flag for: {row}"
        for flag in flags:
            assert flag in helps["evaluate"], f"{flag} is not an evaluate flag"
    assert any("--baseline-rule" in row and "same-as-unsteered" in row for row in rows)
    assert any("--n-resamples" in row and "bootstrap" in row for row in rows)


def test_evaluation_json_points_its_demo_numbers_to_the_measured_tables():
    text = (ROOT / "docs" / "evaluation_json.md").read_text(encoding="utf-8")
    closing = text.rsplit("\n## ", 1)[1]
    assert "paper_protocol.md" in closing


def test_a_sweep_notes_each_criterion_whose_largest_k_exceeds_its_selection():
    from gaze_explorer.cli.sweep import fill_in_notes

    grid = np.arange(40, dtype=float).reshape(4, 10)
    grids = {"gaze": grid, "image": grid, "localization": grid}
    selection = {
        "image": {"n_selected": 8, "params": {"fill_in": "z order"}},
        "localization": {"n_selected": 1, "params": {"fill_in": "the project's order"}},
    }
    notes = fill_in_notes(("gaze", "image", "localization"), (2, 5), 4, 10, grids, selection)
    assert notes == [
        "note: localization (K up to 5): only 1 head(s) pass the localization criterion's own selection; "
        "the other 4 are fill-ins by the project's order"
    ]


@needs_demo
def test_evaluate_region_on_coco_takes_n_resamples(discovery, tmp_path):
    coco = ROOT / "tests" / "data" / "coco_tiny"
    out = tmp_path / "coco.json"
    argv = ["evaluate", "region", *CPU, "--heads-file", str(discovery / "ranking.json"), "--top-k", "4"]
    argv += ["--coco-annotations", str(coco / "instances.json"), "--images", str(coco), "--max-images", "1"]
    assert main([*argv, "--max-new-tokens", "2", "--n-resamples", "123", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["settings"]["n_resamples"] == 123
