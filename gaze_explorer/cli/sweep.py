"""``gaze-explorer evaluate sweep``: a protocol across K / strength / prompts for each criterion and
the random control (and all heads once), one JSON written after every cell, ``--resume``, a curve.

The cells are ``core.sweep``'s; each runs through ``inference.sweep.Sweep`` (the evaluation of
``evaluate``, baselines generated once per prompt). Ctrl-C keeps every finished cell.
``--executor`` runs it as shards of (cell, strip) units (``cli.executor``); a shard (``--shard i/n``)
writes only its partial result, once it is done, and ``cli.merge`` builds the sweep JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from gaze_explorer.cli.coverage import image_coverage, strip_sizes, warn_partial_coverage
from gaze_explorer.cli.helpers import (
    DEMO_PROMPTS,
    criterion_inputs,
    is_demo,
    load,
    load_strips,
    progress_bar,
    switch_every,
)
from gaze_explorer.core.errors import DatasetError, GazeExplorerError, SweepError
from gaze_explorer.core.evaluation_report import format_percent, write_json
from gaze_explorer.core.heads import choose_heads
from gaze_explorer.core.judges import PanelTruth, judge_for
from gaze_explorer.core.protocol_choices import CRITERIA, DEFAULT_BASELINE_RULE
from gaze_explorer.core.stats import DEFAULT_RESAMPLES
from gaze_explorer.core.steering import SteeringMode
from gaze_explorer.core.sweep import (
    ALL_HEADS,
    CONTROL,
    curves,
    load_resume,
    parse_over,
    read_prompts,
    record_key,
    sweep_cells,
    sweep_report,
)


def _over(args: argparse.Namespace, default_k: int) -> dict[str, tuple]:
    over: dict[str, tuple] = {}
    for text in args.over or ():
        name, values = parse_over(text)
        if name in over:
            raise SweepError(f"--over {name}=... given twice")
        over[name] = values
    over.setdefault("k", (default_k,))
    over.setdefault("strength", (float(args.strength),))
    return over


# settings a sweep JSON written before they were recorded was run with (every sweep then used them)
UNRECORDED_SETTINGS = {"baseline_rule": DEFAULT_BASELINE_RULE, "n_resamples": DEFAULT_RESAMPLES}


def heads_file_settings(path: str | None) -> dict:
    """``heads_file`` (its file name) and ``heads_sha256`` (of its bytes) for a sweep's settings."""
    if not path:
        return {"heads_file": None, "heads_sha256": None}
    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise SweepError(f"cannot read --heads-file {path}: {exc}") from exc
    return {"heads_file": Path(path).name, "heads_sha256": digest}


def judge_name(judge, strip) -> str:
    """The name of the judge a sweep records: ``--judge``'s, or for ``auto`` the best the first
    strip has (as ``evaluate`` records it)."""
    if judge is not None:
        return judge.name
    if not (strip.attributes or strip.captions):
        raise DatasetError(
            f"strip {strip.name} has neither attributes.json nor captions.json: nothing to judge"
        )
    return judge_for(PanelTruth(strip.attributes, strip.captions)).name


def fill_in_notes(criteria, ks, n_layers: int, n_heads: int, grids, selection) -> list[str]:
    """Per criterion, one line when the sweep's largest K exceeds the heads its own selection keeps."""
    notes = []
    for criterion in criteria:
        if criterion not in (selection or {}):
            continue
        choice = choose_heads(f"{criterion}:{max(ks)}", n_layers, n_heads, scores=grids, selection=selection)
        note = choice.fill_in_note()
        if note:
            notes.append(note.replace(f"{choice.spec}:", f"{criterion} (K up to {max(ks)}):", 1))
    return notes


