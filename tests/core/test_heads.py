"""core/heads and core/steering: head specs, top-K, control pools, files, schedules, live target,
the steering input check."""

from __future__ import annotations

import numpy as np
import pytest

from gaze_explorer.core.errors import ControlPoolError, GazeExplorerError, HeadSpecError, ScheduleError
from gaze_explorer.core.heads import (
    DEFAULT_CONTROL_POOL,
    DEFAULT_CONTROL_SEED,
    ControlPool,
    HeadSet,
    HeadSpec,
    choose_heads,
    load_head_list,
    parse_head_spec,
    random_control,
    save_head_list,
    top_k_heads,
)
from gaze_explorer.core.steering import (
    FixedTarget,
    LiveSchedule,
    LiveTarget,
    Schedule,
    SteeringPlan,
    SwitchRecorder,
    check_steering,
    check_targets,
    parse_schedule,
)

# head (l, h) scores 10 * l + h: the top 3 are L3H7-H9, all in layer 3
SCORES = np.arange(40, dtype=float).reshape(4, 10)


def test_top_k_and_files(tmp_path):
    top = top_k_heads(SCORES, 3)
    assert top.heads == ((3, 7), (3, 8), (3, 9))
    for name in ("r.json", "r.csv"):
        save_head_list(tmp_path / name, top, SCORES)
        assert load_head_list(tmp_path / name) == HeadSet(name.split(".")[0], top.heads)
    assert load_head_list(tmp_path / "r.json", limit=1).heads == ((3, 9),)
    with pytest.raises(HeadSpecError, match="out of range"):
        HeadSet("x", ((5, 0),)).validate(4, 10)


def test_head_specs_parse_criteria_with_top_as_the_gaze_alias():
    assert parse_head_spec("top:5") == HeadSpec("top", 5, "gaze") == parse_head_spec("gaze:5")
    assert parse_head_spec("localization:7") == HeadSpec("top", 7, "localization")
    assert str(parse_head_spec("image:100")) == "image:100" and str(parse_head_spec("top:4")) == "gaze:4"
    assert parse_head_spec("random:3") == HeadSpec("random", 3)
    assert parse_head_spec("all") == HeadSpec("all")
    assert parse_head_spec("heads/ranking.json") == HeadSpec("file", path="heads/ranking.json")
    for bad in ("random:0", "gaze:x", "image:-2"):
        with pytest.raises(HeadSpecError, match="K must"):
            parse_head_spec(bad)


@pytest.mark.parametrize(
    ("pool", "expected"),
    [
        ("percentile:10", {(0, h) for h in range(4)}),  # scores <= 3.9, the 10th percentile of 0..39
        ("band", {(3, h) for h in range(7)}),  # layer 3 holds the top 3: the rest of layer 3
        ("all-non-gaze", {(layer, h) for layer in range(4) for h in range(10)} - {(3, 7), (3, 8), (3, 9)}),
    ],
)
def test_each_control_pool_holds_its_known_heads(pool, expected):
    parsed = ControlPool.parse(pool)
    assert str(parsed) == pool and set(parsed.heads(SCORES, top_k_heads(SCORES, 3).heads)) == expected
    choice = random_control(SCORES, 3, seed=4, pool=pool)
    assert len(choice.heads) == 3 and set(choice.heads.heads) <= expected
    assert (choice.pool, choice.pool_size, choice.seed, choice.k, choice.criterion) == (
        pool,
        len(expected),
        4,
        3,
        "gaze",
    )


def test_band_spans_the_layers_of_the_top_heads_and_skips_unscored_heads():
    scores = np.zeros((5, 4))
    scores[1, 2], scores[3, 0] = 9.0, 8.0  # the top 2 lie in layers 1 and 3
    scores[2, 1] = np.nan  # a head without attention (a linear-attention layer)
    pool = ControlPool.parse("band").heads(scores, top_k_heads(scores, 2).heads)
    expected = {(layer, h) for layer in (1, 2, 3) for h in range(4)} - {(1, 2), (3, 0), (2, 1)}
    assert set(pool) == expected and len(pool) == 9


