"""Sharded runs of ``discover`` and ``evaluate`` (sweeps and COCO region included): ``--executor local|slurm``.

The command's strips are cut into ``--jobs N`` shards (``--shard i/n``: every n-th strip; a COCO
region run: every n-th image; a sweep: every n-th (cell, strip) unit; never more shards than
strips or images), each
run as its own job: the same command line with ``--shard i/n`` and a partial-result file in the
shard folder (``--shard-dir``, default beside the output). Jobs receive file paths and flags,
never models: each loads the model itself. A shard writes its partial result atomically when it
is done, so a killed or pre-empted shard leaves nothing, and running the same command again
(resume) runs only the shards whose partial is missing. ``cli.merge`` then builds exactly what a
single run would have written (``gaze-explorer merge DIR`` does it by hand).

``local`` runs the shards as parallel subprocesses of this machine (no extra dependency). ``slurm``
submits them as one job array through submitit (``pip install gaze-explorer[cluster]``), waits for
them and merges, or with ``--detach`` returns once submitted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from gaze_explorer.core.errors import GazeExplorerError

MANIFEST = "manifest.json"
# the executor's own flags (with the number of values each takes): dropped from a shard's command
EXECUTOR_FLAGS = {
    "--executor": 1,
    "--jobs": 1,
    "--shard-dir": 1,
    "--retries": 1,
    "--detach": 0,
    "--slurm-partition": 1,
    "--slurm-gpus-per-job": 1,
    "--slurm-cpus-per-job": 1,
    "--slurm-mem-gb": 1,
    "--slurm-time-min": 1,
    "--slurm-array-parallelism": 1,
}


def partial_name(command: str, index: int, n: int) -> str:
    """The partial-result file of shard ``index`` (1-based) of ``n``."""
    ext = "npz" if command == "discover" else "json"
    return f"shard-{index:04d}-of-{n:04d}.{ext}"


def _target(args: argparse.Namespace) -> str | None:
    """Where the merged result goes: discover's ``--out``, evaluate's ``--json`` (a sweep's
    ``--resume`` file too: a sharded sweep resumes by its shards)."""
    if args.command == "discover":
        return args.out
    return getattr(args, "json", None) or getattr(args, "resume", None)


def shard_dir_for(args: argparse.Namespace) -> Path:
    """``--shard-dir``, or beside the output: ``OUT.shards`` (discover) / ``JSON.shards`` (evaluate)."""
    if args.shard_dir:
        return Path(args.shard_dir)
    return Path(str(_target(args)).rstrip("/\\") + ".shards")


def n_items(args: argparse.Namespace) -> int | None:
    """How many strips (COCO: images) the command covers, None for a sweep (its units are cells
    times strips): more shards than that would leave some empty."""
    if getattr(args, "sweep", False):
        return None
    if getattr(args, "coco_annotations", None):
        from gaze_explorer.core.coco import MIN_BOX_AREA, objects_by_image, read_coco, select_objects

        area = MIN_BOX_AREA if args.min_box_area is None else args.min_box_area
        selection = select_objects(read_coco(args.coco_annotations).objects, area, args.max_images)
        return len(objects_by_image(selection.objects))
    from gaze_explorer.cli.helpers import load_strips

    limit = args.n_strips if args.command == "discover" else (args.max_strips or args.n_strips)
    return len(load_strips(args, limit))


def strip_flags(argv: list[str], flags: dict[str, int]) -> list[str]:
    """``argv`` without ``flags`` (``--flag value``, ``--flag=value`` or a bare switch)."""
    out: list[str] = []
    skip = 0
    for item in argv:
        if skip:
            skip -= 1
            continue
        name = item.split("=", 1)[0]
        if name in flags:
            skip = 0 if "=" in item else flags[name]
            continue
        out.append(item)
    return out


def shard_argv(base: list[str], command: str, index: int, n: int, directory: Path) -> list[str]:
    """The command line of one shard: the user's, minus executor flags (and evaluate's ``--json``,
    which becomes the shard's partial), plus ``--shard i/n`` and where to put the partial."""
    partial = str(directory / partial_name(command, index, n))
    if command == "discover":
        return [*base, "--shard", f"{index}/{n}", "--partial", partial]
    own = {"--json": 1, "--resume": 1, "--figure": 1}  # the merge writes the JSON and the figure
    return [*strip_flags(base, own), "--shard", f"{index}/{n}", "--json", partial]


def run_shard(argv: list[str], partial: str) -> str:
    """Run one shard in this process (the job a SLURM array task runs); returns its partial file.

    Raises when the command fails or leaves no partial, so submitit reports the task as failed."""
    from gaze_explorer.cli import main

    code = main(list(argv))
    if code != 0 or not Path(partial).exists():
        raise RuntimeError(f"shard failed (exit code {code}): gaze-explorer {' '.join(argv)}")
    return partial


def _write_manifest(directory: Path, manifest: dict) -> None:
    path = directory / MANIFEST
    if directory.exists() and not directory.is_dir():
        raise GazeExplorerError(f"--shard-dir {directory} is a file, not a folder")
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise GazeExplorerError(
                f"cannot read {path} ({exc}): not a sharded run's manifest; choose another --shard-dir"
            ) from None
        if not isinstance(old, dict):
            raise GazeExplorerError(f"{path} is not a sharded run's manifest; choose another --shard-dir")
        if {k: old.get(k) for k in ("command", "argv", "n_shards")} != {
            k: manifest[k] for k in ("command", "argv", "n_shards")
        }:
            raise GazeExplorerError(
                f"{directory} holds the shards of another run ({' '.join(old.get('argv', []))}, "
                f"{old.get('n_shards')} shards); choose another --shard-dir or delete it"
            )
        return
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    tmp.replace(path)


