"""``gaze-explorer generate``: one (optionally steered) generation about one image, tokens printed
as they stream, optionally recorded as a run in a session file."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

import numpy as np

from gaze_explorer.cli.coverage import warn_partial_coverage
from gaze_explorer.cli.helpers import criterion_inputs, demo_discovery_strips, is_demo, load, switch_every
from gaze_explorer.core.capture_scope import parse_capture_scope
from gaze_explorer.core.errors import HeadSpecError
from gaze_explorer.core.events import FinishedEvent, TokenEvent
from gaze_explorer.core.heads import HeadChoice, choose_heads, default_control_pool, parse_head_spec
from gaze_explorer.core.options import CaptureSpec, GenerationOptions
from gaze_explorer.core.protocol_choices import DEFAULT_BIAS_ON
from gaze_explorer.core.regions import box_region, panel_regions, widths_from_boundaries
from gaze_explorer.core.run_spec import RunSpec
from gaze_explorer.core.steering import SWITCH_ALIGNMENTS, FixedTarget, Schedule, SteeringMode, SteeringPlan
from gaze_explorer.core.strips import load_image


def heads_for(args: argparse.Namespace, loaded) -> HeadChoice:
    """The head set of ``--heads`` and how it was chosen (ranked by ``--ranking``, or discovered on
    the demo)."""
    spec = parse_head_spec(args.heads)
    scores = selection = None
    if spec.kind in ("top", "random"):
        if not args.ranking and not is_demo(args):
            raise HeadSpecError(f"--heads {args.heads} needs --ranking FILE (from gaze-explorer discover)")
        # every criterion's scores: image:K and localization:K read image_mass/image_maps beside
        # --ranking (written by discover --out), or come from the same on-the-fly discovery
        scores, selection = criterion_inputs(args, loaded, demo_discovery_strips)
    pool = args.control_pool or default_control_pool(is_demo(args))
    return choose_heads(
        spec,
        loaded.n_layers,
        loaded.n_heads,
        scores=scores,
        seed=args.seed,
        pool=pool,
        attention_layers=loaded.adapter.attention_layers,
        selection=selection,
    )


def bias_on(args: argparse.Namespace) -> str:
    """When the steering bias applies: ``--bias-on``, else the paper's default for what is steered
    (``core.protocol_choices.DEFAULT_BIAS_ON``): a --schedule is dynamic narration (decode steps
    only), a --target panel static steering and a --box region steering (prefill and decode)."""
    if args.bias_on:
        return args.bias_on
    protocol = "dynamic" if args.schedule is not None else "region" if args.box is not None else "static"
    return DEFAULT_BIAS_ON[protocol]


def run(args: argparse.Namespace) -> int:
    """Run the generation; returns the exit code (130 when interrupted, the partial run kept)."""
    from gaze_explorer.inference.generation import generate_stream

    image = load_image(args.image)
    # the inputs that need only the image are checked before the model loads: a bad one fails fast
    scope = parse_capture_scope(args.capture) if args.session else None
    widths = args.panel_widths
    if args.panel_bounds is not None:
        widths = widths_from_boundaries(args.panel_bounds, image.width)
    loaded = load(args)
    prepared = loaded.adapter.build_inputs(image, args.prompt)
    grid = prepared.grids[0]
    coverage = float(prepared.info["vision"].get("coverage", 1.0))
    warn_partial_coverage(loaded, [(Path(args.image).name, image.size)], known={image.size: coverage})
    if args.box is not None:
        regions = [box_region(grid, args.box)]
    else:
        regions = panel_regions(grid, args.panels or 1, widths)

    plan = target = None
    if args.heads is not None:
        choice = heads_for(args, loaded)
        decode_only = bias_on(args) == "decode"  # recorded in the run's plan (decode_only)
        plan = SteeringPlan(
            choice.heads, SteeringMode.parse(args.mode), args.strength, decode_only=decode_only, choice=choice
        )
        if args.schedule is not None:
            delay = SWITCH_ALIGNMENTS[args.switch_alignment or "project"]
            target = Schedule(tuple(p - 1 for p in args.schedule), switch_every(args), delay)
        else:
            target = FixedTarget((args.target or 1) - 1)
    options = GenerationOptions(
        max_new_tokens=args.max_new_tokens or 64,
        seed=args.seed,
        repetition_penalty=args.repetition_penalty,
        no_repeat_ngram_size=args.no_repeat_ngram_size,
        ignore_eos=args.ignore_eos,
    )
    capture = CaptureSpec(scope=scope) if args.session else CaptureSpec(decode=False, prefill="none")
    if plan is not None:
        where = "decode steps only" if plan.decode_only else "prefill and decode"
        print(
            f"steering {len(plan.heads)} heads ({plan.heads.name}), {plan.mode.value} at {plan.strength:g}, "
            f"on {where}",
            file=sys.stderr,
        )
        note = plan.choice.fill_in_note() if plan.choice is not None else None
        if note:
            print(note, file=sys.stderr)

    cancel = threading.Event()
    writer = recorder = None
    if args.session:
        from gaze_explorer.storage.record import RunRecorder
        from gaze_explorer.storage.writer import SessionWriter

        writer = SessionWriter(
            args.session,
            meta={**loaded.describe(), "image_coverage": coverage},
            image=np.asarray(image),
            grid=grid,
            regions=regions,
            image_name=Path(args.image).name,
        )
        spec = RunSpec.with_source(
            "steered" if plan else "baseline",
            args.prompt,
            loaded.n_layers,
            loaded.n_heads,
            source=target,
            capture=capture,
            regions=regions,
            options=options,
            plan=plan,
        )
        recorder = RunRecorder(writer, spec)
    n_tokens = 0
    switches = []
    status, reason = "cancelled", "interrupted"
    try:
        stream = generate_stream(
            loaded,
            image,
            args.prompt,
            regions=regions,
            plan=plan,
            target=target,
            options=options,
            capture=capture,
            cancel=cancel,
        )
        for event in stream:
            if recorder is not None:
                recorder.feed(event)
            if isinstance(event, TokenEvent):
                sys.stdout.write(event.text)  # the token's own piece of the answer, spacing included
                sys.stdout.flush()
                n_tokens += 1
                if event.switch is not None:
                    switches.append(event.switch)
            elif isinstance(event, FinishedEvent):
                status, reason, switches = event.status, event.reason, list(event.switches)
        print()
    finally:
        if writer is not None:
            recorder.end(status, reason)  # a stream cut short (Ctrl-C) keeps its steps; no-op once finished
            writer.close()
            print(f"session: {args.session} ({status}, {n_tokens} tokens)", file=sys.stderr)
    if status == "failed":
        from gaze_explorer.core.errors import GazeExplorerError

        raise GazeExplorerError(f"generation failed: {reason}")
    for s in switches:
        print(
            f"switch at step {s.step}: panel {None if s.previous is None else s.previous + 1} -> {s.to + 1}",
            file=sys.stderr,
        )
    return 0
