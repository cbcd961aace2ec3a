"""Small pyqtgraph styling helpers shared by the views and the figure exports."""

from __future__ import annotations


def plain_axis(axis) -> None:
    """Show axis values as they are: no automatic SI scaling (attention values live in 0..1,
    where pyqtgraph would otherwise print 0..1000 with an "x0.001" note)."""
    axis.setSIPrefixEnableRanges(())  # empty: never scale (disabling alone keeps the scale)
    axis.enableAutoSIPrefix(False)
