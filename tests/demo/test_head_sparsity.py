"""The training-only attention of the demo: the same outputs as SDPA, and a penalty that measures
how many heads read the image and at how many positions."""

from __future__ import annotations

import math

import pytest
import torch

from gaze_explorer.demo.training import head_sparsity
from gaze_explorer.demo.training.data import BatchBuilder
from gaze_explorer.demo.training.train import build_config, build_model
from gaze_explorer.demo.training.vocab import build_demo_tokenizer


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    tok = build_demo_tokenizer()
    model = build_model(
        build_config(tok, text={"num_hidden_layers": 2}, vision={"depth": 1, "deepstack_visual_indexes": [0]})
    )
    model.eval()
    return tok, model, BatchBuilder(tok, seed=0)


def test_logits_equal_sdpa_and_the_penalty_is_collected(parts):
    _, model, builder = parts
    batch = builder.next_batch(3)  # right-padded rows of different lengths
    kwargs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        model.set_attn_implementation({"text_config": "sdpa"})
        want = model(**kwargs).logits
        head_sparsity.register()
        model.set_attn_implementation({"text_config": head_sparsity.ATTN_NAME})
        queries = head_sparsity.text_queries(
            batch["input_ids"], batch["attention_mask"], builder.image_token_id
        )
        with head_sparsity.collecting(head_sparsity.ImagePenalty(batch["mm_token_type_ids"], queries)) as pen:
            got = model(**kwargs).logits
        model.set_attn_implementation({"text_config": "sdpa"})
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(got[real], want[real], rtol=1e-4, atol=1e-4)
    assert len(pen.terms) == len(pen.spread_terms) == 2  # one per text layer
    assert 0.0 < float(pen.spread()) < 0.25  # a variance of values in [0, 1]
    # every head's group norm lies between 0 and sqrt(number of counted queries)
    assert 0.0 < float(pen.total()) <= math.sqrt(int(queries.sum(1).max()))
    # the counted queries are the text after the image, never padding
    first_text = int((batch["mm_token_type_ids"][0] == 1).nonzero().max()) + 1
    assert not queries[0, :first_text].any() and queries[0, first_text]
    assert not queries[~real].any()


def test_one_head_reading_everywhere_costs_less_than_many_heads_reading_once():
    # 4 queries after 2 image keys; probabilities on the image keys only where a head "reads"
    image_keys = torch.tensor([[1, 1, 0, 0, 0, 0]])
    queries = torch.tensor([[0, 0, 1, 1, 1, 1]]).bool()

    def cost(reads, norm="l2"):  # reads[h] = the query positions where head h looks at the image
        probs = torch.zeros(1, len(reads), 6, 6)
        probs[..., 2] = 1.0  # otherwise on a text key
        for h, positions in enumerate(reads):
            for q in positions:
                probs[0, h, q] = 0.0
                probs[0, h, q, 0] = 1.0
        pen = head_sparsity.ImagePenalty(image_keys, queries, norm)
        return float(head_sparsity.head_costs(head_sparsity.image_mass(probs, pen), pen).sum())

    one_head = cost([[2, 3, 4, 5], [], [], []])
    four_heads = cost([[2], [3], [4], [5]])
    assert one_head == pytest.approx(2.0, abs=1e-2) and four_heads == pytest.approx(4.0, abs=1e-2)
    assert cost([[0, 1], [], [], []]) < 0.01  # reading before the image (prompt positions) is not counted
    # the max norm: reading at more positions is free once a head reads at all
    assert cost([[2, 3, 4, 5], [], [], []], "max") == pytest.approx(1.0)
    assert cost([[2], [], [], []], "max") == pytest.approx(1.0)
    assert cost([[2], [3], [4], [5]], "max") == pytest.approx(4.0)
    with pytest.raises(ValueError, match="norm"):
        head_sparsity.ImagePenalty(image_keys, queries, "l1")


def test_spread_is_zero_for_a_head_that_reads_at_every_token_and_large_for_one_that_reads_sometimes():
    image_keys = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0]])
    queries = torch.tensor([[0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 0, 0]]).bool()  # row 2: 2 padded queries
    probs = torch.zeros(2, 3, 6, 6)
    probs[..., 2] = 1.0
    probs[:, 0, :, 2], probs[:, 0, :, 0] = 0.1, 0.9  # head 0: 0.9 on the image at every query
    probs[:, 1, 2, 2], probs[:, 1, 2, 0] = 0.0, 1.0  # head 1: reads only at query 2
    probs[1, 2, 4:, 2], probs[1, 2, 4:, 0] = 0.0, 1.0  # head 2: reads only at row 2's padded queries
    pen = head_sparsity.ImagePenalty(image_keys, queries)
    spread = head_sparsity.head_spread(head_sparsity.image_mass(probs, pen), pen)
    assert spread[:, 0].tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    assert spread[0, 1] == pytest.approx(0.1875)  # one 1 among four 0s: 1/4 - 1/16
    assert spread[1, 1] == pytest.approx(0.25)  # one 1 and one 0 among the two counted queries
    assert spread[1, 2] == pytest.approx(0.0, abs=1e-6)  # padded queries do not count


IMAGE_KEYS = torch.tensor([[1, 1, 0, 0, 0, 0]])  # 2 image keys, then 4 text queries that count
QUERIES = torch.tensor([[0, 0, 1, 1, 1, 1]]).bool()


