"""Panel gutters on strips whose panels have flat backgrounds (the demo strips' kind).

A flat band between two such panels holds the separator AND each panel's flat background beside
its content, so the band's centre is not the boundary; these tests check the detector cuts at the
real separator (a gutter, a separator line, or the colour change between two backgrounds). The
textured-panel cases (white gutters, margins, unequal widths) are in test_strips.py.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from gaze_explorer.core.errors import RegionError
from gaze_explorer.core.paths import demo_comics_dir
from gaze_explorer.core.strips import compose_strip, detect_panel_gutters, iter_strip_folders

BACKGROUNDS = [(215, 35, 35), (35, 165, 55), (35, 75, 215), (235, 210, 35), (135, 55, 175)]


def _edges(widths) -> list[float]:
    return [float(x) for x in np.cumsum(widths)[:-1]]


def _flat_panel(width: int, height: int, background, square_at: float) -> Image.Image:
    """A flat background with a dark square off-centre (at ``square_at`` of the width), so the flat
    columns on its two sides differ in width and a band centre misses the boundary."""
    img = Image.new("RGB", (width, height), background)
    side = height // 2
    x0 = round(square_at * width - side / 2)
    ImageDraw.Draw(img).rectangle([x0, height // 4, x0 + side - 1, height // 4 + side - 1], fill=(60, 60, 60))
    return img


def _flat_strip(widths, gap: int, height: int = 64):
    offsets = [0.35, 0.7, 0.4, 0.62, 0.3]
    panels = [
        _flat_panel(w, height, BACKGROUNDS[i % len(BACKGROUNDS)], offsets[i % len(offsets)])
        for i, w in enumerate(widths)
    ]
    return compose_strip(panels, height=height, gap=gap)


def test_every_bundled_demo_strip_is_cut_at_the_generators_panel_edges():
    strips = list(iter_strip_folders(demo_comics_dir()))
    assert len(strips) == 24
    for strip in strips:
        proposal = detect_panel_gutters(strip.image)
        edges = _edges(strip.panel_widths)  # 256, 512, 768, 1024, 1280
        assert proposal.boundaries == edges, strip.name
        assert proposal.widths == [float(w) for w in strip.panel_widths], strip.name
        # the gutter found is the 6-px white gap the generator paints over each boundary
        assert proposal.gutters == [(int(x) - 3, int(x) + 3) for x in edges], strip.name
        assert detect_panel_gutters(strip.image, n_panels=6).boundaries == edges, strip.name


def test_unequal_flat_panels_with_a_4px_white_gutter():
    strip = _flat_strip([64, 128, 64, 192], gap=4)
    proposal = detect_panel_gutters(strip.image)
    assert proposal.boundaries == [64.0, 192.0, 256.0]
    assert proposal.widths == [64.0, 128.0, 64.0, 192.0]
    assert all(b - a == 4 for a, b in proposal.gutters)
    assert detect_panel_gutters(strip.image, n_panels=4).widths == proposal.widths


def test_flat_backgrounds_with_no_gutter_are_cut_at_the_colour_change():
    strip = _flat_strip([96, 64, 160, 96], gap=0)
    proposal = detect_panel_gutters(strip.image)
    assert proposal.boundaries == [96.0, 160.0, 320.0]
    assert proposal.gutters == [(96, 96), (160, 160), (320, 320)]  # a change, no gutter between


@pytest.mark.parametrize(
    ("gap", "margin_colour"),
    [(6, (190, 190, 190)), (0, (255, 255, 255))],
    ids=["grey margin, white gutters", "white margin, no gutters"],
)
def test_a_uniform_outer_margin_is_not_a_panel_boundary(gap, margin_colour):
    """The margin runs above and below every panel, so without setting it aside no panel's
    background column would be flat; at the left and right it is not a boundary."""
    strip = _flat_strip([64, 96, 128], gap=gap)
    framed = ImageOps.expand(strip.image, border=20, fill=margin_colour)
    proposal = detect_panel_gutters(framed)
    assert proposal.boundaries == [20.0 + 64, 20.0 + 160]
    assert proposal.n_panels == 3 and sum(proposal.widths) == framed.width


def test_a_textured_panel_beside_a_flat_one_is_cut_at_the_white_gutter():
    """The band holds the white gutter and the flat panel's background: the gutter is the cut."""
    rng = np.random.default_rng(3)
    arr = np.asarray(_flat_strip([128, 128], gap=6).image).copy()
    arr[:, :125] = rng.integers(0, 256, size=(64, 125, 3))  # panel 1 textured up to the gutter
    proposal = detect_panel_gutters(Image.fromarray(arr))
    assert proposal.gutters == [(125, 131)] and proposal.boundaries == [128.0]


def test_a_wide_white_background_is_a_panel_not_a_gutter():
    """A panel whose white background meets a coloured panel with no gutter is cut at the change,
    not half-way across its white background."""
    strip = compose_strip(
        [_flat_panel(128, 64, (255, 255, 255), 0.25), _flat_panel(128, 64, BACKGROUNDS[2], 0.7)],
        height=64,
        gap=0,
    )
    assert detect_panel_gutters(strip.image).boundaries == [128.0]


