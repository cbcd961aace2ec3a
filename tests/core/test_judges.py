"""The offline judges on crafted texts: exact attribute matching, BM25 captions, degenerate output."""

from __future__ import annotations

import pytest

from gaze_explorer.core.judges import (
    AttributeJudge,
    CaptionJudge,
    PanelTruth,
    degenerate_reason,
    judge_for,
    repetition_loop,
    segment_tokens,
    token_jaccard,
    words,
)

ATTRS = [
    {"colour": "red", "shape": "circle"},
    {"colour": "blue", "shape": "square"},
    {"colour": "green", "shape": "triangle"},
    {"colour": "red", "shape": "star"},
    {"colour": "light blue", "shape": "circle"},
    {"colour": "yellow", "shape": "square"},
]
TRUTH = PanelTruth(attributes=ATTRS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A green triangle.", 2),
        ("the panel shows a red star", 3),
        ("Red circle on a plain background", 0),
        ("a YELLOW square", 5),
        ("light blue circle", 4),  # a multi-word value wins over the shared shape
    ],
)
def test_attribute_judge_picks_the_described_panel(text, expected):
    j = AttributeJudge().judge(text, TRUTH)
    assert not j.degenerate
    assert j.choice == expected
    assert j.credit(expected) == 1.0
    assert j.credit((expected + 1) % 6) == 0.0


def test_attribute_judge_breaks_ties_by_first_mention_and_shares_true_ties():
    # 'blue' matches panel 1 and 'square' panels 1 and 5: panel 1 scores 2
    assert AttributeJudge().judge("a blue square", TRUTH).choice == 1
    # 'red' alone matches panels 0 and 3 equally: both are best, each gets half the credit
    j = AttributeJudge().judge("something red", TRUTH)
    assert j.best == (0, 3) and j.credit(0) == 0.5 and j.credit(3) == 0.5 and j.credit(1) == 0.0
    # 'circle' is mentioned before 'star': the circle panels go first
    j = AttributeJudge().judge("a circle next to a star", TRUTH)
    assert set(j.best) == {0, 4}


def test_attribute_judge_whole_words_only_and_synonyms():
    assert AttributeJudge().judge("reddish squares everywhere", TRUTH).degenerate
    truth = PanelTruth(attributes=[{"colour": "grey"}, {"colour": "pink"}])
    j = AttributeJudge(synonyms={"grey": ["gray"]}).judge("a gray thing", truth)
    assert j.choice == 0


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   ...  ", "empty"),
        ("red red red red red red", "repetition loop"),
        ("a blue square a blue square a blue square a blue square", "repetition loop"),
        ("the cat sat on the mat", "no recognisable attributes"),
    ],
)
def test_degenerate_outputs_are_flagged_and_miss(text, reason):
    j = AttributeJudge().judge(text, TRUTH)
    assert j.degenerate and j.reason == reason and j.choice is None
    assert all(j.credit(k) == 0.0 for k in range(6))


def test_repetition_loop_detection_is_not_fooled_by_a_normal_narration():
    ok = words("first a red circle then a blue square then a green triangle and a red star")
    assert repetition_loop(ok) is None
    assert repetition_loop(words("x y z the end the end the end the end")) == 2
    assert degenerate_reason("red red") == ""  # too short to be a loop


CAPTIONS = [
    "A man in a red hat opens the door of the bakery.",
    "The baker hands him a loaf of bread across the counter.",
    "A dog waits outside, tied to a lamp post in the rain.",
    "The man pays with coins from his pocket.",
    "He walks home under an umbrella with the bread.",
    "At home his children eat the bread at the table.",
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The dog is tied up outside in the rain.", 2),
        ("He pays the baker with some coins.", 3),
        ("Kids eating bread at a table", 5),
        ("a man opening a bakery door", 0),
    ],
)
def test_caption_judge_picks_the_matching_caption(text, expected):
    j = CaptionJudge().judge(text, PanelTruth(captions=CAPTIONS))
    assert j.choice == expected, j.scores


def test_caption_judge_ignores_words_every_caption_shares_and_flags_no_overlap():
    caps = ["the cat on a mat", "the dog on a log"]
    j = CaptionJudge().judge("the cat", PanelTruth(captions=caps))
    assert j.choice == 0
    j = CaptionJudge().judge("quantum chromodynamics", PanelTruth(captions=caps))
    assert j.degenerate and j.choice is None


def test_caption_judge_agrees_with_exact_judge_on_captions_made_from_attributes():
    caps = [f"a {a['colour']} {a['shape']}" for a in ATTRS]
    truth = PanelTruth(attributes=ATTRS, captions=caps)
    for k, a in enumerate(ATTRS):
        text = f"it is a {a['colour']} {a['shape']}"
        assert AttributeJudge().judge(text, truth).choice == k
        assert CaptionJudge().judge(text, truth).choice == k


def test_judge_for_prefers_attributes_and_needs_something():
    assert isinstance(judge_for(PanelTruth(attributes=ATTRS, captions=CAPTIONS)), AttributeJudge)
    assert isinstance(judge_for(PanelTruth(captions=CAPTIONS)), CaptionJudge)
    with pytest.raises(ValueError):
        judge_for(PanelTruth())


def test_words_and_segments():
    assert words("Panel 2: it's RED!") == ["panel", "2", "it's", "red"]
    assert segment_tokens(["a", " b", " c", " d", " e"], 2) == ["a b", " c d", " e"]


def test_token_jaccard_on_word_sets():
    assert token_jaccard("The cat, the CAT!", "cat the") == 1.0  # case, punctuation, repeats ignored
    assert token_jaccard("red cat", "red dog") == pytest.approx(1 / 3)
    assert token_jaccard("", "  ") == 1.0 and token_jaccard("", "cat") == 0.0
