"""The generation stream: greedy parity with ``model.generate``, captured rows, schedules,
cancel, sampling and the repetition knobs."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest
import torch

from gaze_explorer.core.errors import HeadSpecError, InvalidImageError, PromptError, ScheduleError
from gaze_explorer.core.heads import HeadSet
from gaze_explorer.core.options import CaptureSpec, GenerationOptions
from gaze_explorer.core.regions import panel_regions
from gaze_explorer.core.steering import Schedule, SteeringPlan
from gaze_explorer.inference.attention import ForwardRequest, attention_control
from gaze_explorer.inference.generation import FinishedEvent, PrefillEvent, TokenEvent, generate_stream

PROMPT = "what is happening in the first panel ?"


def _regions(loaded, image):
    return panel_regions(loaded.prepare(image, PROMPT).grid, 6)


def _run(loaded, image, **kw):
    kw.setdefault("regions", _regions(loaded, image))
    return list(generate_stream(loaded, image, PROMPT, **kw))


def _tokens(events):
    return [e.token_id for e in events if isinstance(e, TokenEvent)]


def test_greedy_tokens_match_model_generate(tiny_qwen, strip_image):
    events = _run(tiny_qwen, strip_image, options=GenerationOptions(max_new_tokens=10))
    assert isinstance(events[0], PrefillEvent) and isinstance(events[-1], FinishedEvent)
    assert events[-1].status == "finished"
    prepared = tiny_qwen.prepare(strip_image, PROMPT)
    with torch.inference_mode():
        ref = tiny_qwen.model.generate(**prepared.tensors, max_new_tokens=10, do_sample=False)
    # the same tokens and as many: both stop at the same EOS or at max_new_tokens
    assert _tokens(events) == ref[0, prepared.prompt_len :].tolist()
    steps = [e.step for e in events if isinstance(e, TokenEvent)]
    assert steps == list(range(len(steps)))


def test_decode_rows_equal_a_full_prefill_of_the_same_sequence(tiny_qwen, strip_image):
    """Step s's row (KV cache, M-RoPE decode positions) equals row prompt_len+s-1 of one forward
    over prompt + generated tokens: positions and capture agree between prefill and decode."""
    events = _run(tiny_qwen, strip_image, options=GenerationOptions(max_new_tokens=5))
    pre = events[0]
    toks = [e for e in events if isinstance(e, TokenEvent)]
    assert toks[0].rows.shape == (tiny_qwen.n_layers, tiny_qwen.n_heads, pre.prompt_len)
    assert pre.rows.shape == (tiny_qwen.n_layers, tiny_qwen.n_heads, 1, pre.prompt_len)
    np.testing.assert_allclose(toks[0].rows, pre.rows[:, :, 0], atol=1e-6)
    model, adapter = tiny_qwen.model, tiny_qwen.adapter
    prepared = tiny_qwen.prepare(strip_image, PROMPT)
    ids = torch.cat([prepared.tensors["input_ids"], torch.tensor([[e.token_id for e in toks[:-1]]])], 1)
    prepared.tensors["input_ids"] = ids
    prepared.tensors["attention_mask"] = torch.ones_like(ids)
    prepared.tensors["mm_token_type_ids"] = adapter.extra_tensors(ids, ids)["mm_token_type_ids"]
    with torch.inference_mode(), attention_control(tiny_qwen) as ctl:
        ctl.set_request(ForwardRequest(capture_rows="all"))
        model(**adapter.prefill_kwargs(model, prepared))
        full = ctl.take_rows()[:, 0].numpy()  # [layer, head, query, key]
    for s, ev in enumerate(toks):
        assert ev.rows.shape[-1] == pre.prompt_len + s
        q = pre.prompt_len - 1 + s
        np.testing.assert_allclose(ev.rows, full[:, :, q, : q + 1], atol=1e-5)
        np.testing.assert_allclose(ev.rows.sum(-1), 1.0, atol=1e-5)


def test_prefill_capture_modes(tiny_qwen, strip_image):
    ev = _run(
        tiny_qwen,
        strip_image,
        options=GenerationOptions(max_new_tokens=1),
        capture=CaptureSpec(decode=False, prefill="full", value_norms=True),
    )[0]
    t = ev.prompt_len
    assert ev.rows.shape == (tiny_qwen.n_layers, tiny_qwen.n_heads, t, t)
    assert np.allclose(np.triu(ev.rows, k=1), 0.0)  # causal, though the mask arrived as None
    assert ev.value_norms.shape == (tiny_qwen.n_layers, tiny_qwen.n_heads, t) and np.all(ev.value_norms > 0)
    # GQA: query heads 0 and 1 share KV head 0
    np.testing.assert_array_equal(ev.value_norms[:, 0], ev.value_norms[:, 1])
    ev = _run(
        tiny_qwen,
        strip_image,
        options=GenerationOptions(max_new_tokens=1),
        capture=CaptureSpec(decode=False, prefill_queries=(3, 7)),
    )[0]
    assert ev.rows.shape[2] == 2 and ev.query_positions == [3, 7]
    assert np.allclose(ev.rows[:, :, 0, 4:], 0.0) and np.allclose(ev.rows.sum(-1), 1.0, atol=1e-5)
    events = _run(
        tiny_qwen,
        strip_image,
        options=GenerationOptions(max_new_tokens=2),
        capture=CaptureSpec(decode=False, prefill="none"),
    )
    assert events[0].rows is None and all(e.rows is None for e in events if isinstance(e, TokenEvent))


def test_schedule_switches_are_recorded_at_the_right_steps(tiny_qwen, strip_image):
    plan = SteeringPlan(HeadSet("one", ((1, 0),)))
    events = _run(
        tiny_qwen,
        strip_image,
        plan=plan,
        target=Schedule((0, 3, 5), 3),
        options=GenerationOptions(max_new_tokens=8),
    )
    toks = [e for e in events if isinstance(e, TokenEvent)]
    assert [e.target for e in toks] == [0, 0, 0, 3, 3, 3, 5, 5]
    switches = events[-1].switches
    assert [(s.step, s.previous, s.to, s.source) for s in switches] == [
        (3, 0, 3, "schedule"),
        (6, 3, 5, "schedule"),
    ]
    assert [e.step for e in toks if e.switch is not None] == [3, 6]


def test_cancel_between_steps(tiny_qwen, strip_image):
    cancel = threading.Event()
    stream = generate_stream(
        tiny_qwen,
        strip_image,
        PROMPT,
        regions=_regions(tiny_qwen, strip_image),
        options=GenerationOptions(max_new_tokens=50),
        cancel=cancel,
    )
    seen = []
    for ev in stream:
        seen.append(ev)
        if isinstance(ev, TokenEvent) and ev.step == 2:
            cancel.set()
    assert isinstance(seen[-1], FinishedEvent) and seen[-1].status == "cancelled"
    assert len(_tokens(seen)) == 3


def test_sampling_is_seeded_and_no_repeat_ngram_holds(tiny_qwen, strip_image):
    sample = GenerationOptions(max_new_tokens=12, do_sample=True, temperature=1.5, seed=7)
    a = _tokens(_run(tiny_qwen, strip_image, options=sample))
    b = _tokens(_run(tiny_qwen, strip_image, options=sample))
    c = _tokens(
        _run(
            tiny_qwen,
            strip_image,
            options=GenerationOptions(max_new_tokens=12, do_sample=True, temperature=1.5, seed=8),
        )
    )
    assert a == b and a != c
    greedy = _tokens(_run(tiny_qwen, strip_image, options=GenerationOptions(max_new_tokens=16)))
    bigrams = list(itertools.pairwise(greedy))
    assert len(set(bigrams)) < len(bigrams)  # the random tiny model loops when greedy
    prompt_ids = tiny_qwen.prepare(strip_image, PROMPT).tensors["input_ids"][0].tolist()
    opts = GenerationOptions(max_new_tokens=16, no_repeat_ngram_size=2)
    seq = prompt_ids + _tokens(_run(tiny_qwen, strip_image, options=opts))
    n = len(prompt_ids)
    for j in range(n, len(seq)):  # every generated token completes a bigram not seen before
        earlier = set(itertools.pairwise(seq[:j]))
        assert (seq[j - 1], seq[j]) not in earlier
    penalised = _tokens(
        _run(tiny_qwen, strip_image, options=GenerationOptions(max_new_tokens=16, repetition_penalty=5.0))
    )
    assert len(set(penalised)) > len(set(greedy))


def test_bad_input_raises_before_running(tiny_qwen, strip_image):
    regions = _regions(tiny_qwen, strip_image)
    with pytest.raises(HeadSpecError, match="out of range"):
        generate_stream(
            tiny_qwen,
            strip_image,
            PROMPT,
            regions=regions,
            plan=SteeringPlan(HeadSet("x", ((9, 0),))),
            target=0,
        )
    with pytest.raises(HeadSpecError, match="L1H7"):
        generate_stream(
            tiny_qwen,
            strip_image,
            PROMPT,
            regions=regions,
            plan=SteeringPlan(HeadSet("x", ((1, 7),))),
            target=0,
        )
    with pytest.raises(ScheduleError, match="panel 7 does not exist: the image has 6 panel"):
        generate_stream(
            tiny_qwen,
            strip_image,
            PROMPT,
            regions=regions,
            plan=SteeringPlan(HeadSet("x", ((1, 0),))),
            target=6,
        )
    with pytest.raises(InvalidImageError):
        generate_stream(tiny_qwen, b"\x89PNG", PROMPT, regions=regions)
    with pytest.raises(PromptError):
        generate_stream(tiny_qwen, strip_image, "", regions=regions)
    with pytest.raises(PromptError, match="outside the prompt"):
        generate_stream(
            tiny_qwen, strip_image, PROMPT, regions=regions, capture=CaptureSpec(prefill_queries=(10_000,))
        )


def test_generation_passes_the_cache_without_the_deprecated_keyword(tiny_qwen, strip_image):
    """transformers 5.x deprecates ``past_key_values=`` in ``forward`` (removed in 5.40): the stream
    passes ``cache=``, so it warns about nothing; the same forward with the old keyword does warn
    (the check can see the warning)."""
    import warnings

    from transformers import DynamicCache

    def deprecation_messages(run) -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run()
        return [str(w.message) for w in caught if issubclass(w.category, FutureWarning | DeprecationWarning)]

    model, adapter = tiny_qwen.model, tiny_qwen.adapter
    prepared = tiny_qwen.prepare(strip_image, PROMPT)
    with torch.no_grad():
        old = deprecation_messages(
            lambda: model(
                **adapter.prefill_kwargs(model, prepared), past_key_values=DynamicCache(config=model.config)
            )
        )
    assert any("past_key_values" in m for m in old)
    new = deprecation_messages(
        lambda: _run(tiny_qwen, strip_image, options=GenerationOptions(max_new_tokens=3))
    )
    assert not [m for m in new if "past_key_values" in m or "cache" in m.lower()], new