def test_a_bordered_gutter_is_one_separator():
    """Black panel borders on each side of a white gap (comic style): one cut, at the gap's centre."""
    arr = np.asarray(_flat_strip([128, 128], gap=0).image).copy()
    arr[:, 120:122] = 0
    arr[:, 122:134] = 255
    arr[:, 134:136] = 0
    proposal = detect_panel_gutters(Image.fromarray(arr))
    assert proposal.gutters == [(120, 136)] and proposal.boundaries == [128.0]


def test_jpeg_compressed_demo_strips_are_cut_within_two_pixels_of_their_edges():
    """JPEG blurs colour edges into runs of one or two columns beside each gutter and each square:
    they are blur, not separators, so each strip still gives its five cuts, each at most 2 px off."""
    for strip in iter_strip_folders(demo_comics_dir()):
        buffer = io.BytesIO()
        strip.image.save(buffer, "JPEG", quality=85)
        proposal = detect_panel_gutters(Image.open(buffer))
        assert len(proposal.boundaries) == 5, (strip.name, proposal.boundaries)
        assert np.abs(np.subtract(proposal.boundaries, _edges(strip.panel_widths))).max() <= 2, strip.name


def _solid_strip(spans, colours, width: int, height: int, ground) -> Image.Image:
    """Solid-colour panels at ``spans`` (x0, x1) on a ``ground`` colour (the gutters between them,
    and any margin): every column is flat, so the whole image is one flat band."""
    img = Image.new("RGB", (width, height), ground)
    draw = ImageDraw.Draw(img)
    for (x0, x1), colour in zip(spans, colours, strict=True):
        draw.rectangle([x0, 0, x1 - 1, height - 1], fill=colour)
    return img


AUDIT_SPANS = [(0, 150), (160, 450), (460, 620), (630, 1000)]  # 10-px gutters at 155, 455, 625


@pytest.mark.parametrize("ground", [(255, 255, 255), (0, 0, 0)], ids=["white gutters", "black gutters"])
def test_solid_panels_are_cut_at_their_gutters(ground):
    """The flat columns of solid panels merge with the gutters into one band touching both edges:
    the gutters inside it are still the cuts (the audit's geometry)."""
    image = _solid_strip(AUDIT_SPANS, BACKGROUNDS[:4], 1000, 300, ground)
    proposal = detect_panel_gutters(image)
    assert proposal.gutters == [(150, 160), (450, 460), (620, 630)]
    assert proposal.widths == [155.0, 300.0, 170.0, 375.0]
    assert detect_panel_gutters(image, n_panels=4).boundaries == [155.0, 455.0, 625.0]


@pytest.mark.parametrize("ground", [(255, 255, 255), (0, 0, 0)], ids=["white", "black"])
def test_solid_panels_on_a_background_all_round_are_cut_at_their_gutters(ground):
    """The background is also a margin on all four sides: the margin is not a cut, the gutters are."""
    spans = [(x0 + 20, x1 + 20) for x0, x1 in AUDIT_SPANS]
    framed = ImageOps.expand(
        _solid_strip(spans, BACKGROUNDS[:4], 1040, 300, ground), border=(0, 15), fill=ground
    )
    proposal = detect_panel_gutters(framed)
    assert proposal.boundaries == [175.0, 475.0, 645.0]
    assert proposal.n_panels == 4 and sum(proposal.widths) == framed.width


def test_solid_panels_of_one_colour_are_cut_at_their_white_gutters():
    image = _solid_strip(AUDIT_SPANS, [BACKGROUNDS[1]] * 4, 1000, 300, (255, 255, 255))
    assert detect_panel_gutters(image).boundaries == [155.0, 455.0, 625.0]


def test_a_thin_grey_line_between_solid_panels_is_a_cut():
    image = _solid_strip([(0, 398), (402, 800)], BACKGROUNDS[:2], 800, 200, (128, 128, 128))
    assert detect_panel_gutters(image).gutters == [(398, 402)]


@pytest.mark.parametrize(
    "image",
    [
        Image.new("RGB", (600, 200), BACKGROUNDS[2]),
        ImageOps.expand(Image.new("RGB", (600, 200), BACKGROUNDS[2]), border=20, fill=(255, 255, 255)),
        ImageOps.expand(Image.new("RGB", (600, 200), BACKGROUNDS[2]), border=60, fill=(0, 0, 0)),
        _solid_strip([(30, 570)], BACKGROUNDS[:1], 600, 200, (255, 255, 255)),  # margin left and right only
    ],
    ids=["flat image", "white margin all round", "wide black margin all round", "white side margins"],
)
def test_a_single_flat_image_stays_one_panel(image):
    """A margin beside a flat panel is not a gutter: nothing lies between two panel backgrounds."""
    proposal = detect_panel_gutters(image)
    assert proposal.gutters == [] and proposal.widths == [float(image.width)]
    with pytest.raises(RegionError):
        detect_panel_gutters(image, n_panels=2)