def run(args: argparse.Namespace) -> int:
    """Run the sweep; returns the exit code (130 when interrupted, finished cells kept)."""
    from gaze_explorer.cli.evaluate import chosen_judge, n_resamples
    from gaze_explorer.inference.evaluation import (
        DEFAULT_MAX_NEW_TOKENS,
        EVAL_CONTROL_POOL,
        PAPER_PROMPTS,
        EvalConfig,
        default_top_k,
    )
    from gaze_explorer.inference.sweep import Sweep

    if getattr(args, "executor", None):
        from gaze_explorer.cli import executor

        return executor.run(args)
    protocol = args.sweep_protocol
    out = args.json or args.resume
    if args.shard and args.resume:
        raise SweepError("a sweep shard resumes by running again: leave out --resume with --shard")
    criteria = tuple(args.criteria or CRITERIA)
    prompts_in = read_prompts(args.prompts) if args.prompts else [args.prompt]
    limit = args.max_strips if args.max_strips is not None else args.n_strips
    strips = load_strips(args, limit)
    if not strips:
        raise DatasetError("no strips to evaluate")
    judge = chosen_judge(args, strips)
    resumed = load_resume(args.resume, protocol=protocol, model=args.model) if args.resume else None
    _over(args, 1)  # a malformed --over fails here, before the model loads (K's default needs it)
    loaded = load(args)
    warn_partial_coverage(loaded, strip_sizes(strips))
    top_k = args.top_k or default_top_k(loaded.n_layers, loaded.n_heads, is_demo(args))
    over = _over(args, top_k)
    if max(over["k"]) > loaded.n_layers * loaded.n_heads:
        raise SweepError(
            f"--over k: {max(over['k'])} is more than the model's {loaded.n_layers * loaded.n_heads} heads"
        )
    default_prompt = DEMO_PROMPTS.get(protocol) if is_demo(args) else None
    prompts = [p or default_prompt or PAPER_PROMPTS[protocol] for p in prompts_in]
    cells = sweep_cells(criteria, over["k"], over["strength"], prompts)
    grids, selection = criterion_inputs(args, loaded, lambda: strips)
    missing = [c for c in criteria if c not in grids]
    if missing:
        raise SweepError(
            f"no {', '.join(missing)} scores: pass --heads-file from a discover --out folder that holds "
            "image_mass.npy and image_maps.npy, or leave --heads-file out to discover on the fly"
        )
    config = EvalConfig(
        protocol=protocol,
        top_k=top_k,
        mode=SteeringMode.parse(args.mode),
        strength=args.strength,
        max_new_tokens=args.max_new_tokens,
        switch_every=switch_every(args),
        switch_alignment=args.switch_alignment or "project",
        seed=args.seed,
        repetition_penalty=args.repetition_penalty,
        no_repeat_ngram_size=args.no_repeat_ngram_size,
        bias_on=getattr(args, "bias_on", None),
        baseline_rule=args.baseline_rule,
        **n_resamples(args),
    )
    for note in fill_in_notes(criteria, over["k"], loaded.n_layers, loaded.n_heads, grids, selection):
        print(note, file=sys.stderr)
    sweep = Sweep(
        loaded,
        strips,
        grids,
        cells,
        config,
        pool=args.control_pool or EVAL_CONTROL_POOL,
        seed=args.seed,
        judge=judge,
        model_name=args.model,
        shard=args.shard,
        selection=selection,
    )
    localization = (selection or {}).get("localization", {}).get("params", {})
    settings = {
        # how strips were fitted to the model, and the least of a strip that reached it (as evaluate)
        "input_policy": str(getattr(loaded.adapter, "input_policy", "native")),
        "image_coverage_min": min(image_coverage(loaded, size) for size in {s.image.size for s in strips}),
        # the judge used (auto: the best the first strip has, as evaluate records it)
        "judge": judge_name(judge, strips[0]),
        # the ranking the cells' heads came from, by name and content (a copied or moved run folder
        # resumes; another ranking is refused); null when discovered on the fly
        **heads_file_settings(args.heads_file),
        "mode": config.mode.value,
        "bias_on": config.effective_bias_on,
        "top_k_default": top_k,
        "max_new_tokens": args.max_new_tokens
        or (
            config.switch_every * args.n_panels if protocol == "dynamic" else DEFAULT_MAX_NEW_TOKENS[protocol]
        ),
        "switch_every": config.switch_every if protocol == "dynamic" else None,
        "switch_alignment": config.switch_alignment if protocol == "dynamic" else None,
        "seed": args.seed,
        "control_pool": sweep.pool,
        "baseline_rule": config.baseline_rule if protocol != "dynamic" else None,  # static and narration
        "n_resamples": config.n_resamples,
        "loc_entropy": localization.get("entropy_variant"),
        "loc_bottom_row": localization.get("bottom_row"),
        "repetition_penalty": args.repetition_penalty,
        "no_repeat_ngram_size": args.no_repeat_ngram_size,
        "n_strips": len(strips),
        "n_panels": args.n_panels,
    }
    if resumed is not None:
        # cells measured under other settings (strips, bias, answer length, pool...) cannot be mixed
        old = {**UNRECORDED_SETTINGS, **resumed.get("settings", {})}
        if protocol == "dynamic":
            old["baseline_rule"] = None  # the rule does not apply to dynamic runs (older files recorded it)
        changed = sorted(k for k in settings if k in old and old[k] != settings[k])
        if changed:
            shown = ", ".join(f"{k} {old[k]!r} -> {settings[k]!r}" for k in changed)
            raise SweepError(
                f"--resume {args.resume} was run with other settings ({shown}); use a new --json"
            )
        wanted = {c.key() for c in cells}
        sweep.done = {record_key(r): r for r in resumed["cells"] if record_key(r) in wanted}
        sweep.baseline_generations = {
            p: g for p, g in resumed.get("baseline_generations", {}).items() if p in prompts
        }
        print(f"resuming {args.resume}: {len(sweep.done)} of {len(cells)} cells done", file=sys.stderr)

    def report(status: str) -> dict:
        rep = sweep_report(
            protocol=protocol,
            model=args.model,
            criteria=criteria,
            over=over,
            prompts=prompts,
            settings=settings,
            baselines=sweep.baseline_summaries(),
            cells=[sweep.done[c.key()] for c in cells if c.key() in sweep.done],
            n_cells=len(cells),
            status=status,
        )
        rep["baseline_generations"] = sweep.baseline_generations
        return rep

    def save(_record: dict | None = None) -> None:
        if out and not args.shard:
            write_json(out, report("running"))

    bar = progress_bar(sweep.total_generations(), f"sweep {protocol}")
    interrupted = False
    try:
        for progress in sweep.run(on_cell=save):
            bar.n = progress.done
            bar.set_postfix_str(progress.message[-40:], refresh=True)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    final = report("cancelled" if interrupted or sweep.cancelled else "finished")
    if args.shard:  # a shard's partial is written once, when done: a missing one is rerun
        if final["status"] != "finished":
            print(f"shard {args.shard} interrupted: nothing kept", file=sys.stderr)
            return 130
        if out:
            write_json(out, {**final, **sweep.partial()})
            print(f"shard {args.shard}: {out}", file=sys.stderr)
        return 0
    if out:
        write_json(out, final)
    print(format_sweep_table(final))
    if out:
        print(f"results: {out}", file=sys.stderr)
    if args.figure:
        save_sweep_figure(final, args.figure)
        print(f"figure: {args.figure}", file=sys.stderr)
    if interrupted:
        print(f"interrupted: {final['n_done']} of {final['n_cells']} cells kept", file=sys.stderr)
        return 130
    return 0


