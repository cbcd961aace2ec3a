"""TEMPORARY recipe-iteration measurements for the demo model (greedy accuracy, gaze scores, steering).

Used only while the inference core's ``generate_stream`` / ``discover`` are not in the tree; the
model card's figures come from the project's evaluation code. Run:
``python -m gaze_explorer.demo.measure MODEL_DIR``.
"""

from __future__ import annotations

import argparse
import json
import random

import numpy as np
import torch

from gaze_explorer.core.heads import all_heads, random_control_heads, top_k_heads
from gaze_explorer.core.judges import AttributeJudge, PanelTruth
from gaze_explorer.core.regions import panel_regions
from gaze_explorer.demo import prompts
from gaze_explorer.demo.comics import generate_strips
from gaze_explorer.inference.attention import ForwardRequest, attention_control
from gaze_explorer.inference.loading import load_model


def _panel_positions(prepared, n_panels=6):
    out = []
    for grid in prepared.grids:
        regs = panel_regions(grid, n_panels)
        out.append([torch.as_tensor(grid.positions[r.token_indices]) for r in regs])
    return out  # [batch][panel] -> positions


@torch.no_grad()
def greedy(loaded, image, prompt_list, max_new, heads=None, targets=None, strength=1e4, capture=False):
    """Greedy decode a batch of prompts on one image; optional decode-only boost_suppress steering."""
    model, adapter = loaded.model, loaded.adapter
    prepared = loaded.prepare(image, prompt_list)
    pos = _panel_positions(prepared)
    b, t = prepared.tensors["input_ids"].shape
    bias = None
    if heads is not None:
        bias = torch.zeros(b, t + max_new)
        for i in range(b):
            for k, p in enumerate(pos[i]):
                bias[i, p] = strength if k == targets[i] else -strength
    with attention_control(loaded, plan_heads=heads) as ctl:
        ctl.set_request(ForwardRequest(capture_rows="last" if capture else None))
        out = model(**adapter.prefill_kwargs(model, prepared), use_cache=True)
        rows = ctl.take_rows() if capture else None  # [layer, batch, head, 1, key]
        past = out.past_key_values
        mask = prepared.tensors["attention_mask"]
        tok = out.logits[:, -1].argmax(-1, keepdim=True)
        gen = [tok]
        done = tok[:, 0] == adapter.eos_token_ids[0]
        for step in range(1, max_new):
            n_past = t + step - 1
            mask = torch.cat([mask, torch.ones(b, 1, dtype=mask.dtype)], dim=1)
            req = ForwardRequest(bias=None if bias is None else bias[:, : n_past + 1])
            ctl.set_request(req)
            kw = adapter.decode_kwargs(model, prepared, tok, mask, n_past)
            out = model(**kw, past_key_values=past, use_cache=True)
            past = out.past_key_values
            tok = out.logits[:, -1].argmax(-1, keepdim=True)
            gen.append(tok)
            done = done | (tok[:, 0] == adapter.eos_token_ids[0])
            if bool(done.all()):
                break
    ids = torch.cat(gen, dim=1)
    texts = []
    for row in ids.tolist():
        if adapter.eos_token_ids[0] in row:
            row = row[: row.index(adapter.eos_token_ids[0])]
        texts.append(adapter.decode(row))
    return texts, rows, pos


def measure(model_dir, n_strips=20, k_frac=0.1, seed=123, quick=False):
    torch.set_num_threads(1)
    loaded = load_model(model_dir)
    strips = generate_strips(n_strips, seed=seed, split="measure")
    nl, nh = loaded.n_layers, loaded.n_heads
    res = {}
    # description accuracy + discovery
    acc = {"object": 0, "background": 0}
    n = 0
    mats = np.zeros((nl, nh, 6, 6))
    narr_ok = 0
    for s in strips:
        texts, rows, pos = greedy(
            loaded, s.image, [prompts.kth_prompt(k) for k in range(6)], 10, capture=True
        )
        for k, txt in enumerate(texts):
            w = txt.split()
            for a in acc:
                acc[a] += s.attributes[k][a] in w
            n += 1
        r = rows[:, :, :, 0].float()  # [layer, batch(=query panel), head, key]
        for q in range(6):
            for k in range(6):
                mats[:, :, q, k] += r[:, q, :, pos[q][k]].sum(-1).numpy()
        if not quick:
            (nt,), _, _ = greedy(loaded, s.image, [prompts.NARRATION_PROMPT], 45)
            narr_ok += nt == prompts.narration_answer(s.attributes)
    mats /= len(strips)
    scores = np.einsum("lhkk->lh", mats) / 6
    res["acc"] = {a: v / n for a, v in acc.items()}
    res["narration_exact"] = narr_ok / len(strips)
    flat = np.sort(scores.ravel())[::-1]
    res["top_scores"] = [round(float(x), 3) for x in flat[:8]]
    res["median"] = round(float(np.median(flat)), 3)
    order = np.argsort(-scores.ravel())
    res["top_heads"] = [f"L{i // nh}H{i % nh}" for i in order[:8]]
    k = max(1, round(k_frac * nl * nh))
    gaze = top_k_heads(scores, k)
    rand = random_control_heads(scores, k, seed=0)
    conds = {"gaze": gaze, "random": rand, "all": all_heads(nl, nh), "none": None}
    judge = AttributeJudge()
    for name, hs in conds.items():
        hits = 0.0
        tot = 0
        for s in strips[: (min(8, n_strips) if quick else n_strips)]:
            truth = PanelTruth(attributes=s.attributes)
            targets = list(range(6))
            texts, _, _ = greedy(
                loaded, s.image, [prompts.AMBIGUOUS_PROMPT] * 6, 10, heads=hs, targets=targets
            )
            for tgt, txt in zip(targets, texts, strict=True):
                hits += judge.judge(txt, truth).credit(tgt)
                tot += 1
        res[f"steer_{name}"] = round(hits / tot, 3)
    res["k"] = k
    return res


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model_dir")
    p.add_argument("--strips", type=int, default=20)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    random.seed(0)
    print(json.dumps(measure(a.model_dir, a.strips, quick=a.quick), indent=1))


if __name__ == "__main__":
    main()
