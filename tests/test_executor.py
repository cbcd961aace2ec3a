"""Sharded runs (``--executor local|slurm``) and ``gaze-explorer merge`` on the demo model: three
shards merged give exactly the unsharded discovery, two the unsharded evaluation; a shard killed
mid-run is resumed by running the command again; the SLURM path submits one job array, checked
with submitit's own mocked cluster (its sbatch file, and each task run as SLURM would run it).

Each local shard is a fresh ``python`` that spends ~6 s of CPU importing torch and transformers
before its one or two strips, so only the discovery test runs three (the strips interleave across
shards); the evaluation and resume tests run two, which shows the same merge and resume.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gaze_explorer.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "resources" / "demo_model" / "config.json"
COMMON = ["--model", "demo", "--device", "cpu"]
DISCOVER = ["discover", *COMMON, "--n-strips", "6"]
OUTPUTS = ("gaze_scores.npy", "panel_matrices.npy", "image_mass.npy", "image_maps.npy")

pytestmark = pytest.mark.skipif(not DEMO.exists(), reason="the demo model is not bundled in this checkout")


@pytest.fixture(scope="module")
def unsharded(tmp_path_factory):
    out = tmp_path_factory.mktemp("unsharded") / "discovery"
    assert main([*DISCOVER, "--out", str(out)]) == 0
    return out


def _same_discovery(a: Path, b: Path) -> None:
    np.testing.assert_allclose(
        np.load(b / "gaze_scores.npy"), np.load(a / "gaze_scores.npy"), rtol=0, atol=1e-6
    )
    for name in OUTPUTS:
        np.testing.assert_allclose(np.load(b / name), np.load(a / name), rtol=0, atol=1e-6)
    ranked = [json.loads((d / "ranking.json").read_text()) for d in (a, b)]
    assert [(r["layer"], r["head"]) for r in ranked[1]] == [(r["layer"], r["head"]) for r in ranked[0]]
    assert json.loads((b / "discovery.json").read_text()) == json.loads((a / "discovery.json").read_text())


def test_three_local_shards_discover_what_one_run_does(unsharded, tmp_path):
    out = tmp_path / "sharded"
    assert main([*DISCOVER, "--out", str(out), "--executor", "local", "--jobs", "3"]) == 0
    partials = sorted((tmp_path / "sharded.shards").glob("shard-*-of-0003.npz"))
    assert len(partials) == 3
    with np.load(partials[1]) as z:  # shard 2/3 holds strips 1 and 4, the sums of its maps
        assert z["strip_indices"].tolist() == [1, 4] and int(z["n_total"]) == 6
    _same_discovery(unsharded, out)


def test_sharded_discover_keeps_the_localization_variants(tmp_path):
    """The merge applies the sharded command's --loc-entropy/--loc-bottom-row as one run does."""
    argv = ["discover", *COMMON, "--n-strips", "2", "--loc-entropy", "code", "--loc-bottom-row", "off"]
    assert main([*argv, "--out", str(tmp_path / "one")]) == 0
    assert main([*argv, "--out", str(tmp_path / "two"), "--executor", "local", "--jobs", "2"]) == 0
    one, two = (json.loads((tmp_path / d / "discovery.json").read_text()) for d in ("one", "two"))
    assert two["criteria"]["localization"] == one["criteria"]["localization"]
    assert one["criteria"]["localization"]["entropy_variant"] == "code"


@pytest.mark.parametrize("protocol", ["static", "dynamic"])
def test_two_local_shards_evaluate_what_one_run_does(unsharded, tmp_path, protocol):
    """Per-pair judgements, accuracies and bootstrap CIs equal a single run's (dynamic: the
    schedules, drawn strip after strip from one seeded generator, too)."""
    argv = [
        "evaluate",
        protocol,
        *COMMON,
        "--heads-file",
        str(unsharded / "ranking.json"),
        "--max-strips",
        "3",
    ]
    argv += [
        "--conditions",
        "gaze,random,baseline",
        "--max-new-tokens",
        "12" if protocol == "dynamic" else "5",
    ]
    if protocol == "dynamic":
        argv += ["--switch-every", "2", "--n-panels", "6"]
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    assert main([*argv, "--json", str(one)]) == 0
    assert main([*argv, "--json", str(two), "--executor", "local", "--jobs", "2"]) == 0
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert [g["strip"] for g in b["generations"]] == [g["strip"] for g in a["generations"]]
    assert b == a


