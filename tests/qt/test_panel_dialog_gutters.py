"""The panel dialog's proposal on the bundled demo strip: six equal 256-px panels, cut at the
generator's white gaps, and the preview draws the cuts there."""

from __future__ import annotations

import numpy as np

from gaze_explorer.qt.app import demo_strip
from gaze_explorer.qt.widgets.panel_count_dialog import PREVIEW_WIDTH, PanelCountDialog

CUT_COLOUR = (0xD5, 0x5E, 0x00)  # the preview's cut pen


def _preview_rgb(dialog: PanelCountDialog) -> np.ndarray:
    image = dialog.preview.pixmap().toImage()
    image = image.convertToFormat(image.Format.Format_RGB888)
    raw = np.frombuffer(image.constBits(), np.uint8, image.sizeInBytes())
    return raw.reshape(image.height(), image.bytesPerLine())[:, : 3 * image.width()].reshape(
        image.height(), image.width(), 3
    )


def test_the_dialog_proposes_the_demo_strips_six_panels_at_their_edges(qtbot):
    strip = demo_strip()
    assert strip is not None and strip.image.size == (1536, 256)
    dialog = PanelCountDialog(strip.image, current=1)
    qtbot.addWidget(dialog)
    assert dialog.spin.value() == 6 and dialog.use_gutters.isChecked()
    assert dialog.note.text().startswith("6 panels found")
    assert dialog.cuts() == [256.0, 512.0, 768.0, 1024.0, 1280.0]
    assert dialog.choice() == (6, [256.0] * 6)
    # the preview draws the cuts there and nowhere else: the preview columns that are mostly the cut
    # colour (a dashed line) are those within a pixel of a cut, and every cut has one
    rgb = _preview_rgb(dialog)
    scale = PREVIEW_WIDTH / strip.image.width
    is_cut = (np.abs(rgb.astype(int) - CUT_COLOUR).max(axis=-1) <= 30).mean(axis=0)  # [preview width]
    drawn = np.flatnonzero(is_cut > 0.3)
    at = [x * scale for x in dialog.cuts()]
    assert drawn.size and all(min(abs(c - a) for a in at) <= 1.5 for c in drawn), drawn
    assert all(np.abs(drawn - a).min() <= 1.5 for a in at), drawn
