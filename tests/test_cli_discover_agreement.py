"""``discover`` prints the agreement table between criteria (the paper's Tab. 6) as the JSON holds
it: each pair's overlap with its chance and Jaccard, and the heads common to all three with the
common core's own chance (not a pair's). A real criteria report of hand-made arrays."""

from __future__ import annotations

import numpy as np

from gaze_explorer.cli.discover import agreement_lines
from gaze_explorer.core.criteria import criteria_report


def test_agreement_lines_print_each_chance_as_the_report_holds_it():
    rng = np.random.default_rng(4)
    report = criteria_report(rng.random((6, 8)), rng.random((6, 8)), rng.random((6, 8, 2, 6)), ks=(10,))
    (row,) = report["agreement"]
    (line,) = agreement_lines(report)
    for p in row["pairs"]:
        assert (
            f"{p['a']}&{p['b']} {p['overlap']} (chance {p['chance_overlap']:.1f}, J {p['jaccard']:.2f})"
            in line
        )
    assert line.endswith(f"common to all {row['common']} (chance {row['chance_common']:.1f})")
    assert f"{row['chance_common']:.1f}" != f"{row['pairs'][0]['chance_overlap']:.1f}"  # they differ here
