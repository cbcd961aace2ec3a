"""Sharded runs beyond discover/evaluate: ``report --executor local`` runs its sweep stage as two local
shards of (cell, strip) units, merged before the report is built, and gives exactly the stage result
and report.json of the unsharded report (test_cli_report's, made once per session); ``--resume``
reruns only the shards without a partial result (none here: only the merge runs). COCO region
evaluation and ``discover --session`` are sharded on submitit's mocked SLURM cluster (each task run
in this process as SLURM would run it, so no fresh python per shard): both equal one run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from gaze_explorer.cli import main

pytest.importorskip("jinja2")
pytest.importorskip("matplotlib")

from test_cli_report import COCO_ARGS, TINY, report_dir  # noqa: F401  (report_dir: the fixture)

SHARDED = ["--executor", "local", "--jobs", "2"]


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _run_on_mocked_slurm(argv: list[str], shards: Path) -> None:
    """``argv --executor slurm --jobs 2 --detach`` on submitit's mocked cluster, every task run."""
    pytest.importorskip("submitit")
    from submitit import SlurmJob
    from submitit.core import submission
    from submitit.slurm.test_slurm import mocked_slurm

    with mocked_slurm() as cluster:
        assert main([*argv, "--executor", "slurm", "--jobs", "2", "--detach"]) == 0
        for job_id in json.loads((shards / "slurm_jobs.json").read_text()):
            job = SlurmJob(shards / "slurm" / "%j", job_id)
            with cluster.job_context(job.job_id):
                submission.process_job(job.paths.folder)


def test_sharded_sweep_stage_equals_one_run(report_dir, tmp_path, capfd):  # noqa: F811
    out = tmp_path / "sharded"
    shutil.copytree(report_dir, out)
    stages, one = out / "stages", report_dir / "stages"
    (stages / "sweep.json").unlink()
    (out / "report.json").unlink()
    argv = ["report", "--model", "demo", *TINY, "--resume", "--out", str(out), *COCO_ARGS, *SHARDED]
    assert main(argv) == 0
    err = capfd.readouterr().err
    assert err.count("evaluate: 2 of 2 shards to run") == 1
    assert "loading model" not in err  # the report process loads no model: its shards do
    partials = sorted((stages / "sweep.json.shards").glob("shard-*-of-0002.json"))
    assert len(partials) == 2
    assert all(_json(p)["cell_units"] for p in partials)  # both shards ran (cell, strip) units
    assert _json(stages / "sweep.json") == _json(one / "sweep.json")
    assert _json(out / "report.json") == _json(report_dir / "report.json")

    # the sweep stage lost after its shards finished: --resume runs no shard again, only the merge
    (stages / "sweep.json").unlink()
    kept = [p.stat().st_mtime_ns for p in partials]
    assert main(["report", "--model", "demo", *TINY, "--resume", "--out", str(out), *SHARDED]) == 0
    err = capfd.readouterr().err
    assert "shards to run" not in err and "merged 2 shards" in err
    assert [p.stat().st_mtime_ns for p in partials] == kept
    assert _json(stages / "sweep.json") == _json(one / "sweep.json")


def test_coco_region_in_two_shards_equals_one_run(report_dir, tmp_path):  # noqa: F811
    """Every n-th image per shard; the merge interleaves the images back: the whole JSON is equal."""
    ranking = report_dir / "stages" / "discovery" / "ranking.json"
    argv = ["evaluate", "region", "--model", "demo", "--device", "cpu", "--heads-file", str(ranking)]
    argv += [*COCO_ARGS, "--conditions", "gaze,random,baseline", "--max-new-tokens", "4"]
    assert main([*argv, "--json", str(tmp_path / "one.json")]) == 0
    shards = tmp_path / "two.json.shards"
    _run_on_mocked_slurm([*argv, "--json", str(tmp_path / "two.json")], shards)
    partials = sorted(shards.glob("shard-*-of-0002.json"))
    assert [len({g["image_id"] for g in _json(p)["generations"]}) for p in partials] == [1, 1]
    assert main(["merge", str(shards)]) == 0
    assert _json(tmp_path / "two.json") == _json(tmp_path / "one.json")


def test_sharded_discover_stores_the_merged_discovery_in_a_session(tmp_path):
    """``discover --session`` under ``--executor``: the merge loads the model and stores what one
    run stores."""
    from gaze_explorer.storage import SessionReader

    discover = ["discover", "--model", "demo", "--device", "cpu", "--n-strips", "2"]
    assert main([*discover, "--out", str(tmp_path / "one"), "--session", str(tmp_path / "one.h5")]) == 0
    shards = tmp_path / "two.shards"
    _run_on_mocked_slurm(
        [*discover, "--out", str(tmp_path / "two"), "--session", str(tmp_path / "two.h5")], shards
    )
    assert not (tmp_path / "two.h5").exists()  # written by the merge, from the merged discovery
    assert main(["merge", str(shards)]) == 0
    with SessionReader(tmp_path / "one.h5") as one, SessionReader(tmp_path / "two.h5") as two:
        np.testing.assert_allclose(two.gaze_scores(), one.gaze_scores(), rtol=0, atol=1e-6)
        np.testing.assert_array_equal(two.image, one.image)
        assert [d.params for d in two.discoveries()] == [d.params for d in one.discoveries()]
        merged = np.load(tmp_path / "two" / "gaze_scores.npy")  # the merged --out folder's scores
        np.testing.assert_allclose(two.gaze_scores(), merged, rtol=0, atol=1e-6)


def test_report_executor_flags_are_checked(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["report", "--model", "demo", "--out", str(tmp_path), "--executor", "slurm", "--detach"])
    assert exc.value.code == 2 and "each stage needs the one before it merged" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["report", "--model", "demo", "--out", str(tmp_path), "--jobs", "2", "--shard-dir", "x"])
    assert exc.value.code == 2 and "--shard-dir needs --executor" in capsys.readouterr().err
