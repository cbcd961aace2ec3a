"""Behaviour of the shipped demo model on held-out strips, measured with the project's own code.

These are the issue's thresholds: attribute accuracy >= 95% per attribute, narrations in order,
a separated set of gaze heads, gaze-head steering >= 90% with random heads within 10 points of
the unsteered rate and all heads degenerating most outputs, and dynamic Spearman >= 0.9.
"""

from __future__ import annotations

import numpy as np
import pytest

from gaze_explorer.demo import prompts
from gaze_explorer.demo.comics import load_heldout_strips
from gaze_explorer.demo.measure import description_accuracy, evaluate, run_discovery
from gaze_explorer.inference.discovery import PAPER_PROMPT, panel_prompt
from gaze_explorer.inference.evaluation import default_top_k
from gaze_explorer.inference.loading import load_model

N_STRIPS = 8  # 48 (strip, target) pairs per condition
# Known gap, kept visible: strict, so a model that meets the threshold turns these into failures
# until the marker is removed.
NOT_YET = pytest.mark.xfail(
    strict=True,
    reason="the shipped demo model (run r9) steers with its top-5 discovered heads at ~0.5, not 0.9: they read the "
    "object colour, another ~8 heads read the background (model card, 'What mattered')",
)


@pytest.fixture(scope="module")
def loaded():
    return load_model("demo", device="cpu", num_threads=1)  # 2 threads thrash on a shared 2-core box


@pytest.fixture(scope="module")
def strips():
    return load_heldout_strips(n=N_STRIPS)


@pytest.fixture(scope="module")
def discovery(loaded, strips):
    return run_discovery(loaded, strips)


@pytest.fixture(scope="module")
def k(loaded):
    return default_top_k(loaded.n_layers, loaded.n_heads, demo=True)


def test_discovery_prompt_is_the_trained_question():
    assert panel_prompt(PAPER_PROMPT, 3, 6) == prompts.kth_prompt(2)
    assert panel_prompt(prompts.DISCOVERY_TEMPLATE, 3, 6) == prompts.kth_prompt(2)


def test_descriptions_are_right_and_narrations_in_order(loaded, strips):
    res = description_accuracy(loaded, strips[:6])
    for name, acc in res["attribute_accuracy"].items():
        assert acc >= 0.95, (name, acc)
    assert set(res["attribute_accuracy"]) == {"object", "background"}
    assert res["narration_order_accuracy"] >= 0.95


def test_gaze_heads_are_clearly_separated(discovery, k):
    scores = np.sort(discovery.scores.ravel())[::-1]
    median = float(np.median(scores))
    assert scores[k - 1] >= 2 * median, (scores[:k], median)
    # the top heads look at the asked panel: their matrices are diagonal-dominant
    order = np.argsort(-discovery.scores.ravel())[:k]
    n_heads = discovery.scores.shape[1]
    for i in order:
        m = discovery.matrices[i // n_heads, i % n_heads]  # [queried, attended]
        assert (np.argmax(m, axis=1) == np.arange(6)).mean() >= 5 / 6


@pytest.mark.slow
@NOT_YET
def test_steering_gaze_vs_random_vs_all(loaded, strips, discovery, k):
    report = evaluate(loaded, strips, discovery.scores, "static", k)
    acc = {c: v["accuracy"] for c, v in report["conditions"].items()}
    assert acc["gaze"] >= 0.90, acc
    assert abs(acc["random"] - acc["baseline"]) <= 0.10, acc
    assert report["conditions"]["all"]["degenerate_rate"] > 0.5, report["conditions"]["all"]


@pytest.mark.slow
@NOT_YET
def test_dynamic_narration_follows_the_schedule(loaded, strips, discovery, k):
    from gaze_explorer.inference.evaluation import EvalConfig, Evaluation, HeadConditions

    cfg = EvalConfig(
        protocol="dynamic", prompt=prompts.NARRATION_PROMPT, switch_every=prompts.SENTENCE_TOKENS,
        conditions=("gaze", "baseline"), n_resamples=200,
    )  # fmt: skip
    report = Evaluation(loaded, strips[:6], HeadConditions.from_scores(discovery.scores, k), cfg).run_to_end()
    assert report["conditions"]["gaze"]["spearman"]["mean"] >= 0.9, report["conditions"]["gaze"]
    assert report["conditions"]["baseline"]["spearman"]["mean"] < 0.5