def missing_shards(directory: Path, command: str, n: int) -> list[int]:
    """The shards (1-based) whose partial result is not in ``directory`` yet."""
    return [i for i in range(1, n + 1) if not (directory / partial_name(command, i, n)).exists()]


def run(args: argparse.Namespace) -> int:
    """Run ``args.command`` sharded with ``args.executor``, then merge (unless ``--detach``)."""
    if args.command == "evaluate" and not _target(args):
        raise GazeExplorerError("--executor needs --json FILE: the merged results are written there")
    session = getattr(args, "session", None)
    if session and Path(session).exists():  # a session that cannot take the discovery fails now
        from gaze_explorer.storage import SessionReader

        SessionReader(session).close()
    n = int(args.jobs)
    count = n_items(args)
    if count is not None:
        if count == 0:
            raise GazeExplorerError("nothing to shard: no strips (or COCO images) selected")
        n = min(n, count)
    directory = shard_dir_for(args).absolute()
    base = strip_flags(list(args.argv), EXECUTOR_FLAGS)
    figure = getattr(args, "figure", None)
    _write_manifest(
        directory,
        {
            "command": args.command,
            "argv": base,
            "n_shards": n,
            "out": str(Path(args.out).absolute()) if args.command == "discover" else None,
            "json": str(Path(_target(args)).absolute()) if args.command == "evaluate" else None,
            "figure": str(Path(figure).absolute()) if figure else None,
            # discover --session: the merge loads the model once and stores the merged discovery
            "session": str(Path(session).absolute()) if session else None,
        },
    )
    for attempt in range(int(args.retries) + 1):
        todo = missing_shards(directory, args.command, n)
        if not todo:
            break
        done = n - len(todo)
        print(
            f"{args.command}: {len(todo)} of {n} shards to run"
            + (f" ({done} already done, resumed)" if done else "")
            + (f", retry {attempt}" if attempt else ""),
            file=sys.stderr,
        )
        jobs = [(shard_argv(base, args.command, i, n, directory), i) for i in todo]
        if args.executor == "slurm":
            if _submit_slurm(args, directory, jobs, n):
                return 0  # detached: merge later with `gaze-explorer merge DIR`
        else:
            _run_local(jobs, directory)
    todo = missing_shards(directory, args.command, n)
    if todo:
        raise GazeExplorerError(
            f"shard(s) {', '.join(map(str, todo))} of {n} failed (logs in {directory}); "
            "run the same command again to resume them"
        )
    from gaze_explorer.cli.merge import merge_dir

    return merge_dir(directory)


def _run_local(jobs: list[tuple[list[str], int]], directory: Path) -> None:
    """Every shard as a subprocess (``python -m gaze_explorer.cli``), all at once; logs per shard."""
    env = dict(os.environ)
    procs = []
    for argv, index in jobs:
        log = (directory / f"shard-{index:04d}.log").open("w", encoding="utf-8")
        cmd = [sys.executable, "-m", "gaze_explorer.cli", *argv]
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log, index))
    for proc, log, index in procs:
        code = proc.wait()
        log.close()
        if code != 0:
            print(f"shard {index} failed (exit code {code}); see {log.name}", file=sys.stderr)


def slurm_executor(args: argparse.Namespace, directory: Path):
    """A submitit ``SlurmExecutor`` logging under ``DIR/slurm``, with the ``--slurm-*`` settings."""
    try:
        import submitit
    except ImportError:
        raise GazeExplorerError(
            "--executor slurm needs submitit: pip install 'gaze-explorer[cluster]' (or pip install submitit)"
        ) from None
    executor = submitit.SlurmExecutor(folder=directory / "slurm" / "%j")
    params = {
        "job_name": f"gaze-explorer-{args.command}",
        "partition": args.slurm_partition,
        "gpus_per_node": args.slurm_gpus_per_job,
        "cpus_per_task": args.slurm_cpus_per_job,
        "mem": f"{args.slurm_mem_gb}GB" if args.slurm_mem_gb else None,
        "time": args.slurm_time_min,
        "array_parallelism": args.slurm_array_parallelism,
    }
    executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return executor


def _submit_slurm(
    args: argparse.Namespace, directory: Path, jobs: list[tuple[list[str], int]], n: int
) -> bool:
    """Submit the shards as one job array; wait for it unless ``--detach``. True when detached."""
    executor = slurm_executor(args, directory)
    partials = [str(directory / partial_name(args.command, i, n)) for _, i in jobs]
    submitted = executor.map_array(run_shard, [argv for argv, _ in jobs], partials)
    ids = [job.job_id for job in submitted]
    (directory / "slurm_jobs.json").write_text(json.dumps(ids), encoding="utf-8")
    print(f"submitted job array {ids[0].split('_')[0]} ({len(ids)} shards); logs in {directory / 'slurm'}")
    if args.detach:
        print(f"when it is done: gaze-explorer merge {directory}", file=sys.stderr)
        return True
    for job in submitted:
        while not job.done():
            time.sleep(10)
        if job.state not in ("COMPLETED", "FINISHED"):
            print(f"job {job.job_id} ended {job.state}; see {job.paths.stderr}", file=sys.stderr)
    return False