def test_seeds_change_the_draw_and_the_same_seed_repeats_it():
    draws = {random_control(SCORES, 3, seed=seed, pool="all-non-gaze").heads.heads for seed in range(5)}
    assert len(draws) > 1  # 37 heads in the pool, 3 drawn
    again = random_control(SCORES, 3, seed=2, pool="all-non-gaze")
    assert again == random_control(SCORES, 3, seed=2, pool="all-non-gaze")
    assert random_control(SCORES, 3, pool="all-non-gaze").seed == DEFAULT_CONTROL_SEED == 0


def test_a_pool_smaller_than_k_is_an_error_never_the_lowest_heads():
    assert DEFAULT_CONTROL_POOL == "band"  # the paper's headline control
    with pytest.raises(ControlPoolError, match=r"percentile:5\) holds 2 head\(s\), fewer than K=3") as err:
        random_control(SCORES, 3, pool="percentile:5")  # the 5th percentile of 0..39 is 1.95: two heads
    assert isinstance(err.value, GazeExplorerError)
    assert "band" not in str(err.value)  # the band follows K and can be smaller: not offered as wider
    with pytest.raises(ControlPoolError) as band_err:
        choose_heads("random:8", 4, 10, scores=SCORES, pool="band")  # the top 8 fill layer 3 but for 2 heads
    # the advice names only pools wider than the one that was too small
    assert str(band_err.value).endswith("wider pool (all-non-gaze, or percentile:P)")
    with pytest.raises(ControlPoolError, match="no pool is wider"):
        random_control(SCORES, 39, pool="all-non-gaze")  # 40 heads, the top 39 leave one
    with pytest.raises(HeadSpecError, match="unknown control pool"):
        ControlPool.parse("lowest")
    with pytest.raises(HeadSpecError, match="from 0 to 100"):
        ControlPool.parse("percentile:150")


def test_choose_heads_takes_scores_per_criterion(tmp_path):
    image = -SCORES  # the image criterion ranks layer 0 first
    scores = {"gaze": SCORES, "image": image}
    top = choose_heads("top:2", 4, 10, scores=scores)
    assert top.heads.heads == ((3, 8), (3, 9)) and top == choose_heads("gaze:2", 4, 10, scores=SCORES)
    assert (top.criterion, top.k, top.spec, top.seed, top.pool) == ("gaze", 2, "gaze:2", None, None)
    img = choose_heads("image:2", 4, 10, scores=scores)
    assert img.heads == HeadSet("image-2", ((0, 0), (0, 1))) and img.criterion == "image"
    rand = choose_heads("random:2", 4, 10, scores=scores, seed=3, pool="percentile:10")
    assert rand == random_control(SCORES, 2, seed=3, pool="percentile:10")
    assert rand.to_dict() == {
        "spec": "random:2",
        "name": "random-2",
        "criterion": "gaze",
        "k": 2,
        "seed": 3,
        "pool": "percentile:10",
        "pool_size": 4,
        "pool_layers": None,  # a band's layers only
        "n_selected": None,
        "criterion_params": None,
        "heads": [list(h) for h in rand.heads.heads],
    }
    with pytest.raises(HeadSpecError, match="needs localization scores"):
        choose_heads("localization:2", 4, 10, scores=scores)
    with pytest.raises(HeadSpecError, match="4 x 10, but the model has 5 x 10"):
        choose_heads("gaze:2", 5, 10, scores=SCORES)
    assert len(choose_heads("all", 4, 10).heads) == 40
    assert choose_heads(HeadSpec("custom"), 4, 10, custom=[(1, 1), (0, 2)]).heads.heads == ((0, 2), (1, 1))
    save_head_list(tmp_path / "mine.csv", HeadSet("mine", ((2, 3),)))
    assert choose_heads(str(tmp_path / "mine.csv"), 4, 10).heads.heads == ((2, 3),)
    with pytest.raises(HeadSpecError, match="out of range"):
        choose_heads(str(tmp_path / "mine.csv"), 2, 10)


def test_schedule_and_live_target():
    sched = parse_schedule("4,2,1", 6, 2)
    assert [sched.target_at(s) for s in range(7)] == [3, 3, 1, 1, 0, 0, 0]
    with pytest.raises(ScheduleError):
        parse_schedule("7", 6, 2)
    live = LiveTarget(0)
    rec = SwitchRecorder(live, "live")
    rec.target_for_step(0)
    live.set(2)
    assert rec.target_for_step(1) == 2 and rec.switches[0].step == 1


