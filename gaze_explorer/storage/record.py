"""The one recorder: drain a generation stream into a session run (the sink between inference and
storage), used by the CLI, the app, the benchmarks and the tests.

A :class:`RunRecorder` takes the events one by one (``feed``), recognised with ``isinstance`` on
the real classes of ``core.events``: the prefill event begins the run (it gives the prompt
length) and stores the prompt's tokens, rows and value-vector norms, each token event queues a
step, the finished event ends the run. A stream that raises or stops early is closed with :meth:`RunRecorder.end`.
:func:`record_events` wraps a whole stream (passing each event on, for a live view) and
:func:`record` drains one.

The app hooks in with two callbacks and one option: ``on_begin(run_id)`` once the run exists,
``on_step(event)`` with each token event before it is queued (the app keeps the rows of steps not
flushed yet in its step window), and ``release_rows`` to drop a token's rows from the event once
queued (the queued step keeps its own reference; the event then goes on to the GUI without them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator

from gaze_explorer.core.events import FinishedEvent, GenerationEvent, PrefillEvent, TokenEvent
from gaze_explorer.core.run_spec import RunSpec
from gaze_explorer.storage.writer import SessionWriter


class RunRecorder:
    """Writes one run of ``writer`` from the events of one generation stream (thread-safe)."""

    def __init__(
        self,
        writer: SessionWriter,
        spec: RunSpec,
        *,
        on_begin: Callable[[str], None] | None = None,
        on_step: Callable[[TokenEvent], None] | None = None,
        release_rows: bool = False,
    ) -> None:
        self.writer = writer
        self.spec = spec
        self.run_id: str | None = None
        self.ended = False
        self.switches: list = []  # the switches seen so far (kept if the stream never finishes)
        self._on_begin = on_begin
        self._on_step = on_step
        self._release_rows = release_rows
        self._lock = threading.Lock()

    def feed(self, event: GenerationEvent) -> GenerationEvent:
        """Store one event; returns it (with its rows dropped under ``release_rows``)."""
        if isinstance(event, TokenEvent) and self._on_step is not None:
            self._on_step(event)
        with self._lock:
            if self.ended:
                return event
            if isinstance(event, PrefillEvent):
                self._begin(event)
            elif isinstance(event, TokenEvent):
                if self.run_id is None:
                    raise ValueError("a token event came before the prefill event")
                if event.switch is not None:
                    self.switches.append(event.switch)
                self.writer.append_step(self.run_id, event)
                if self._release_rows:
                    event.rows = None
            elif isinstance(event, FinishedEvent):
                if self.run_id is not None:
                    self.writer.end_run(self.run_id, event.status, list(event.switches), event.reason or "")
                self.ended = True
            else:
                raise TypeError(f"not a generation event: {event!r}")
        return event

    def _begin(self, event: PrefillEvent) -> None:
        spec = self.spec
        prompt_len = int(event.prompt_len)
        self.run_id = self.writer.begin_run(
            spec.name,
            prompt=spec.prompt,
            options=spec.options,
            plan=spec.plan,
            schedule=spec.schedule,
            target=spec.target,
            n_layers=spec.n_layers,
            n_heads=spec.n_heads,
            max_keys=prompt_len + spec.new_tokens,
            prompt_len=prompt_len,
            prefill_mode=spec.prefill_mode,
            capture_decode=spec.capture_decode,
            regions=None if spec.regions is None else list(spec.regions),
            capture_scope=spec.capture_scope,
        )
        self.writer.last_run_id = self.run_id
        if self._on_begin is not None:
            self._on_begin(self.run_id)
        # always: the prompt's token strings belong in the session even with no prefill rows
        self.writer.write_prefill(
            self.run_id, event.rows, event.token_ids, event.token_strings, value_norms=event.value_norms
        )

    def end(self, status: str, reason: str = "") -> None:
        """End a run whose stream stopped without a finished event (raised, closed, interrupted).

        Nothing to do if the run never began, already ended, or the writer itself failed (its
        error is reported by the writer's next call).
        """
        with self._lock:
            if self.run_id is None or self.ended or self.writer.failed is not None:
                return
            self.ended = True
            self.writer.end_run(self.run_id, status, list(self.switches), reason)


def record_events(
    stream: Iterable[GenerationEvent], writer: SessionWriter, spec: RunSpec, **hooks
) -> Iterator:
    """Store each event of ``stream`` in a new run of ``writer`` and pass it on (for a live view).

    If the stream raises, the run ends as ``failed`` with the error as its reason and the error
    propagates; if the stream stops without a ``FinishedEvent`` (closed early), the run ends as
    ``cancelled``. The run id is ``writer.last_run_id`` once the prefill arrived. ``hooks`` are
    :class:`RunRecorder`'s keyword options.
    """
    recorder = RunRecorder(writer, spec, **hooks)
    try:
        for event in stream:
            yield recorder.feed(event)
    except GeneratorExit:
        recorder.end("cancelled")
        raise
    except BaseException as exc:
        recorder.end("failed", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        recorder.end("cancelled", "the generation stream stopped without finishing")


def record(stream: Iterable[GenerationEvent], writer: SessionWriter, spec: RunSpec, **hooks) -> str | None:
    """Drain ``stream`` into a new run (see :func:`record_events`); return its run id."""
    writer.last_run_id = None
    for _ in record_events(stream, writer, spec, **hooks):
        pass
    return writer.last_run_id
