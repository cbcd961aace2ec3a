"""Strip composition, strip folders (authors' and COMICS layouts) and safe image loading."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from gaze_explorer.core.errors import DatasetError, InvalidImageError, RegionError
from gaze_explorer.core.strips import (
    compose_strip,
    iter_strip_folders,
    load_image,
    load_strip_folder,
    raw_comics_windows,
)


def _solid(w, h, colour):
    return Image.new("RGB", (w, h), colour)


def test_compose_strip_follows_the_paper_geometry():
    panels = [_solid(200, 300, (255, 0, 0)), _solid(400, 300, (0, 0, 255)), _solid(100, 100, (0, 255, 0))]
    s = compose_strip(panels)  # height 256, gap 6, multiple 32
    assert s.image.size == (sum(s.panel_widths), 256)
    # 200x300 -> 171 wide -> 160; 400x300 -> 341 -> 352; 100x100 -> 256
    assert s.panel_widths == [160, 352, 256]
    assert all(w % 32 == 0 for w in s.panel_widths)
    arr = np.asarray(s.image)
    # a 6-px white gap is centred on each boundary; panel interiors keep their colour
    assert (arr[:, 157:163] == 255).all()
    assert tuple(arr[100, 150]) == (255, 0, 0) and tuple(arr[100, 170]) == (0, 0, 255)
    assert (arr[:, 509:515] == 255).all() and tuple(arr[10, 600]) == (0, 255, 0)


def test_compose_strip_for_the_demo_panels_and_ground_truth_length():
    panels = [_solid(96, 96, (i * 40, 0, 0)) for i in range(6)]
    s = compose_strip(panels, height=96, gap=0, captions=[str(i) for i in range(6)])
    assert s.image.size == (576, 96) and s.n_panels == 6 and s.captions[5] == "5"
    with pytest.raises(DatasetError):
        compose_strip(panels, height=96, captions=["only one"])
    with pytest.raises(DatasetError):
        compose_strip([])


def _write_strip(folder, n=6, suffix=".png", captions=None, attributes=None):
    folder.mkdir(parents=True)
    for k in range(1, n + 1):
        _solid(64, 64, (k * 30, 0, 0)).save(folder / f"p{k}{suffix}")
    if captions is not None:
        (folder / "captions.json").write_text(json.dumps(captions))
    if attributes is not None:
        (folder / "attributes.json").write_text(json.dumps(attributes))


def test_strip_folders_in_natural_order_with_local_and_root_ground_truth(tmp_path):
    _write_strip(tmp_path / "comic2", suffix=".jpg", captions=[f"c{k}" for k in range(6)])
    _write_strip(tmp_path / "comic10")
    _write_strip(tmp_path / "comic1", n=4)  # too few panels: skipped
    (tmp_path / "attributes.json").write_text(
        json.dumps({"comic10": [{"colour": f"c{k}"} for k in range(6)]})
    )
    strips = list(iter_strip_folders(tmp_path, 6))
    assert [s.name for s in strips] == ["comic2", "comic10"]
    assert strips[0].captions == [f"c{k}" for k in range(6)] and strips[0].attributes is None
    assert strips[1].attributes[3] == {"colour": "c3"}
    four = list(iter_strip_folders(tmp_path, 4))
    assert [s.name for s in four] == ["comic1", "comic2", "comic10"]


def test_strip_folder_errors_are_clear(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        list(iter_strip_folders(tmp_path / "nope"))
    with pytest.raises(DatasetError, match="no strip folders"):
        list(iter_strip_folders(tmp_path))
    _write_strip(tmp_path / "c", n=3)
    with pytest.raises(DatasetError, match="p4"):
        load_strip_folder(tmp_path / "c", 6)
    (tmp_path / "c" / "captions.json").write_text("{not json")
    with pytest.raises(DatasetError, match="cannot read"):
        load_strip_folder(tmp_path / "c")


def test_raw_comics_windows_are_seeded_interior_and_consecutive(tmp_path):
    for comic, pages in (("100", 14), ("200", 3), ("300", 12)):
        d = tmp_path / comic
        d.mkdir()
        for page in range(pages):
            for panel in range(7):
                # encode page and panel in the pixel so the composed strip tells where it came from
                _solid(64, 64, (page * 10, panel * 30, 0)).save(d / f"{page}_{panel}.jpg")
    a = list(raw_comics_windows(tmp_path, 6, seed=4))
    b = list(raw_comics_windows(tmp_path, 6, seed=4))
    assert [s.name for s in a] == [s.name for s in b] and len(a) == 3
    for s in a:
        comic, rest = s.name.split("/p")
        page, start = (int(v) for v in rest.split("_"))
        if comic in ("100", "300"):
            n_pages = 14 if comic == "100" else 12
            assert 5 <= page < n_pages - 5
        assert 0 <= start <= 1
        arr = np.asarray(s.image).astype(int)
        greens = [arr[5, x, 1] for x in np.cumsum([0, *s.panel_widths[:-1]]) + 20]
        assert np.allclose(greens, [(start + k) * 30 for k in range(6)], atol=6)
    assert len(list(raw_comics_windows(tmp_path, 6, seed=4, n_strips=2))) == 2
    with pytest.raises(DatasetError):
        list(raw_comics_windows(tmp_path, 9, seed=0))


def test_load_image_refuses_bad_files_clearly(tmp_path):
    with pytest.raises(InvalidImageError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InvalidImageError, match="0 bytes"):
        load_image(empty)
    text = tmp_path / "notes.png"
    text.write_text("hello, not an image")
    with pytest.raises(InvalidImageError, match="not an image"):
        load_image(text)
    good = tmp_path / "good.png"
    _solid(300, 200, (1, 2, 3)).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:80])
    with pytest.raises(InvalidImageError, match="damaged or truncated"):
        load_image(truncated)
    with pytest.raises(InvalidImageError, match="folder"):
        load_image(tmp_path)


def test_load_image_refuses_huge_images_without_decoding(tmp_path):
    huge = tmp_path / "huge.png"
    Image.new("1", (20000, 8), 0).save(huge)
    with pytest.raises(InvalidImageError, match="16384"):
        load_image(huge)


def test_load_image_converts_modes_to_rgb(tmp_path):
    cmyk = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(cmyk)  # red in CMYK
    rgb = np.asarray(load_image(cmyk))
    assert rgb.shape == (16, 16, 3) and rgb[0, 0, 0] > 200 and rgb[0, 0, 1] < 60

    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16)).save(deep)
    assert np.asarray(load_image(deep))[0, 0].tolist() == [255, 255, 255]
    half = tmp_path / "half.png"
    Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16)).save(half)
    assert 120 <= np.asarray(load_image(half))[0, 0, 0] <= 135

    alpha = tmp_path / "alpha.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(alpha)  # fully transparent -> white
    assert np.asarray(load_image(alpha))[0, 0].tolist() == [255, 255, 255]

    pal = tmp_path / "pal.png"
    _solid(8, 8, (0, 128, 0)).convert("P").save(pal)
    assert load_image(pal).mode == "RGB"


def test_animated_images_use_the_first_frame(tmp_path):
    gif = tmp_path / "anim.gif"
    frames = [_solid(10, 10, (255, 0, 0)), _solid(10, 10, (0, 0, 255))]
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    first = np.asarray(load_image(gif))[5, 5]
    assert first[0] > 200 and first[2] < 50


def _flat_panel(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


def test_gutters_of_a_composed_strip_give_its_unequal_panel_widths():
    from gaze_explorer.core.strips import detect_panel_gutters

    strip = compose_strip([_flat_panel(w, 64, i) for i, w in enumerate((64, 128, 64, 192))], height=64)
    assert strip.panel_widths == [64, 128, 64, 192]
    proposal = detect_panel_gutters(strip.image)
    assert proposal.n_panels == 4
    assert np.allclose(proposal.boundaries, [64, 192, 256], atol=1.0)
    assert np.allclose(proposal.widths, strip.panel_widths, atol=1.0)
    assert all(b - a == 6 for a, b in proposal.gutters)  # the 6 px white gaps compose_strip paints
    # asking for fewer panels keeps the widest gutters; asking for more is refused clearly
    assert detect_panel_gutters(strip.image, n_panels=4).boundaries == proposal.boundaries
    with pytest.raises(RegionError, match="found 3 gutter"):
        detect_panel_gutters(strip.image, n_panels=6)


def test_gutters_may_be_any_flat_colour_and_margins_are_not_gutters():
    from gaze_explorer.core.strips import detect_panel_gutters

    arr = np.asarray(_flat_panel(300, 50, 7)).copy()
    arr[:, :5] = 255  # a white left margin: not a boundary
    arr[:, 95:99] = (20, 20, 20)  # a dark gutter
    arr[:, 200:203] = (90, 140, 60)  # a green one
    arr[:, 150] = 255  # one flat column inside a panel, but half-way is a panel's worth from both
    proposal = detect_panel_gutters(Image.fromarray(arr), n_panels=3)
    assert proposal.gutters == [(95, 99), (200, 203)]
    assert proposal.widths == [97.0, 104.5, 98.5]
    # a noisy image with no flat band has no gutter
    assert detect_panel_gutters(_flat_panel(200, 40, 3)).n_panels == 1
