"""Drain a generation stream into a session run: the sink between inference and storage.

Events are duck-typed (``PrefillEvent``, ``TokenEvent``, ``FinishedEvent`` from
``gaze_explorer.inference.generation``), so storage never imports torch or the inference layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from gaze_explorer.storage.writer import SessionWriter


def _kind(event) -> str:
    if hasattr(event, "status"):
        return "finished"
    if hasattr(event, "step") and hasattr(event, "token_id"):
        return "token"
    if hasattr(event, "prompt_len"):
        return "prefill"
    raise TypeError(f"not a generation event: {event!r}")


def record_events(
    stream: Iterable,
    writer: SessionWriter,
    *,
    name: str,
    prompt: str,
    n_layers: int,
    n_heads: int,
    max_new_tokens: int,
    options=None,
    plan=None,
    schedule=None,
    target=None,
    prefill_mode: str = "last",
    capture_decode: bool = True,
    regions=None,
) -> Iterator:
    """Store each event of ``stream`` in a new run of ``writer`` and pass it on (for a live view).

    The run begins at the prefill event (which gives the prompt length). If the stream raises,
    the run ends as ``failed`` with the error as its reason and the error propagates; if the
    stream stops without a ``FinishedEvent`` (closed early), the run ends as ``cancelled``.
    The run id is available as ``writer.last_run_id`` once the prefill arrived.
    """
    run_id = None
    ended = False
    try:
        for event in stream:
            kind = _kind(event)
            if kind == "prefill":
                run_id = writer.begin_run(
                    name,
                    prompt=prompt,
                    options=options,
                    plan=plan,
                    schedule=schedule,
                    target=target,
                    n_layers=n_layers,
                    n_heads=n_heads,
                    max_keys=int(event.prompt_len) + int(max_new_tokens),
                    prompt_len=int(event.prompt_len),
                    prefill_mode=prefill_mode,
                    capture_decode=capture_decode,
                    regions=regions,
                )
                writer.last_run_id = run_id
                writer.write_prefill(run_id, event.rows, event.token_ids, event.token_strings)
            elif kind == "token":
                if run_id is None:
                    raise ValueError("a token event came before the prefill event")
                writer.append_step(run_id, event)
            else:
                if run_id is not None:
                    writer.end_run(run_id, event.status, event.switches, getattr(event, "reason", "") or "")
                ended = True
            yield event
    except BaseException as exc:
        if run_id is not None and not ended and writer.failed is None:
            status = "cancelled" if isinstance(exc, GeneratorExit) else "failed"
            reason = "" if isinstance(exc, GeneratorExit) else f"{type(exc).__name__}: {exc}"
            writer.end_run(run_id, status, [], reason)
            ended = True
        raise
    finally:
        if run_id is not None and not ended and writer.failed is None:
            writer.end_run(run_id, "cancelled", [], "the generation stream stopped without finishing")


def record(stream: Iterable, writer: SessionWriter, **run_params) -> str | None:
    """Drain ``stream`` into a new run (see :func:`record_events`); return its run id."""
    writer.last_run_id = None
    for _ in record_events(stream, writer, **run_params):
        pass
    return writer.last_run_id
