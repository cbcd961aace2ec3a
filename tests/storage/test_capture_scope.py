"""Capture scope (``generate --capture full|image-keys|heads:FILE``) on real sessions of the demo
model: the image-keys session reads back the same staircase and overlay data as the full one in a
smaller file, and a heads session stores exactly the listed heads."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from gaze_explorer.cli import main
from gaze_explorer.cli.helpers import load_strips
from gaze_explorer.core.capture_scope import CaptureScope, image_key_end, parse_capture_scope
from gaze_explorer.core.errors import HeadSpecError
from gaze_explorer.core.heads import HeadSet
from gaze_explorer.storage import SessionReader

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "resources" / "demo_model" / "config.json"
N_TOKENS = 24
KEPT_HEADS = ((0, 3), (2, 0), (5, 15))

pytestmark = pytest.mark.skipif(not DEMO.exists(), reason="the demo model is not bundled in this checkout")


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    """One baseline generation per scope, each into its own session, through the real CLI."""
    tmp = tmp_path_factory.mktemp("capture_scope")
    ns = argparse.Namespace(comics="demo", use_raw=False, n_panels=6, panel_height=None, seed=0)
    image = tmp / "strip.png"
    load_strips(ns, 1)[0].image.save(image)
    heads_file = tmp / "heads.json"
    heads_file.write_text(json.dumps([{"layer": layer, "head": h} for layer, h in KEPT_HEADS]))
    out = {}
    for scope in ("full", "image-keys", f"heads:{heads_file}"):
        path = tmp / f"{scope.split(':')[0]}.h5"
        code = main(
            [
                "generate",
                "--model",
                "demo",
                "--device",
                "cpu",
                "--image",
                str(image),
                "--panels",
                "6",
                "--prompt",
                "Describe each panel of this comic strip in order, one short sentence each.",
                "--max-new-tokens",
                str(N_TOKENS),
                "--ignore-eos",
                "--session",
                str(path),
                "--capture",
                scope,
            ]
        )
        assert code == 0
        out[scope.split(":")[0]] = path
    return out


def test_image_keys_session_reads_back_the_same_staircase_and_overlay_in_a_smaller_file(sessions):
    with SessionReader(sessions["full"]) as full, SessionReader(sessions["image-keys"]) as cut:
        run_f, run_c = full.run_ids()[0], cut.run_ids()[0]
        info_f, info_c = full.run_info(run_f), cut.run_info(run_c)
        assert info_f.capture_scope == CaptureScope("full")
        assert info_c.capture_scope == CaptureScope("image-keys")
        assert info_c.n_steps == info_f.n_steps == N_TOKENS
        assert cut.tokens(run_c) == full.tokens(run_f)
        end = image_key_end(cut.grid.positions)
        assert end < info_f.prompt_len  # the prompt's question comes after the image: it is cut
        heads = HeadSet("some", ((0, 1), (3, 7), (5, 2)))
        for h in (None, heads):
            np.testing.assert_array_equal(cut.trajectory(run_c, h), full.trajectory(run_f, h))
        for step in range(N_TOKENS):
            rows_f, rows_c = full.step_rows(run_f, step), cut.step_rows(run_c, step)
            assert rows_c.shape[-1] == end and rows_f.shape[-1] == info_f.prompt_len + step
            np.testing.assert_array_equal(rows_c, rows_f[:, :, :end])
            for h in (None, heads):
                for a, b in zip(
                    cut.image_attention(run_c, step, h), full.image_attention(run_f, step, h), strict=True
                ):
                    np.testing.assert_array_equal(a, b)
    size_f, size_c = sessions["full"].stat().st_size, sessions["image-keys"].stat().st_size
    assert size_c < size_f


def test_heads_session_stores_the_listed_heads_and_nan_for_the_others(sessions):
    with SessionReader(sessions["full"]) as full, SessionReader(sessions["heads"]) as part:
        run_f, run_p = full.run_ids()[0], part.run_ids()[0]
        scope = part.run_info(run_p).capture_scope
        assert scope.kind == "heads" and scope.heads.heads == KEPT_HEADS
        kept = np.zeros((6, 16), dtype=bool)
        kept[tuple(np.array(KEPT_HEADS).T)] = True
        for step in (0, N_TOKENS - 1):
            rows_f, rows_p = full.step_rows(run_f, step), part.step_rows(run_p, step)
            np.testing.assert_array_equal(rows_p[kept], rows_f[kept])
            assert np.isnan(rows_p[~kept]).all()
        listed = HeadSet("kept", KEPT_HEADS)
        np.testing.assert_array_equal(part.trajectory(run_p, listed), full.trajectory(run_f, listed))
    assert sessions["heads"].stat().st_size < sessions["full"].stat().st_size


def test_scope_parsing_and_its_errors(tmp_path):
    assert parse_capture_scope("image-keys").stored_keys(500, 40) == 40
    assert parse_capture_scope("full").stored_keys(500, 40) == 500
    assert CaptureScope.from_dict(None) == CaptureScope()
    listed = tmp_path / "h.csv"
    listed.write_text("layer,head\n1,2\n0,5\n")
    scope = parse_capture_scope(f"heads:{listed}")
    assert scope.heads.heads == ((0, 5), (1, 2))
    assert CaptureScope.from_dict(scope.to_dict()).heads.heads == scope.heads.heads
    with pytest.raises(HeadSpecError, match="capture scope must be one of"):
        parse_capture_scope("image")
    with pytest.raises(HeadSpecError, match="does not exist"):
        parse_capture_scope(f"heads:{tmp_path / 'missing.json'}")
    with pytest.raises(HeadSpecError, match="out of range"):
        scope.head_mask(1, 8)


def test_capture_flag_is_checked_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--image", "x.png", "--prompt", "p", "--capture", "keys"])
    assert exc.value.code == 2 and "use full, image-keys or heads:FILE" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--image", "x.png", "--prompt", "p", "--capture", "image-keys"])
    assert exc.value.code == 2 and "--capture needs --session" in capsys.readouterr().err
