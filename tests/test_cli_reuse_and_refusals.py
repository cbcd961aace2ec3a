"""Issue 17's re-audit of the CLI, on the bundled demo model (2 strips, short answers): a discovery's
Localization Heads variants are kept when its results are reused (``evaluate --heads-file``,
``generate --ranking``, ``export --session``) unless a ``--loc`` flag overrides them; ``evaluate
sweep`` honours ``--judge`` and records the judge, the input policy, the coverage and the heads file
(``--resume`` refuses another judge or input policy); flags that would be ignored are refused; a
dynamic sweep records no same-as-unsteered rule and does not compare it on ``--resume``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from gaze_explorer.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "resources" / "demo_model" / "config.json"
needs_demo = pytest.mark.skipif(not DEMO.exists(), reason="the demo model is not bundled in this checkout")
CPU = ["--model", "demo", "--device", "cpu"]
VARIANTS = ["--loc-entropy", "code", "--loc-bottom-row", "off"]


@pytest.fixture(scope="module")
def discovery(tmp_path_factory):
    """A discovery made with non-default Localization Heads variants, also stored in a session."""
    if not DEMO.exists():
        pytest.skip("the demo model is not bundled")
    root = tmp_path_factory.mktemp("reuse")
    out, session = root / "d1", root / "ds.h5"
    assert (
        main(["discover", *CPU, "--n-strips", "2", "--out", str(out), "--session", str(session), *VARIANTS])
        == 0
    )
    return out, session


def _loc_order(out: Path, **variants) -> list[list[int]]:
    """The top-10 Localization Heads of the discovery in ``out`` under ``variants``, sorted."""
    from gaze_explorer.core.criteria import localization_heads

    found = localization_heads(np.load(out / "image_mass.npy"), np.load(out / "image_maps.npy"), **variants)
    return sorted(list(hd) for hd in found.order[:10])


@needs_demo
def test_the_variants_make_a_difference_on_the_demo(discovery):
    out, _ = discovery  # else the tests below could not tell the recorded variants from the defaults
    assert _loc_order(out, entropy_variant="code", bottom_row="off") != _loc_order(out)


@needs_demo
def test_evaluate_with_a_heads_file_uses_the_recorded_variants_unless_a_flag_overrides(discovery, tmp_path):
    out, _ = discovery
    argv = ["evaluate", "static", *CPU, "--max-strips", "1", "--heads-file", str(out / "ranking.json")]
    argv += ["--max-new-tokens", "2", "--conditions", "localization,baseline", "--top-k", "10"]
    assert main([*argv, "--json", str(tmp_path / "a.json")]) == 0
    choice = json.loads((tmp_path / "a.json").read_text())["head_choices"]["localization"]
    params = choice["criterion_params"]
    assert (params["entropy_variant"], params["bottom_row"]) == ("code", "off")
    assert sorted(choice["heads"]) == _loc_order(out, entropy_variant="code", bottom_row="off")
    assert main([*argv, "--loc-entropy", "paper", "--json", str(tmp_path / "b.json")]) == 0
    choice = json.loads((tmp_path / "b.json").read_text())["head_choices"]["localization"]
    params = choice["criterion_params"]
    assert (params["entropy_variant"], params["bottom_row"]) == ("paper", "off")
    assert sorted(choice["heads"]) == _loc_order(out, entropy_variant="paper", bottom_row="off")


@needs_demo
def test_generate_with_a_ranking_uses_the_recorded_variants_and_takes_the_flags(discovery):
    from gaze_explorer.cli.generate import heads_for
    from gaze_explorer.cli.helpers import load
    from gaze_explorer.cli.parser import build_parsers, check_args

    out, _ = discovery
    parsers = build_parsers()
    base = ["generate", *CPU, "--image", "x.png", "--prompt", "q", "--panels", "6", "--target", "2"]
    base += ["--heads", "localization:10", "--ranking", str(out / "ranking.json")]
    args = parsers.main.parse_args(base)
    check_args(parsers, args)
    loaded = load(args)
    choice = heads_for(args, loaded)
    assert sorted(list(hd) for hd in choice.heads.heads) == _loc_order(
        out, entropy_variant="code", bottom_row="off"
    )
    assert choice.criterion_params["entropy_variant"] == "code"
    args = parsers.main.parse_args([*base, "--loc-entropy", "paper", "--loc-bottom-row", "code"])
    args.loaded = loaded
    choice = heads_for(args, loaded)
    assert sorted(list(hd) for hd in choice.heads.heads) == _loc_order(out)


@needs_demo
def test_export_ranks_localization_heads_with_the_sessions_discovery_variants(discovery, tmp_path):
    out, session = discovery
    target = tmp_path / "heads.json"
    argv = ["export", "--session", str(session), "--figure", "heads", "--heads", "localization:10"]
    assert main([*argv, "--out", str(target)]) == 0
    written = json.loads(target.read_text())
    records = written["heads"] if isinstance(written, dict) else written
    heads = [[r["layer"], r["head"]] if isinstance(r, dict) else list(r) for r in records]
    assert sorted(heads) == _loc_order(out, entropy_variant="code", bottom_row="off")


# -- 2, 4: the sweep's judge, its recorded settings and --resume --------------------------------------
def _sweep(out: Path, json_path: Path, *extra: str, protocol: str = "static") -> int:
    argv = ["evaluate", "sweep", "--protocol", protocol, *CPU, "--max-strips", "1", "--criteria", "gaze"]
    argv += ["--heads-file", str(out / "ranking.json"), "--max-new-tokens", "3", "--over", "k=3"]
    return main([*argv, "--n-resamples", "100", *extra, "--json", str(json_path)])


@needs_demo
def test_a_sweep_honours_the_judge_records_its_settings_and_resume_refuses_another(
    discovery, tmp_path, capsys
):
    out, _ = discovery
    captions = tmp_path / "captions.json"
    assert _sweep(out, captions, "--judge", "captions") == 0
    report = json.loads(captions.read_text())
    settings = report["settings"]
    assert settings["judge"] == "captions"
    assert settings["input_policy"] == "native" and settings["image_coverage_min"] == pytest.approx(1.0)
    assert settings["heads_file"] == "ranking.json"
    assert settings["heads_sha256"] == hashlib.sha256((out / "ranking.json").read_bytes()).hexdigest()
    assert (settings["loc_entropy"], settings["loc_bottom_row"]) == ("code", "off")  # the recorded ones

    def scores(rep: dict) -> list[float]:
        gens = [g for records in rep["baseline_generations"].values() for g in records]
        return [x for g in gens for x in g["judge"]["scores"]]

    # the caption judge's BM25 scores, not the exact judge's (the demo strips' auto choice) counts
    assert any(x != int(x) for x in scores(report))
    auto = tmp_path / "auto.json"
    assert _sweep(out, auto) == 0
    auto_report = json.loads(auto.read_text())
    assert auto_report["settings"]["judge"] == "attributes"
    assert all(x == int(x) for x in scores(auto_report))
    capsys.readouterr()
    assert _sweep(out, tmp_path / "x.json", "--judge", "attributes", "--resume", str(captions)) == 1
    assert "judge 'captions' -> 'attributes'" in capsys.readouterr().err
    # a file run under another input policy (the demo model has only native) is refused the same way
    report["settings"]["input_policy"] = "squash"
    captions.write_text(json.dumps(report))
    assert _sweep(out, tmp_path / "y.json", "--judge", "captions", "--resume", str(captions)) == 1
    assert "input_policy 'squash' -> 'native'" in capsys.readouterr().err
    # and one whose heads came from another ranking
    report["settings"]["input_policy"] = "native"
    report["settings"]["heads_sha256"] = "0" * 64
    captions.write_text(json.dumps(report))
    assert _sweep(out, tmp_path / "z.json", "--judge", "captions", "--resume", str(captions)) == 1
    assert "heads_sha256 '000" in capsys.readouterr().err


@needs_demo
def test_a_dynamic_sweep_records_no_baseline_rule_and_resume_does_not_compare_it(discovery, tmp_path, capsys):
    out, _ = discovery
    first = tmp_path / "dyn.json"
    assert _sweep(out, first, "--max-new-tokens", "6", protocol="dynamic") == 0
    report = json.loads(first.read_text())
    assert report["settings"]["baseline_rule"] is None
    # a file written before: it recorded the rule; another rule now must not refuse it
    report["settings"]["baseline_rule"] = "jaccard"
    first.write_text(json.dumps(report))
    capsys.readouterr()
    again = ["--max-new-tokens", "6", "--baseline-rule", "off", "--resume", str(first)]
    assert _sweep(out, tmp_path / "dyn2.json", *again, protocol="dynamic") == 0
    assert f"resuming {first}: 3 of 3 cells done" in capsys.readouterr().err


# -- 3: flags that would be ignored are refused -------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "static", "--criteria", "image"], "--criteria only applies to evaluate sweep"),
        (["evaluate", "dynamic", "--criteria", "gaze"], "--criteria only applies to evaluate sweep"),
        (
            ["evaluate", "sweep", "--over", "k=3,5", "--top-k", "7"],
            "--top-k does not apply with --over k=...",
        ),
        (
            ["evaluate", "sweep", "--over", "strength=1,10", "--strength", "5"],
            "--strength does not apply with --over strength=...",
        ),
    ],
)
def test_flags_that_would_be_ignored_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_the_flags_that_still_apply_are_accepted():
    from gaze_explorer.cli.parser import build_parsers, check_args

    parsers = build_parsers()
    for argv, strength, top_k in [
        (["evaluate", "sweep", "--over", "k=3,5", "--strength", "5"], 5.0, None),
        (["evaluate", "sweep", "--over", "strength=1,10", "--top-k", "7"], 10_000.0, 7),
        (["evaluate", "static"], 10_000.0, None),
    ]:
        args = parsers.main.parse_args(argv)
        check_args(parsers, args)
        assert (args.strength, args.top_k) == (strength, top_k)