def test_a_plan_records_how_its_heads_were_chosen():
    choice = random_control(SCORES, 2, seed=5, pool="band")
    plan = SteeringPlan(choice.heads, choice=choice)
    assert plan.to_dict()["choice"] == {k: v for k, v in choice.to_dict().items() if k != "heads"}
    assert plan.to_dict()["choice"]["pool_size"] == 8 and plan.to_dict()["heads"] == choice.to_dict()["heads"]
    assert SteeringPlan(choice.heads).to_dict()["choice"] is None


def test_one_check_for_steering_input():
    plan = SteeringPlan(HeadSet("two", ((0, 1), (1, 2))))
    check_steering(plan, Schedule((0, 5), 4), 6, 2, 4)  # fine: nothing raised
    check_steering(None, None, 0, 2, 4)
    for source in (6, FixedTarget(6), Schedule((0, 6), 4), LiveTarget(6), LiveSchedule(Schedule((6,), 2))):
        with pytest.raises(ScheduleError, match=r"^panel 7 does not exist: the image has 6 panel"):
            check_steering(plan, source, 6, 2, 4)
    with pytest.raises(ScheduleError, match="panels 0, 8 do not exist"):
        check_targets([-1, 2, 7, None], 6)
    with pytest.raises(ScheduleError, match="the head set is empty"):
        check_steering(SteeringPlan(HeadSet("none", ())), 0, 6, 2, 4)
    with pytest.raises(HeadSpecError, match="out of range"):
        check_steering(SteeringPlan(HeadSet("x", ((2, 0),))), 0, 6, 2, 4)
    with pytest.raises(HeadSpecError, match="linear-attention"):
        check_steering(plan, 0, 6, 2, 4, attention_layers=(0,))
    with pytest.raises(ScheduleError, match="panel 9 does not exist"):
        parse_schedule("4,9,1", 6, 2)


def test_all_and_custom_respect_the_attention_layers_without_scores():
    # a hybrid model (layers 0 and 2 linear attention) before any discovery: no NaN scores to go by
    choice = choose_heads("all", 4, 3, attention_layers=(1, 3))
    assert {layer for layer, _ in choice.heads.heads} == {1, 3} and len(choice.heads) == 6
    assert len(choose_heads("all", 4, 3).heads) == 12  # not given: every layer
    with pytest.raises(HeadSpecError, match="linear-attention layers"):
        choose_heads(HeadSpec("custom"), 4, 3, custom=[(0, 1)], attention_layers=(1, 3))


def test_a_band_control_names_its_layers_and_a_criterion_records_its_own_selection():
    """The band's first and last layer go with the draw (the layers of the top-K gaze heads); a
    criterion's top-K records how many heads its own selection keeps, its parameters, and says so
    when K goes beyond them."""
    scores = np.zeros((4, 10))
    scores[1, 0], scores[3, 5], scores[3, 6] = 3.0, 2.0, 1.0  # the top 3 span layers 1..3
    band = choose_heads("random:3", 4, 10, scores=scores, pool="band", seed=1)
    assert band.pool_layers == (1, 3) and band.to_dict()["pool_layers"] == [1, 3]
    assert band.pool_size == 27 and all(1 <= layer <= 3 for layer, _ in band.heads.heads)
    assert choose_heads("random:1", 4, 10, scores=scores, pool="band").pool_layers == (1, 1)
    assert choose_heads("random:3", 4, 10, scores=scores, pool="all-non-gaze").pool_layers is None
    selection = {"image": {"n_selected": 1, "params": {"flag_z": 2.5, "fill_in": "the z order"}}}
    grids = {"gaze": scores, "image": scores}
    three = choose_heads("image:3", 4, 10, scores=grids, selection=selection)
    assert three.n_selected == 1 and three.to_dict()["criterion_params"]["flag_z"] == 2.5
    assert three.fill_in_note() == (
        "note: image:3: only 1 head(s) pass the image criterion's own selection; "
        "the other 2 are fill-ins by the z order"
    )
    assert choose_heads("image:1", 4, 10, scores=grids, selection=selection).fill_in_note() is None
    gaze = choose_heads("gaze:3", 4, 10, scores=grids, selection=selection)
    assert gaze.n_selected is None and gaze.fill_in_note() is None