def _shard_pids(marker: str, shard: str) -> list[int]:
    """Processes whose command line holds ``marker`` (a path unique to the test) and ``--shard``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in b" ".join(args) and shard.encode() in args:
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the shard process through /proc")
def test_a_killed_shard_is_resumed_and_the_merge_is_unchanged(unsharded, tmp_path):
    out = tmp_path / "resumed"
    cmd = [*DISCOVER, "--out", str(out), "--executor", "local", "--jobs", "2", "--retries", "0"]
    parent = subprocess.Popen(
        [sys.executable, "-m", "gaze_explorer.cli", *cmd],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        victims: list[int] = []
        while not victims and time.monotonic() < deadline and parent.poll() is None:
            victims = _shard_pids(str(out), "2/2")
            time.sleep(0.05)
        assert victims, "shard 2/2 never started"
        for pid in victims:
            os.kill(pid, signal.SIGKILL)  # shard 2 dies before it can write its partial result
        log = parent.communicate(timeout=300)[0].decode()
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
    assert parent.returncode == 1 and "run the same command again to resume" in log
    shards = tmp_path / "resumed.shards"
    done = {p.name: p.stat().st_mtime_ns for p in shards.glob("shard-*.npz")}
    assert sorted(done) == ["shard-0001-of-0002.npz"]
    assert not out.exists()

    assert main(cmd) == 0  # the same command again: only shard 2 runs
    assert {p.name: p.stat().st_mtime_ns for p in shards.glob("shard-0001*.npz")} == done
    assert (shards / "shard-0002-of-0002.npz").exists()
    _same_discovery(unsharded, out)


def test_slurm_submits_one_job_array_that_merges_to_one_run(unsharded, tmp_path, capsys):
    pytest.importorskip("submitit")
    from submitit import SlurmJob
    from submitit.core import submission
    from submitit.slurm.test_slurm import mocked_slurm  # submitit's own cluster stand-in

    out = tmp_path / "slurm"
    argv = [*DISCOVER, "--out", str(out), "--executor", "slurm", "--jobs", "3", "--detach"]
    argv += ["--slurm-partition", "gpu", "--slurm-gpus-per-job", "1", "--slurm-time-min", "90"]
    shards = tmp_path / "slurm.shards"
    with mocked_slurm() as cluster:
        assert main(argv) == 0
        ids = json.loads((shards / "slurm_jobs.json").read_text())
        array_id = ids[0].split("_")[0]
        assert ids == [f"{array_id}_{k}" for k in range(3)]
        scripts = list((shards / "slurm").rglob("*_submission.sh"))
        assert len(scripts) == 1
        sbatch = [line.strip() for line in scripts[0].read_text().splitlines() if line.startswith("#SBATCH")]
        for line in ("--array=0-2%3", "--partition=gpu", "--gpus-per-node=1", "--time=90"):
            assert f"#SBATCH {line}" in sbatch
        jobs = [SlurmJob(shards / "slurm" / "%j", job_id) for job_id in ids]
        for k, job in enumerate(jobs, start=1):
            shard_argv, partial = job.submission().args  # paths and flags, never a model
            assert all(isinstance(a, str) for a in shard_argv) and ["--shard", f"{k}/3"] == shard_argv[-4:-2]
            assert partial == str(shards / f"shard-{k:04d}-of-0003.npz")
            assert not Path(partial).exists()
            with cluster.job_context(job.job_id):
                submission.process_job(job.paths.folder)  # the task as SLURM runs it
            assert Path(partial).exists()
    assert "when it is done: gaze-explorer merge" in capsys.readouterr().err
    assert main(["merge", str(shards)]) == 0
    _same_discovery(unsharded, out)


def test_merge_refuses_an_incomplete_or_foreign_folder(tmp_path, capsys):
    assert main(["merge", str(tmp_path)]) == 1
    assert "holds no manifest.json" in capsys.readouterr().err
    (tmp_path / "manifest.json").write_text(
        json.dumps({"command": "discover", "argv": [], "n_shards": 2, "out": "x"})
    )
    assert main(["merge", str(tmp_path)]) == 1
    assert "shard(s) 1, 2 of 2 have no result yet" in capsys.readouterr().err


def test_executor_flags_are_checked(capsys):
    with pytest.raises(SystemExit) as exc:
        main([*DISCOVER, "--out", "x", "--executor", "local", "--shard", "1/2"])
    assert exc.value.code == 2 and "leave out --shard" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([*DISCOVER, "--out", "x", "--slurm-partition", "gpu"])
    assert exc.value.code == 2 and "needs --executor" in capsys.readouterr().err
    assert main(["evaluate", "static", *COMMON, "--executor", "local"]) == 1
    assert "--executor needs --json" in capsys.readouterr().err
