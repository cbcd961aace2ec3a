"""The paper's evaluation defaults are the defaults, and each is recorded in the report.

- when the bias applies: prefill + decode for static VQA and static narration, decode steps only
  for dynamic narration (``--bias-on``), and it changes what is generated;
- the same-as-unsteered rule: word Jaccard > 0.9 (``baseline_rule: jaccard``);
- bootstrap CIs with 10,000 resamples;
- static VQA: 15 new tokens.

On the bundled demo model, one strip, few conditions.
"""

from __future__ import annotations

import numpy as np
import pytest

from gaze_explorer.core.errors import GazeExplorerError
from gaze_explorer.demo.comics import load_heldout_strips
from gaze_explorer.inference.evaluation import EvalConfig, Evaluation, HeadConditions
from gaze_explorer.inference.loading import load_model


@pytest.fixture(scope="module")
def loaded():
    return load_model("demo", device="cpu", num_threads=1)


@pytest.fixture(scope="module")
def strip():
    return load_heldout_strips(n=1)


def _heads(loaded):
    # any grid works: the defaults, not the head choice, are under test
    scores = np.arange(loaded.n_layers * loaded.n_heads, dtype=np.float64).reshape(
        loaded.n_layers, loaded.n_heads
    )
    return HeadConditions.from_scores(scores, 4)  # the band pool: layer 5's 12 other heads


def test_config_defaults_are_the_papers():
    static, dynamic, narration = (
        EvalConfig(),
        EvalConfig(protocol="dynamic"),
        EvalConfig(protocol="narration"),
    )
    assert static.effective_bias_on == "prefill+decode" and narration.effective_bias_on == "prefill+decode"
    assert dynamic.effective_bias_on == "decode"
    assert EvalConfig(bias_on="decode").effective_bias_on == "decode"
    assert static.n_resamples == 10_000 and static.baseline_rule == "jaccard"
    with pytest.raises(GazeExplorerError, match="bias_on"):
        EvalConfig(bias_on="prefill")
    with pytest.raises(GazeExplorerError, match="baseline rule"):
        EvalConfig(baseline_rule="same")


def test_static_defaults_are_recorded_and_the_prefill_bias_changes_answers(loaded, strip):
    conditions = ("all", "baseline")
    paper = Evaluation(loaded, strip, _heads(loaded), EvalConfig(conditions=conditions)).run_to_end()
    settings = paper["settings"]
    assert settings["bias_on"] == "prefill+decode"
    assert settings["max_new_tokens"] == 15
    assert settings["n_resamples"] == 10_000 and settings["baseline_rule"] == "jaccard"
    assert paper["baseline_rule"]["rule"] == "jaccard" and paper["baseline_rule"]["applied"]
    old = Evaluation(
        loaded, strip, _heads(loaded), EvalConfig(conditions=conditions, bias_on="decode")
    ).run_to_end()
    assert old["settings"]["bias_on"] == "decode"
    # steering every head on the prompt rows too changes the answers (decode-only keeps the
    # unsteered first token)
    texts = {
        m: [g["text"] for g in r["generations"] if g["condition"] == "all"]
        for m, r in (("p", paper), ("d", old))
    }
    assert texts["p"] != texts["d"]


def test_dynamic_default_is_decode_only_and_recorded(loaded, strip):
    cfg = EvalConfig(protocol="dynamic", conditions=("gaze",), switch_every=2, n_resamples=100)
    report = Evaluation(loaded, strip, _heads(loaded), cfg).run_to_end()
    assert report["settings"]["bias_on"] == "decode" and report["settings"]["n_resamples"] == 100
    assert not report["baseline_rule"]["applied"]