def format_sweep_table(report: dict) -> str:
    """One block per (strength, prompt): criterion rows, K columns, accuracy % [CI]."""
    lines = [
        f"sweep of {report['protocol']} on {report['model']}: {report['n_done']}/{report['n_cells']} cells"
        + ("" if report["status"] == "finished" else f" [{report['status']}]")
    ]
    for i, (prompt, base) in enumerate(report["baselines"].items(), start=1):
        lo, hi = base.get("ci95", [None, None])
        lines.append(
            f"baseline, prompt {i} ({prompt[:40]}): {format_percent(base.get('accuracy'), 0)} % [{format_percent(lo, 0)}, {format_percent(hi, 0)}]"
        )
    prompts = report["prompts"]
    for rec in report["cells"]:
        lo, hi = rec["ci95"]
        k = "-" if rec["k"] is None else rec["k"]
        extra = f"  ({rec['error']})" if "error" in rec else ""
        extra += dynamic_columns(rec)
        which = f"prompt {prompts.index(rec['prompt']) + 1} " if len(prompts) > 1 else ""
        lines.append(
            f"{which}{rec['criterion']:<13} K={k!s:<4} strength={rec['strength']:<8g} "
            f"{format_percent(rec['accuracy'], 0):>5} % [{format_percent(lo, 0)}, {format_percent(hi, 0)}] n={rec['n']}{extra}"
        )
    return "\n".join(lines)


