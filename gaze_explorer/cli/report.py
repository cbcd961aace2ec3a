"""``gaze-explorer report``: the paper's experiments on one checkpoint, as one self-contained HTML page.

Each stage is an existing command run in this process on the same parsed arguments a user would
type (``discover --out``, ``evaluate static|narration|dynamic --json``, ``generate --schedule
--session`` twice for the Fig. 2b staircase (gaze heads vs the random control on the first strip,
read back with the session reader), ``evaluate sweep --json``, ``evaluate region
--coco-annotations``), so there is one copy of every protocol; the model is
loaded once and handed to each (``args.loaded``). Stage results stay in ``OUT/stages``: ``--resume``
skips the finished ones (and continues a half-done sweep). Then ``report.json`` (every figure's
numbers, ``core.report_data``) and ``index.html`` (Jinja2 template ``templates/report.html.j2``,
figures drawn with matplotlib and embedded as base64 PNG: no external URL) are written.
``--compare DIR ...`` renders several checkpoints' ``report.json`` side by side instead.

With ``--executor local|slurm --jobs N`` every stage runs as shards (``cli.executor``: each shard
loads the model itself; the report process loads none) and is merged before the next stage starts;
a stage's shards sit beside its result (``OUT/stages/static.json.shards``...), so ``--resume`` also
reruns only the shards that did not finish. Without ``--resume`` earlier shards are removed first.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from gaze_explorer.core.errors import GazeExplorerError
from gaze_explorer.core.evaluation_report import write_json
from gaze_explorer.core.report_data import (
    PAPER,
    REPORT_SCHEMA_VERSION,
    compare_rows,
    discovery_section,
    evaluation_section,
    paper_depth,
    region_section,
    staircase_section,
    sweep_ks,
    sweep_section,
)

STAGES = ("discovery", "static", "narration", "dynamic", "staircase", "sweep", "region")
SHARDABLE = ("discovery", "static", "narration", "dynamic", "sweep", "region")  # under --executor
ALL_CONDITIONS = "gaze,image,localization,random,all,baseline"
N_TOP_MATRICES = 4  # Fig. 2a: the top heads' matrices shown
# --quick: strips per stage (discovery, static/narration, dynamic, sweep) and COCO images
QUICK = {"discovery": 6, "evaluate": 3, "dynamic": 2, "sweep": 2, "images": 2}
TEMPLATE = "report.html.j2"


def _say(text: str) -> None:
    print(f"report: {text}", file=sys.stderr, flush=True)


def _stage_file(out: Path, stage: str) -> Path:
    return out / "stages" / ("discovery/discovery.json" if stage == "discovery" else f"{stage}.json")


def stage_done(out: Path, stage: str) -> bool:
    """A stage is finished when its result file says so (discovery: not partial)."""
    path = _stage_file(out, stage)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return data.get("partial") is False if stage == "discovery" else data.get("status") == "finished"


def _common(args: argparse.Namespace) -> list[str]:
    argv = ["--model", args.model, "--device", args.device, "--dtype", args.dtype, "--seed", str(args.seed)]
    if args.input_policy:
        argv += ["--input-policy", args.input_policy]
    if args.device_map:
        argv += ["--device-map", args.device_map]
    if args.trust_remote_code:
        argv.append("--trust-remote-code")
    return argv


def _comics(args: argparse.Namespace) -> list[str]:
    argv = ["--comics", args.comics, "--n-panels", str(args.n_panels)]
    if args.use_raw:
        argv.append("--use-raw")
    if args.panel_height:
        argv += ["--panel-height", str(args.panel_height)]
    return argv


def _cap(args: argparse.Namespace, quick_key: str) -> list[str]:
    n = args.max_strips or (QUICK[quick_key] if args.quick else None)
    return [] if n is None else ["--max-strips", str(n)]


def stage_argv(args: argparse.Namespace, stage: str, out: Path, ks: tuple[int, ...]) -> list[str]:
    """The command line of one stage, as a user would type it."""
    stages = out / "stages"
    ranking = ["--heads-file", str(stages / "discovery" / "ranking.json")]
    top_k = ["--top-k", str(args.top_k)] if args.top_k else []
    if stage == "discovery":
        n = args.n_strips or (QUICK["discovery"] if args.quick else None)
        return ["discover", *_common(args), *_comics(args), "--out", str(stages / "discovery")] + (
            ["--n-strips", str(n)] if n else []
        )
    if stage in ("static", "narration", "dynamic"):
        cap = _cap(args, "dynamic" if stage == "dynamic" else "evaluate")
        return [
            "evaluate",
            stage,
            *_common(args),
            *_comics(args),
            *ranking,
            *top_k,
            *cap,
            "--conditions",
            ALL_CONDITIONS,
            "--json",
            str(_stage_file(out, stage)),
        ]
    if stage == "sweep":
        path = _stage_file(out, stage)
        sharded = getattr(args, "executor", None)  # sharded: the shard folder resumes it
        resume = (
            ["--resume", str(path)]
            if args.resume and path.exists() and not sharded
            else ["--json", str(path)]
        )
        return [
            "evaluate",
            "sweep",
            "--protocol",
            "static",
            *_common(args),
            *_comics(args),
            *ranking,  # no --top-k: the --over k axis gives the K values
            *_cap(args, "sweep"),
            "--over",
            "k=" + ",".join(map(str, ks)),
            *resume,
        ]
    if stage == "region":
        n = args.max_images or (QUICK["images"] if args.quick else None)
        return [
            "evaluate",
            "region",
            *_common(args),
            *_comics(args),
            *ranking,
            *top_k,
            "--coco-annotations",
            args.coco_annotations,
            "--images",
            args.images,
            "--json",
            str(_stage_file(out, stage)),
        ] + (["--max-images", str(n)] if n else [])
    raise ValueError(stage)


def executor_argv(args: argparse.Namespace, stage: str, out: Path) -> list[str]:
    """``--executor`` and its settings for one stage (``--shard-dir DIR``: ``DIR/<stage>``)."""
    from gaze_explorer.cli.executor import EXECUTOR_FLAGS

    argv: list[str] = []
    for flag in EXECUTOR_FLAGS:
        value = getattr(args, flag[2:].replace("-", "_"), None)
        if flag == "--shard-dir":
            value = str(Path(value) / stage) if value else None
        if value is not None and not isinstance(value, bool):
            argv += [flag, str(value)]
    return argv


def stage_shards(args: argparse.Namespace, stage: str, out: Path) -> Path:
    """The shard folder of a stage run under ``--executor``."""
    if args.shard_dir:
        return Path(args.shard_dir) / stage
    target = _stage_file(out, stage)
    return Path(str(target.parent if stage == "discovery" else target) + ".shards")


def staircase_argvs(args: argparse.Namespace, out: Path) -> tuple[list[list[str]], dict]:
    """The two ``generate`` command lines of Fig. 2b (gaze heads, then the random control, steered
    along the dynamic stage's first schedule on its first strip, captured into one session) and what
    the stage records beside them. Writes the strip's image under ``OUT/stages/staircase``."""
    from gaze_explorer.cli.helpers import load_strips

    stages = out / "stages"
    dynamic = _read(stages / "dynamic.json")
    first = next(g for g in dynamic["generations"] if g.get("schedule"))
    strips = load_strips(args, 1)  # the dynamic stage's first strip, unless its strips were others
    if strips[0].name != first["strip"]:
        strips = [s for s in load_strips(args, None) if s.name == first["strip"]]
    strip = strips[0]
    folder = stages / "staircase"
    folder.mkdir(parents=True, exist_ok=True)
    image = folder / "strip.png"
    strip.image.save(image)
    session = folder / "staircase.h5"
    session.unlink(missing_ok=True)  # a rerun starts a new session, not a third and fourth run
    settings = dynamic["settings"]
    k = int(dynamic["top_k"])
    base = [
        "generate",
        *_common(args),
        "--image",
        str(image),
        "--prompt",
        settings["prompt"],
        "--panel-widths",
        ",".join(str(w) for w in strip.panel_widths),
        "--ranking",
        str(stages / "discovery" / "ranking.json"),
        "--schedule",
        ",".join(map(str, first["schedule"])),
        "--switch-every",
        str(settings["switch_every"]),
        "--max-new-tokens",
        str(settings["max_new_tokens"]),
        "--ignore-eos",  # every run as long as the schedule
        "--session",
        str(session),
    ]
    if settings.get("control_pool"):
        base += ["--control-pool", str(settings["control_pool"])]
    argvs = [[*base, "--heads", f"{name}:{k}"] for name in ("top", "random")]
    record = {
        "strip": strip.name,
        "schedule": first["schedule"],
        "switch_every": settings["switch_every"],
        "k": k,
        "session": str(session),
    }
    return argvs, record


def run_staircase(args: argparse.Namespace, out: Path, loaded) -> None:
    """Fig. 2b's stage: the two runs, then ``staircase.json`` with each run's staircase read out on
    the top-K gaze heads (``SessionReader.trajectory``: ``core.scoring.trajectory``)."""
    from gaze_explorer.core.heads import HeadSet
    from gaze_explorer.storage import SessionReader

    argvs, record = staircase_argvs(args, out)
    for argv in argvs:
        _say(f"  gaze-explorer {' '.join(argv)}")
        run_stage(argv, loaded)
    ranked = _read(out / "stages" / "discovery" / "ranking.json")
    readout = HeadSet("gaze", tuple((r["layer"], r["head"]) for r in ranked[: record["k"]]))
    runs = []
    with SessionReader(record["session"]) as reader:
        for condition, info in zip(("gaze", "random"), reader.runs(), strict=True):
            plan = info.plan or {}
            runs.append(
                {
                    "condition": condition,
                    "heads": plan.get("heads"),
                    "mass": reader.trajectory(info.run_id, readout).astype(float).tolist(),
                    "targets": [None if t is None else t + 1 for t in reader.targets(info.run_id)],
                }
            )
    record.update(status="finished", readout=[list(h) for h in readout.heads], runs=runs)
    write_json(_stage_file(out, "staircase"), record)


def run_stage(argv: list[str], loaded) -> None:
    """Parse ``argv`` with the CLI's own parser and rules, and run that command on ``loaded``; its
    tables go to stderr with the progress (stdout is kept for the report's own lines)."""
    import importlib

    from gaze_explorer.cli import COMMAND_MODULES
    from gaze_explorer.cli.parser import build_parsers, check_args

    parsers = build_parsers()
    ns = parsers.main.parse_args(argv)
    check_args(parsers, ns)
    ns.argv = argv
    ns.loaded = loaded
    with contextlib.redirect_stdout(sys.stderr):
        code = int(importlib.import_module(COMMAND_MODULES[ns.command]).run(ns) or 0)
    if code == 130:
        raise KeyboardInterrupt
    if code:
        raise GazeExplorerError(f"stage {' '.join(argv[:2])} failed (exit code {code})")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.compare:
        return run_compare(args.compare, out)
    if bool(args.coco_annotations) != bool(args.images):
        raise GazeExplorerError("--coco-annotations and --images go together")
    stages = [s for s in STAGES if s != "region" or args.coco_annotations]
    out.mkdir(parents=True, exist_ok=True)
    todo = [s for s in stages if not (args.resume and stage_done(out, s))]
    for s in stages:
        if s not in todo:
            _say(f"{s}: done before, skipped (--resume)")
    from gaze_explorer.cli.helpers import load

    loaded = None
    sharded = getattr(args, "executor", None)
    if todo and not sharded:  # sharded, every shardable stage's shards load the model themselves
        loaded = load(argparse.Namespace(**vars(args), loaded=None))
    for i, stage in enumerate(todo, start=1):
        ks: tuple[int, ...] = ()
        if stage == "sweep":  # the paper's K grid scaled to the heads discovery scored
            n_heads = int(np.load(out / "stages" / "discovery" / "gaze_scores.npy").size)
            ks = tuple(args.sweep_ks) if args.sweep_ks else sweep_ks(n_heads, args.quick)
        if stage == "staircase":
            _say(f"stage {i}/{len(todo)}: staircase (Fig. 2b): two runs of generate")
            # sharded, the model is loaded here for these two runs only (not held while shards run)
            model = loaded or load(argparse.Namespace(**vars(args), loaded=None))
            run_staircase(args, out, model)
            del model
            continue
        argv = stage_argv(args, stage, out, ks)
        if sharded and stage in SHARDABLE:
            shards = stage_shards(args, stage, out)
            if not args.resume and shards.exists():  # a fresh report: no shard of an earlier run
                shutil.rmtree(shards)
            argv += executor_argv(args, stage, out)
        _say(f"stage {i}/{len(todo)}: {stage}: gaze-explorer {' '.join(argv)}")
        run_stage(argv, loaded)
    report = build_report(out, args.model)
    write_json(out / "report.json", report)
    render(report, out / "index.html", figures(report, out))
    print(f"report: {out / 'index.html'} ({out / 'report.json'})")
    return 0


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def build_report(out: Path, model: str) -> dict:
    """``report.json`` from the stage results under ``out/stages``."""
    stages = out / "stages"
    disc = stages / "discovery"
    static = _read(stages / "static.json")
    rep: dict = {"schema_version": REPORT_SCHEMA_VERSION, "kind": "report", "model": model}
    rep["discovery"] = discovery_section(
        _read(disc / "discovery.json"),
        np.load(disc / "gaze_scores.npy"),
        np.load(disc / "panel_matrices.npy"),
        N_TOP_MATRICES,
        int(static["top_k"]),
    )
    for protocol in ("static", "narration", "dynamic"):
        rep[protocol] = evaluation_section(_read(stages / f"{protocol}.json"), protocol)
    rep["staircase"] = staircase_section(_read(stages / "staircase.json"))
    rep["sweep"] = sweep_section(_read(stages / "sweep.json"))
    region = stages / "region.json"
    rep["region"] = region_section(_read(region)) if region.exists() else None
    rep["paper"] = json.loads(json.dumps(PAPER))  # int keys as strings, tuples as lists
    rep["paper"]["depth"] = paper_depth()
    return rep


# -- figures -------------------------------------------------------------------------------------------
def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise GazeExplorerError(
            "report needs matplotlib and jinja2: pip install 'gaze-explorer[report]'"
        ) from exc
    return plt


def _save(fig, path: Path) -> str:
    plt = _plt()
    path.parent.mkdir(parents=True, exist_ok=True)
    if fig.get_layout_engine() is None:  # a figure with its own layout (constrained) keeps it
        fig.tight_layout()
    fig.savefig(path)
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    plt.close(fig)
    return data


def _bars(ax, rows: list[dict], value: str, ci: str, paper: str, scale: float, title: str) -> None:
    names = [r["condition"] for r in rows]
    vals = [np.nan if r[value] is None else scale * r[value] for r in rows]
    lo = [0 if r[ci][0] is None or r[value] is None else scale * (r[value] - r[ci][0]) for r in rows]
    hi = [0 if r[ci][1] is None or r[value] is None else scale * (r[ci][1] - r[value]) for r in rows]
    x = np.arange(len(rows))
    ax.bar(x, vals, yerr=[lo, hi], capsize=3, color="#4C72B0", label="this model (95% CI)")
    ref = [(i, scale * r[paper]) for i, r in enumerate(rows) if r.get(paper) is not None]
    if ref:
        ax.scatter(
            *zip(*ref, strict=True), marker="D", color="#DD8452", zorder=3, label=f"paper ({PAPER['model']})"
        )
    ax.set_xticks(x, names, rotation=30, fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)


def _staircase_figure(plt, sc: dict):
    """Fig. 2b: per run, the read-out heads' attention mass per panel (rows) and decode step
    (columns), the scheduled panel drawn over it."""
    runs = sc["runs"]
    fig, axes = plt.subplots(
        1, len(runs), figsize=(5.4 * len(runs), 3.2), dpi=100, squeeze=False, layout="constrained"
    )
    vmax = max(float(np.nanmax(np.asarray(r["mass"], dtype=float))) for r in runs) or 1.0
    names = {"gaze": "gaze heads steered", "random": "random control heads steered"}
    for ax, run in zip(axes[0], runs, strict=True):
        mass = np.asarray(run["mass"], dtype=float).T  # [panel, step]
        image = ax.imshow(mass, aspect="auto", cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
        steps = np.arange(mass.shape[1])
        target = np.array([np.nan if t is None else t - 1 for t in run["targets"]], dtype=float)
        ax.step(steps, target, where="mid", color="#FF4040", linewidth=1.4)
        ax.set_yticks(range(mass.shape[0]), [str(p + 1) for p in range(mass.shape[0])], fontsize=7)
        ax.set_xlabel("decode step", fontsize=8)
        ax.set_ylabel("panel", fontsize=8)
        on = run["on_target"]
        ax.set_title(
            f"{names.get(run['condition'], run['condition'])}: on schedule {fmt(on)} % of steps", fontsize=9
        )
    fig.colorbar(image, ax=list(axes[0]), label=f"top-{sc['k']} gaze heads' attention")
    fig.suptitle("red: the panel the schedule steers to", fontsize=8)
    return fig


def figures(report: dict, out: Path) -> dict[str, str]:
    """Every figure as base64 PNG (also saved under ``out/figures``)."""
    plt = _plt()
    figs = out / "figures"
    d = report["discovery"]
    result: dict[str, str] = {}
    heads = d["top_heads"]
    fig, axes = plt.subplots(1, len(heads), figsize=(2.6 * len(heads), 2.8), dpi=100, squeeze=False)
    for ax, h in zip(axes[0], heads, strict=True):
        m = np.asarray(h["matrix"])
        ax.imshow(m, cmap="viridis", vmin=0)
        ax.set_title(f"L{h['layer']}H{h['head']} ({h['score']:.3f})", fontsize=9)
        ax.set_xlabel("attended panel", fontsize=8)
        ax.set_ylabel("queried panel", fontsize=8)
        ticks = range(m.shape[0])
        ax.set_xticks(ticks, [str(t + 1) for t in ticks], fontsize=7)
        ax.set_yticks(ticks, [str(t + 1) for t in ticks], fontsize=7)
    result["fig2a"] = _save(fig, figs / "fig2a_matrices.png")
    result["fig2b"] = _save(_staircase_figure(plt, report["staircase"]), figs / "fig2b_staircase.png")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    _bars(a1, report["static"]["rows"], "accuracy", "ci95", "paper", 100, "Fig. 3: static VQA, accuracy %")
    _bars(a2, report["narration"]["rows"], "accuracy", "ci95", "paper", 100, "static narration, accuracy %")
    for ax in (a1, a2):
        ax.set_ylim(0, 100)
    result["fig3"] = _save(fig, figs / "fig3_bars.png")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    rows = report["dynamic"]["rows"]
    _bars(a1, rows, "rho", "rho_ci95", "paper_rho", 1, "Fig. 6: Spearman rho (schedule judge)")
    _bars(a2, rows, "rho_blind", "rho_blind_ci95", "paper_rho", 1, "rho, schedule-blind trajectory judge")
    for ax in (a1, a2):
        ax.set_ylim(-1, 1)
        ax.axhline(0, color="grey", linewidth=0.6)
    result["fig6"] = _save(fig, figs / "fig6_rho.png")
    from gaze_explorer.cli.sweep import save_sweep_figure  # the sweep command's own curve

    save_sweep_figure(_read(out / "stages" / "sweep.json"), figs / "fig8_k_curve.png")
    result["fig8"] = base64.b64encode((figs / "fig8_k_curve.png").read_bytes()).decode("ascii")
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(12, 3.6), dpi=100, width_ratios=(1, 1.2, 0.8))
    hist = d["histogram"]
    edges = np.asarray(hist["edges"])
    a1.bar(edges[:-1], hist["counts"], width=np.diff(edges), align="edge", color="#4C72B0")
    a1.set_xlabel("gaze score")
    a1.set_ylabel("heads")
    a1.set_title("gaze score histogram", fontsize=10)
    grid = np.array([[np.nan if v is None else v for v in row] for row in d["layer_map"]["scores"]])
    image = a2.imshow(grid, aspect="auto", cmap="magma", interpolation="nearest")
    fig.colorbar(image, ax=a2, label="gaze score")
    a2.set_xlabel("head")
    a2.set_ylabel("layer")
    a2.set_title("layer map: every head's gaze score", fontsize=10)
    n_layers = d["n_layers"]
    a3.barh(range(n_layers), d["layer_map"]["top_k_per_layer"], color="#55A868")
    a3.set_ylim(n_layers - 0.5, -0.5)  # layer 0 on top, as in the map beside it
    a3.set_ylabel("layer")
    a3.set_xlabel(f"top-{d['top_k']} gaze heads")
    a3.set_title(f"depth {d['gaze_depth']:.2f} of the model", fontsize=10)
    result["layers"] = _save(fig, figs / "histogram_layers.png")
    return result


# -- HTML ----------------------------------------------------------------------------------------------
def fmt(value, kind: str = "pct") -> str:
    """How the page writes a number (the test reads the page back with this)."""
    if value is None:
        return "n/a"
    if kind == "pct":
        return f"{100 * value:.1f}"
    if kind == "rho":
        return f"{value:+.2f}"
    if kind == "score":
        return f"{value:.3f}"
    if kind == "depth":
        return f"{value:.2f}"
    return f"{int(value)}"


def render(report: dict | None, path: Path, figs: dict[str, str], compare: list[dict] | None = None) -> Path:
    """Render the Jinja2 template (package data) to one self-contained file."""
    try:
        import jinja2
    except ImportError as exc:
        raise GazeExplorerError("report needs jinja2: pip install 'gaze-explorer[report]'") from exc
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gaze_explorer.cli", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["fmt"] = fmt
    html = env.get_template(TEMPLATE).render(
        report=report,
        figs=figs,
        compare=compare,
        paper=json.loads(json.dumps(PAPER)),
        paper_depth=paper_depth(),
    )
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path


def run_compare(folders: list[str], out: Path) -> int:
    """``--compare``: several checkpoints' ``report.json`` side by side (``compare.json``, ``index.html``)."""
    reports = []
    for folder in folders:
        path = Path(folder) / "report.json"
        try:
            reports.append(_read(path))
        except (OSError, ValueError) as exc:
            raise GazeExplorerError(f"--compare: cannot read {path}: {exc}") from exc
    rows = compare_rows(reports)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "compare.json", {"kind": "compare", "reports": [str(f) for f in folders], "rows": rows})
    render(None, out / "index.html", {}, compare=rows)
    print(f"report: {out / 'index.html'} ({len(rows)} checkpoints)")
    return 0