def lasso_total(readers: dict[int, float], n_heads: int, n_layers: int = 1, **kw) -> float:
    """The lasso of ``n_layers`` layers of ``n_heads`` heads; ``readers``: head -> its image mass at
    every query (the same heads read in every layer)."""
    pen = head_sparsity.ImagePenalty(IMAGE_KEYS, QUERIES, "max", **kw)
    for _layer in range(n_layers):
        probs = torch.zeros(1, n_heads, 6, 6)
        probs[..., 2] = 1.0
        for h, m in readers.items():
            probs[0, h, :, 2], probs[0, h, :, 0] = 1.0 - m, m
        pen.collect(probs)
    return float(pen.total())


def test_free_heads_trim_the_lasso_to_the_heads_beyond_the_budget():
    def total(readers: dict[int, float], free: int) -> float:  # two layers of 4 heads
        return lasso_total(readers, 4, n_layers=2, free_heads=free)

    assert total({0: 1.0, 1: 0.5}, free=0) == pytest.approx(3.0 / 8)  # the plain lasso: the mean cost
    assert total({0: 1.0, 1: 0.5}, free=2) == pytest.approx(1.0 / 8)  # two 1.0 readers are free
    assert total({0: 1.0, 1: 0.5}, free=4) == pytest.approx(0.0, abs=1e-6)  # all four readers are free
    assert total({0: 1.0, 1: 1.0, 2: 1.0}, free=4) == pytest.approx(2.0 / 8)  # the 5th and 6th pay
    with pytest.raises(ValueError, match="free_heads"):
        head_sparsity.ImagePenalty(IMAGE_KEYS, QUERIES, free_heads=-1)


def test_kv_max_costs_a_kv_group_once_whatever_number_of_its_heads_read():
    image_keys = torch.tensor([[1, 1, 0, 0, 0, 0]])
    queries = torch.tensor([[0, 0, 1, 1, 1, 1]]).bool()
    probs = torch.zeros(1, 4, 6, 6)  # 4 query heads, 2 per KV head
    probs[..., 2] = 1.0
    for h, m in {0: 0.9, 1: 0.6, 3: 0.3}.items():  # heads 0 and 1 (group 0) and 3 (group 1) read
        probs[0, h, 2:, 2], probs[0, h, 2:, 0] = 1.0 - m, m
    pen = head_sparsity.ImagePenalty(image_keys, queries, "kv_max")
    costs = head_sparsity.head_costs(head_sparsity.image_mass(probs, pen), pen, n_rep=2)
    assert costs.shape == (1, 2)
    assert costs[0].tolist() == pytest.approx([0.9, 0.3])


def test_sqrt_shape_makes_few_full_readers_cheaper_than_many_partial_ones():
    def total(readers: dict[int, float], shape: str) -> float:  # one layer of 8 heads
        return lasso_total(readers, 8, shape=shape)

    five_full = {h: 1.0 for h in range(5)}
    eight_partial = {h: 0.6 for h in range(8)}
    # linear: eight heads at 0.6 cost about what five at 1.0 cost (4.8 vs 5), so nothing gathers reading
    assert total(eight_partial, "linear") == pytest.approx(4.8 / 8)
    assert total(five_full, "linear") == pytest.approx(5.0 / 8)
    # concave: the five full readers are clearly cheaper
    eps = head_sparsity.SQRT_EPS
    assert total(five_full, "sqrt") == pytest.approx(5 * (math.sqrt(1 + eps) - math.sqrt(eps)) / 8, rel=1e-5)
    assert total(eight_partial, "sqrt") > 1.2 * total(five_full, "sqrt")
    assert total({}, "sqrt") == pytest.approx(0.0, abs=1e-6)  # no reading costs nothing
    with pytest.raises(ValueError, match="shape"):
        head_sparsity.ImagePenalty(IMAGE_KEYS, QUERIES, shape="cube")


def test_saturating_shape_counts_readers_whatever_their_mass():
    costs = torch.tensor([[0.0, 0.05, 0.3, 0.7, 1.0]])
    out = head_sparsity.shaped(costs, "saturating")
    assert out[0, 0] == pytest.approx(0.0, abs=1e-7)
    assert out[0, 1] == pytest.approx(1 - math.exp(-0.05 / head_sparsity.SATURATION))
    # a reader at 0.7 and one at 1.0 pay within 0.1 % of each other: nothing pulls a reader's mass down
    assert abs(float(out[0, 4] - out[0, 3])) < 1e-3 and float(out[0, 2]) > 0.95
    # through the penalty: six readers cost the same at 0.7 or 1.0, and two more readers cost more
    six_at = [lasso_total(dict.fromkeys(range(6), m), 8, shape="saturating") for m in (0.7, 1.0)]
    assert six_at[0] == pytest.approx(six_at[1], abs=1e-3) and six_at[1] == pytest.approx(6 / 8, abs=1e-3)
    assert lasso_total(dict.fromkeys(range(8), 0.7), 8, shape="saturating") > six_at[0] + 0.2


def test_collecting_restores_the_penalty_that_was_active_before():
    query = torch.randn(1, 4, 6, 8)  # [batch, head, q, dim]
    key, value = torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 8)  # 2 KV heads
    outer = head_sparsity.ImagePenalty(IMAGE_KEYS, QUERIES)
    inner = head_sparsity.ImagePenalty(IMAGE_KEYS, QUERIES)

    def layer():
        return head_sparsity._forward(torch.nn.Module(), query, key, value, None)

    with head_sparsity.collecting(outer):
        layer()
        with head_sparsity.collecting(inner):
            layer()
        layer()  # the outer penalty collects again
    layer()  # and nothing collects outside
    assert (len(outer.terms), len(inner.terms)) == (2, 1)
