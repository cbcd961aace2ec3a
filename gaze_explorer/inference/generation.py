"""The generation stream: our own decode loop, with capture and steering at every step.

``generate_stream`` validates its input up front (bad input raises a ``GazeExplorerError`` at the
call), then returns a generator of events: one :class:`PrefillEvent`, one :class:`TokenEvent`
per generated token, and a :class:`FinishedEvent`. Step ``s``'s captured row is the attention of
the query that predicted token ``s`` (``s = 0``: the last prompt position, from the prefill).

Steering: the target is read from a ``TargetSource`` (fixed, ``Schedule`` or ``LiveTarget``) once
per step, just before that step's forward, so a live change lands at the next token. With
``plan.decode_only`` (the default, as in the paper) the prefill is unbiased, so token 0 is produced
unsteered; the event still reports the target that was current. A KV cache keeps each step O(keys)
and memory flat: captured rows leave the sink as each event is built.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from gaze_explorer.core.errors import GazeExplorerError, PromptError, ScheduleError
from gaze_explorer.core.events import FinishedEvent, GenerationEvent, PrefillEvent, TokenEvent
from gaze_explorer.core.options import CaptureSpec, GenerationOptions
from gaze_explorer.core.regions import Region
from gaze_explorer.core.steering import (
    FixedTarget,
    LiveTarget,
    SteeringMode,
    SteeringPlan,
    SwitchRecorder,
    TargetSource,
    check_steering,
    check_targets,
)
from gaze_explorer.inference.attention import ForwardRequest, attention_control
from gaze_explorer.inference.loading import LoadedModel


def build_bias(
    mode: SteeringMode,
    strength: float,
    n_keys: int,
    prompt_len: int,
    image_positions: np.ndarray,
    target_positions: np.ndarray,
    prompt_mask: np.ndarray,
) -> torch.Tensor:
    """The additive pre-softmax bias ``[keys]`` over the keys of one step (paper's modes).

    ``prompt_mask`` marks the real (non-padding) prompt positions. ``boost_suppress``: +s on the
    target's image tokens, -s on the other image tokens; ``suppress_image``: only the -s;
    ``suppress_all``: also -s on the non-image prompt tokens; ``max_suppress_all``: also -s on
    every generated token.
    """
    bias = np.zeros(n_keys, dtype=np.float32)
    others = np.setdiff1d(image_positions, target_positions)
    bias[others] = -strength
    if mode == SteeringMode.BOOST_SUPPRESS:
        bias[target_positions] = strength
    if mode in (SteeringMode.SUPPRESS_ALL, SteeringMode.MAX_SUPPRESS_ALL):
        text = np.flatnonzero(prompt_mask[:prompt_len])
        text = np.setdiff1d(text, image_positions)
        bias[text] = -strength
    if mode == SteeringMode.MAX_SUPPRESS_ALL:
        bias[prompt_len:] = -strength
    return torch.from_numpy(bias)


def _logits_processors(options: GenerationOptions):
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        NoRepeatNGramLogitsProcessor,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopPLogitsWarper,
    )

    procs = LogitsProcessorList()
    if options.repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(options.repetition_penalty))
    if options.no_repeat_ngram_size > 0:
        procs.append(NoRepeatNGramLogitsProcessor(options.no_repeat_ngram_size))
    if options.do_sample:
        if options.temperature != 1.0:
            procs.append(TemperatureLogitsWarper(options.temperature))
        if options.top_p < 1.0:
            procs.append(TopPLogitsWarper(options.top_p))
    return procs


def _prefill_rows_request(
    capture: CaptureSpec, prompt_len: int
) -> tuple[str | torch.Tensor | None, list[int]]:
    """Which prefill query rows to capture, and the prompt positions they are."""
    if capture.prefill_queries:
        queries = sorted({int(q) for q in capture.prefill_queries})
        bad = [q for q in queries if not 0 <= q < prompt_len]
        if bad:
            raise PromptError(f"prefill query positions {bad} are outside the prompt (0..{prompt_len - 1})")
    elif capture.prefill == "full":
        queries = list(range(prompt_len))
    elif capture.prefill == "last":
        queries = [prompt_len - 1]
    else:
        queries = []
    need = sorted(set(queries) | ({prompt_len - 1} if capture.decode else set()))
    if not need:
        return None, queries
    if need == list(range(prompt_len)):
        return "all", queries
    return torch.tensor(need, dtype=torch.long), queries


def generate_stream(
    loaded: LoadedModel,
    image: Image.Image,
    prompt: str,
    *,
    regions: Sequence[Region],
    plan: SteeringPlan | None = None,
    target: TargetSource | int | None = None,
    options: GenerationOptions | None = None,
    capture: CaptureSpec | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[GenerationEvent]:
    """Generate from ``image`` + ``prompt``, yielding events (see the module docstring).

    ``regions`` are the run's regions (targets index into it). ``target`` is a TargetSource or a
    plain region index. Raises PromptError, InvalidImageError, HeadSpecError or ScheduleError for
    bad input before anything runs.
    """
    options = options or GenerationOptions()
    capture = capture or CaptureSpec()
    prepared = loaded.prepare(image, prompt)
    if isinstance(target, int):
        target = FixedTarget(target)
    source = target if target is not None else FixedTarget(None)
    check_steering(
        plan, source, len(regions), loaded.n_layers, loaded.n_heads, loaded.adapter.attention_layers
    )
    grid = prepared.grids[0]
    for r in regions:
        if len(r.token_indices) == 0:
            raise ScheduleError(f"region {r.name!r} holds no image tokens")
        if int(np.max(r.token_indices)) >= grid.n_tokens:
            raise ScheduleError(f"region {r.name!r} names image tokens beyond this image's {grid.n_tokens}")
    request, query_positions = _prefill_rows_request(capture, prepared.prompt_len)
    kind = "live" if isinstance(source, LiveTarget) else "schedule"
    return _run(
        loaded,
        prepared,
        list(regions),
        plan,
        source,
        kind,
        options,
        capture,
        cancel,
        request,
        query_positions,
    )


def _run(
    loaded, prepared, regions, plan, source, kind, options, capture, cancel, prefill_request, query_positions
):
    from transformers import DynamicCache

    model, adapter = loaded.model, loaded.adapter
    grid = prepared.grids[0]
    prompt_len = prepared.prompt_len
    prompt_ids = [int(i) for i in prepared.tensors["input_ids"][0].tolist()]
    prompt_mask = prepared.tensors["attention_mask"][0].cpu().numpy().astype(bool)
    # image tokens kept out of the grid (global views, CLS, newlines) are "other image tokens" too
    extra = (prepared.info or {}).get("vision", {}).get("non_grid_positions")
    image_positions = grid.positions if extra is None else np.union1d(grid.positions, np.asarray(extra[0]))
    recorder = SwitchRecorder(source, kind)
    procs = _logits_processors(options)
    gen = torch.Generator(device="cpu").manual_seed(int(options.seed))
    eos = set(adapter.eos_token_ids)
    generated: list[int] = []
    pieces = _TextPieces(adapter.decode)

    def bias_for(tgt: int | None, n_keys: int) -> torch.Tensor | None:
        if plan is None or tgt is None:
            return None
        check_targets((tgt,), len(regions))  # a live switch to a region the run does not have
        target_pos = regions[tgt].positions(grid)
        return build_bias(
            plan.mode, plan.strength, n_keys, prompt_len, image_positions, target_pos, prompt_mask
        )[None]

    def to_numpy(rows: torch.Tensor | None) -> np.ndarray | None:
        # [layer, batch, head, row, key] -> batch 0 -> [layer, head, row, key]
        return None if rows is None else rows[:, 0].float().cpu().numpy()

    try:
        with (
            torch.inference_mode(),
            attention_control(loaded, plan_heads=plan.heads if plan else None) as ctl,
        ):
            if cancel is not None and cancel.is_set():
                yield FinishedEvent("cancelled", [], "cancelled before the prefill", 0)
                return
            target = recorder.target_for_step(0)
            prefill_bias = None if (plan is None or plan.decode_only) else bias_for(target, prompt_len)
            ctl.set_request(ForwardRequest(prefill_request, prefill_bias, capture.value_norms))
            cache = DynamicCache(config=model.config)
            out = model(
                **adapter.prefill_kwargs(model, prepared), cache=cache, use_cache=True, logits_to_keep=1
            )
            rows = to_numpy(ctl.take_rows())  # [layer, head, n_rows, key]
            norms = ctl.take_value_norms()
            need = (
                list(range(prompt_len))
                if isinstance(prefill_request, str)
                else ([] if prefill_request is None else prefill_request.tolist())
            )
            prefill_rows = None
            if rows is not None and query_positions:
                prefill_rows = rows[:, :, [need.index(q) for q in query_positions]]
            step_row = (
                rows[:, :, need.index(prompt_len - 1)] if (rows is not None and capture.decode) else None
            )
            yield PrefillEvent(
                prompt_len,
                grid,
                prompt_ids,
                adapter.token_strings(prompt_ids),
                prefill_rows,
                query_positions,
                None if norms is None else norms[:, 0].float().cpu().numpy(),
            )
            attention_mask = prepared.tensors["attention_mask"]
            logits = out.logits[:, -1, :]
            step = 0
            while True:
                token = _choose(logits, prepared.tensors["input_ids"], generated, procs, options, gen)
                generated.append(token)
                piece = pieces.push(token)
                switch = (
                    recorder.switches[-1]
                    if recorder.switches and recorder.switches[-1].step == step
                    else None
                )
                yield TokenEvent(step, token, piece, target, step_row, switch)
                if token in eos and not options.ignore_eos:
                    yield FinishedEvent(
                        "finished", list(recorder.switches), "end of sequence", len(generated)
                    )
                    return
                if len(generated) >= options.max_new_tokens:
                    yield FinishedEvent("finished", list(recorder.switches), "max new tokens", len(generated))
                    return
                if cancel is not None and cancel.is_set():
                    yield FinishedEvent(
                        "cancelled", list(recorder.switches), "cancelled by the user", len(generated)
                    )
                    return
                step += 1
                target = recorder.target_for_step(step)
                n_past = prompt_len + step - 1
                attention_mask = torch.cat(
                    [attention_mask, attention_mask.new_ones(attention_mask.shape[0], 1)], 1
                )
                ctl.set_request(
                    ForwardRequest("last" if capture.decode else None, bias_for(target, n_past + 1))
                )
                ids = torch.tensor([[token]], dtype=torch.long, device=loaded.device)
                out = model(
                    **adapter.decode_kwargs(model, prepared, ids, attention_mask, n_past),
                    cache=cache,
                    use_cache=True,
                )
                logits = out.logits[:, -1, :]
                taken = to_numpy(ctl.take_rows())
                step_row = None if taken is None else taken[:, :, 0]  # [layer, head, key]
    except (GazeExplorerError, RuntimeError, MemoryError) as exc:
        yield FinishedEvent("failed", list(recorder.switches), f"{type(exc).__name__}: {exc}", len(generated))


class _TextPieces:
    """The text each new token adds to the answer, decoding a short window per step.

    Decoding the whole answer every step costs O(n) per token (O(n^2) per run). Instead the
    window from ``prefix`` (a few tokens of context, so tokenizers that strip a leading space or
    merge bytes see the same neighbours) is decoded with and without the new tokens, and the
    difference is the piece. A window that ends in an incomplete character (U+FFFD) waits for the
    next token. Should a window not extend its own prefix, the whole answer is decoded as before.
    """

    def __init__(self, decode) -> None:
        self.decode = decode
        self.ids: list[int] = []
        self.prefix = 0  # window start
        self.read = 0  # tokens before this are already emitted
        self.emitted = ""

    def push(self, token: int) -> str:
        self.ids.append(int(token))
        before = self.decode(self.ids[self.prefix : self.read])
        after = self.decode(self.ids[self.prefix :])
        if after.endswith("\ufffd"):
            return ""  # an incomplete multi-byte character: wait for the rest
        if after.startswith(before):
            piece = after[len(before) :]
        else:
            full = self.decode(self.ids)
            piece = full[len(self.emitted) :] if full.startswith(self.emitted) else full
        if piece:
            self.prefix, self.read = self.read, len(self.ids)
        self.emitted += piece
        return piece


def _choose(logits, prompt_ids, generated, procs, options, gen) -> int:
    """The next token: logits processors, then greedy or seeded sampling."""
    scores = logits.float()  # [1, vocab]
    if len(procs):
        seq = torch.cat(
            [
                prompt_ids[:1].to(scores.device),
                torch.tensor([generated], dtype=torch.long, device=scores.device).reshape(1, -1),
            ],
            dim=1,
        )
        scores = procs(seq, scores)
    if not options.do_sample:
        return int(torch.argmax(scores, dim=-1)[0])
    probs = torch.softmax(scores, dim=-1).cpu()
    return int(torch.multinomial(probs, 1, generator=gen)[0, 0])