def dynamic_columns(rec: dict) -> str:
    """A dynamic cell's rho vs the schedule and its schedule-blind trajectory results (rho vs the
    schedule and vs the reading order, starts-correct rate, strips excluded); "" for other cells."""

    def rho(value) -> str:
        return "n/a" if value is None else f"{value:+.2f}"

    text = ""
    if "spearman" in rec:
        text += f"  rho {rho((rec['spearman'] or {}).get('mean'))}"
    t = rec.get("trajectory")
    if t:
        starts = (t.get("starts_correct") or {}).get("mean")
        text += (
            f"  blind rho {rho((t.get('rho_schedule') or {}).get('mean'))}"
            f" order {rho((t.get('rho_natural') or {}).get('mean'))}"
            f" starts-correct {'n/a' if starts is None else format_percent(starts, 0) + ' %'}"
            f" excluded {t.get('n_excluded', 0)}/{t.get('n_strips', 0)}"
        )
    return text


def draw_prompt_bars(ax, report: dict) -> None:
    """A prompt sweep (the paper's Tab. 7): one group of bars per prompt, one bar per criterion,
    the control and all heads (95% CI as error bars; a refused cell has no bar), the prompt's
    unsteered accuracy as a short grey line over its group, chance across."""
    prompts = report["prompts"]
    names = list(dict.fromkeys(rec["criterion"] for rec in report["cells"]))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        xs, ys, err = [], [], [[], []]
        for rec in report["cells"]:
            if rec["criterion"] != name or rec["accuracy"] is None:
                continue
            lo, hi = rec["ci95"]
            xs.append(prompts.index(rec["prompt"]) + 1 - 0.4 + (j + 0.5) * width)
            ys.append(100 * rec["accuracy"])
            err[0].append(100 * (rec["accuracy"] - lo))
            err[1].append(100 * (hi - rec["accuracy"]))
        ax.bar(xs, ys, width * 0.9, yerr=err, capsize=2, label=name, hatch="//" if name == CONTROL else None)
    for i, prompt in enumerate(prompts, start=1):
        base = report["baselines"].get(prompt) or {}
        if base.get("accuracy") is not None:
            label = "unsteered" if i == 1 else None
            ax.hlines(100 * base["accuracy"], i - 0.45, i + 0.45, colors="grey", linestyles="-.", label=label)
    n_panels = report["settings"].get("n_panels")
    if n_panels:
        ax.axhline(100 / n_panels, color="grey", linewidth=0.6, label=f"chance (1/{n_panels})")
    ax.set_xticks(range(1, len(prompts) + 1), [f"prompt {i}" for i in range(1, len(prompts) + 1)])
    ax.set_ylabel("accuracy % (95% CI)")
    ax.set_ylim(0, 100)
    ks = {rec["k"] for rec in report["cells"] if rec["k"] is not None}
    k_text = f", K={ks.pop()}" if len(ks) == 1 else ""
    ax.set_title(
        f"{report['protocol']} on {report['model']} ({report['settings'].get('n_strips')} strips{k_text}): "
        "prompts in the JSON"
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _draw_curves(ax, cells: list, parameter: str, metric: str, scale: float) -> None:
    """One line per curve of ``core.sweep.curves`` (``metric`` times ``scale``), its CI as a band."""
    for name, points in curves(cells, parameter, metric).items():
        xs, ys, lo, hi = (list(v) for v in zip(*points, strict=True))
        style = "--" if name.startswith(CONTROL) else ":" if name.startswith(ALL_HEADS) else "-"
        line = ax.plot(xs, [scale * y for y in ys], style, marker="o", label=name)[0]
        ax.fill_between(
            xs, [scale * v for v in lo], [scale * v for v in hi], color=line.get_color(), alpha=0.15
        )


def save_sweep_figure(report: dict, path: str | Path) -> Path:
    """Accuracy against K (or the strength, when only it varies) with 95% CI bands, one curve per
    criterion and the control, all heads as a dashed line (grouped bars per prompt when only the
    prompt varies); a dynamic sweep adds a second panel below, rho vs the schedule with its CI;
    matplotlib (``pip install gaze-explorer[report]``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise GazeExplorerError(
            "--figure needs matplotlib: pip install 'gaze-explorer[report]' (or matplotlib)"
        ) from exc
    p = Path(path)
    if not p.parent.exists():
        raise GazeExplorerError(f"folder {p.parent} does not exist")
    over = report["over"]
    if len(over.get("k", ())) <= 1 and len(over.get("strength", ())) <= 1 and len(report["prompts"]) > 1:
        fig, ax = plt.subplots(figsize=(7.6, 4.2), dpi=120)
        draw_prompt_bars(ax, report)  # only the prompt varies: no axis to draw a curve along
        fig.tight_layout()
        fig.savefig(p)
        plt.close(fig)
        return p
    parameter = "k" if len(over.get("k", ())) > 1 or len(over.get("strength", ())) <= 1 else "strength"
    dynamic = report["protocol"] == "dynamic"
    if dynamic:  # a second panel below: rho vs the schedule, the paper's dynamic measure
        fig, (ax, ax_rho) = plt.subplots(2, 1, figsize=(7.6, 7.0), dpi=120, sharex=True)
    else:
        fig, ax = plt.subplots(figsize=(7.6, 4.2), dpi=120)
    _draw_curves(ax, report["cells"], parameter, "accuracy", 100.0)
    if parameter == "k":  # all heads has no K: a level line per strength and prompt
        alls = [r for r in report["cells"] if r["criterion"] == ALL_HEADS and r["accuracy"] is not None]
        for i, rec in enumerate(alls):
            label = "all heads" if i == 0 else None
            ax.axhline(100 * rec["accuracy"], color="k", linestyle=":", label=label)
    for base in report["baselines"].values():
        if base.get("accuracy") is not None:
            ax.axhline(100 * base["accuracy"], color="grey", linestyle="-.", label="unsteered")
            break
    n_panels = report["settings"].get("n_panels")
    if n_panels:
        ax.axhline(100 / n_panels, color="grey", linewidth=0.6, label=f"chance (1/{n_panels})")
    if parameter == "strength":
        ax.set_xscale("log")
    xlabel = "K (heads steered)" if parameter == "k" else "bias strength"
    ax.set_xlabel(xlabel)
    ax.set_ylabel("per-segment accuracy % (95% CI)" if dynamic else "accuracy % (95% CI)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{report['protocol']} on {report['model']} ({report['settings'].get('n_strips')} strips)")
    # outside the axes: inside, it hid the points where the curves fall at large K
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    if dynamic:
        _draw_curves(ax_rho, report["cells"], parameter, "spearman", 1.0)
        if parameter == "k":
            alls = [r for r in report["cells"] if r["criterion"] == ALL_HEADS and r.get("spearman")]
            for i, rec in enumerate(alls):
                if rec["spearman"].get("mean") is not None:
                    ax_rho.axhline(
                        rec["spearman"]["mean"], color="k", linestyle=":", label=None if i else "all heads"
                    )
        ax_rho.axhline(0.0, color="grey", linewidth=0.6)
        ax_rho.set_ylim(-1.05, 1.05)
        ax_rho.set_ylabel("Spearman rho vs schedule (95% CI)")
        ax_rho.set_xlabel(xlabel)
        ax.set_xlabel("")
        ax_rho.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    fig.savefig(p)
    plt.close(fig)
    return p
