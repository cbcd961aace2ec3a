"""Small pyqtgraph styling helpers shared by the views and the figure exports."""

from __future__ import annotations


def plain_axis(axis) -> None:
    """Show axis values as they are: no automatic SI scaling (attention values live in 0..1,
    where pyqtgraph would otherwise print 0..1000 with an "x0.001" note)."""
    axis.setSIPrefixEnableRanges(())  # empty: never scale (disabling alone keeps the scale)
    axis.enableAutoSIPrefix(False)


NICE_STRIDES = (1, 2, 4, 5, 8, 10, 16, 20, 25, 32, 50, 64, 100, 128, 250, 500, 1000)


def tick_stride(n_visible: float, pixels: float, min_px: float = 14.0) -> int:
    """The smallest "nice" stride that keeps integer tick labels at least ``min_px`` apart when
    ``n_visible`` rows (or columns) share ``pixels`` pixels: every row labelled when they fit."""
    per_item = pixels / max(n_visible, 1.0)
    for stride in NICE_STRIDES:
        if stride * per_item >= min_px:
            return stride
    return NICE_STRIDES[-1]


def integer_ticks(
    lo: float, hi: float, pixels: float, min_px: float = 14.0, count: int | None = None
) -> list:
    """Major ticks ``[(value, label)]`` at integers in ``[lo, hi]`` (clipped to ``0..count-1``), with
    a stride from :func:`tick_stride`; for an axis whose items are integer rows, steps or heads."""
    import math

    first, last = max(math.ceil(lo), 0), math.floor(hi)
    if count is not None:
        last = min(last, count - 1)
    if last < first:
        return []
    stride = tick_stride(hi - lo, pixels, min_px)
    start = first + (-first) % stride
    return [(v, str(v)) for v in range(start, last + 1, stride)]


class IntegerAxis:
    """Keeps an axis's ticks on integers, labelled as densely as its pixel length allows; re-ticks
    when the view range or the widget size changes (a zoom into 64 heads labels each one)."""

    def __init__(self, plot, name: str, min_px: float = 14.0, count=None) -> None:
        self.plot, self.name, self.min_px = plot, name, min_px
        self.count = count  # a callable giving the item count (or None: no upper clip)
        self.axis = plot.getAxis(name)
        plot.getViewBox().sigRangeChanged.connect(self.update)
        plot.getViewBox().sigResized.connect(self.update)

    def update(self, *_: object) -> list:
        vb = self.plot.getViewBox()
        (x0, x1), (y0, y1) = vb.viewRange()
        horizontal = self.name in ("bottom", "top")
        lo, hi = (x0, x1) if horizontal else (y0, y1)
        rect = vb.sceneBoundingRect()
        pixels = rect.width() if horizontal else rect.height()
        ticks = integer_ticks(
            lo, hi, max(pixels, 1.0), self.min_px, None if self.count is None else self.count()
        )
        self.axis.setTicks([ticks, []])
        return ticks


# Okabe-Ito: colour-blind-safe colours for panels and regions, in every view and figure
PANEL_COLOURS = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999")


def greyscale(image):
    """``[H, W, 3]`` uint8 -> ``[H, W]`` uint8 luminance (ITU-R BT.601 weights): an image under a
    heatmap without competing colours."""
    import numpy as np

    rgb = np.asarray(image, dtype=np.float32)
    return np.rint(rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).clip(0, 255).astype(np.uint8)


EOS_LABEL = "∅"  # an empty token (end of sequence, decoded without special tokens)


def token_label(text: str) -> str:
    """How a generated token is written in the app's chips and in exported timelines: ∅ for an empty
    (end-of-sequence) token, ⏎ for a newline, ␣ for other whitespace."""
    if text == "":
        return EOS_LABEL
    return text.replace("\n", "⏎").strip() or "␣"


def thinned_token_ticks(tokens, px_per_step: float, text_width, gap_px: float = 6.0) -> list:
    """Tick labels ``[(step, label)]`` for tokens under their steps, left out where they would
    overlap the previous label (greedy, left to right); ``text_width(label)`` gives a label's pixels."""
    ticks, right_edge = [], -1e9
    for i, text in enumerate(tokens):
        label = token_label(text)
        half = text_width(label) / 2
        centre = i * px_per_step
        if centre - half >= right_edge + gap_px:
            ticks.append((i, label))
            right_edge = centre + half
    return ticks
