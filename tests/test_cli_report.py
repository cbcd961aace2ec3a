"""``gaze-explorer report`` on the demo model with tiny caps: every section present, every number on
the page equal to report.json (and report.json to the stages' own results), no external URL, the page
opened in headless Chromium with the network cut off, ``--resume`` and ``--compare``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from gaze_explorer.cli import main
from gaze_explorer.cli.report import STAGES, fmt
from gaze_explorer.core.report_data import PAPER, PAPER_KS, PAPER_N_HEADS, compare_rows, sweep_ks

pytest.importorskip("jinja2")
pytest.importorskip("matplotlib")

COCO = Path(__file__).parent / "data" / "coco_tiny"
SECTIONS = ("fig2a", "fig2b", "fig3", "fig6", "fig8", "tab5", "tab6", "layers", "tab1")
TINY = ["--quick", "--n-strips", "2", "--max-strips", "1", "--sweep-ks", "1,4"]
COCO_ARGS = ["--coco-annotations", str(COCO / "instances.json"), "--images", str(COCO), "--max-images", "2"]
_BUILT: dict[str, Path] = {}  # the report, made once per test session (test_executor_report imports it)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    if "demo" not in _BUILT:
        out = tmp_path_factory.mktemp("report") / "demo"
        assert main(["report", "--model", "demo", *TINY, "--out", str(out), *COCO_ARGS]) == 0
        _BUILT["demo"] = out
    return _BUILT["demo"]


class Numbers(HTMLParser):
    """The page's numbers: (data-path, data-kind, text) of every ``span.n``; section ids; img sources."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers: list[list[str]] = []
        self.ids: list[str] = []
        self.srcs: list[str] = []
        self._open: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(a["id"])
        if tag == "img":
            self.srcs.append(a.get("src", ""))
        if tag == "span" and "data-path" in a:
            self._open = [a["data-path"], a["data-kind"], ""]

    def handle_data(self, data):
        if self._open is not None:
            self._open[2] += data

    def handle_endtag(self, tag):
        if tag == "span" and self._open is not None:
            self.numbers.append(self._open)
            self._open = None


def parse(path: Path) -> Numbers:
    p = Numbers()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def lookup(data, path: str):
    for key in path.split("/"):
        data = data[int(key)] if isinstance(data, list) else data[key]
    return data


def test_every_section_and_figure_present(report_dir):
    page = parse(report_dir / "index.html")
    assert set(SECTIONS) <= set(page.ids)
    assert len(page.srcs) == 6 and all(s.startswith("data:image/png;base64,") for s in page.srcs)
    stages = report_dir / "stages"
    assert all((stages / f"{s}.json").exists() for s in STAGES if s != "discovery")
    assert (stages / "discovery" / "ranking.json").exists()


def test_numbers_on_the_page_equal_report_json(report_dir):
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    numbers = parse(report_dir / "index.html").numbers
    assert len(numbers) > 100
    for path, kind, text in numbers:
        assert text == fmt(lookup(report, path), kind), path
    paths = {p for p, _, _ in numbers}
    wanted = {"static/rows/0/accuracy", "dynamic/rows/0/rho_blind", "sweep/peak/k", "paper/k_sweep/100/0"}
    wanted |= {"staircase/runs/0/on_target", "staircase/runs/1/target_mass"}
    assert wanted | {"region/rows/0/gaze/accuracy", "discovery/agreement/0/pairs/gaze&image"} <= paths


def test_report_json_carries_the_stages_results(report_dir):
    """The report's numbers are the commands' own: evaluate's JSON, the sweep's, discover's agreement."""
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    stages = report_dir / "stages"
    static = json.loads((stages / "static.json").read_text(encoding="utf-8"))
    rows = {r["condition"]: r for r in report["static"]["rows"]}
    for name, c in static["conditions"].items():
        assert rows[name]["accuracy"] == c["accuracy"] and rows[name]["ci95"] == c["ci95"]
    dynamic = json.loads((stages / "dynamic.json").read_text(encoding="utf-8"))
    gaze = next(r for r in report["dynamic"]["rows"] if r["condition"] == "gaze")
    assert gaze["rho"] == dynamic["conditions"]["gaze"]["spearman"]["mean"]
    assert gaze["rho_blind"] == dynamic["conditions"]["gaze"]["trajectory"]["rho_schedule"]["mean"]
    sweep = json.loads((stages / "sweep.json").read_text(encoding="utf-8"))
    assert report["sweep"]["ks"] == [1, 4] and sweep["over"]["k"] == [1, 4]
    cell = next(c for c in sweep["cells"] if c["criterion"] == "image" and c["k"] == 4)
    table = {r["criterion"]: r["by_k"] for r in report["sweep"]["table"]}
    assert table["image"][1] == cell["accuracy"]
    disc = json.loads((stages / "discovery" / "discovery.json").read_text(encoding="utf-8"))
    assert [a["common"] for a in report["discovery"]["agreement"]] == [a["common"] for a in disc["agreement"]]
    assert report["discovery"]["n_strips"] == 2
    scores = np.load(stages / "discovery" / "gaze_scores.npy")
    assert np.allclose(report["discovery"]["layer_map"]["scores"], scores, atol=1e-6)
    ranking = json.loads((stages / "discovery" / "ranking.json").read_text(encoding="utf-8"))
    tops = report["discovery"]["top_heads"]
    assert [(h["layer"], h["head"]) for h in tops] == [(r["layer"], r["head"]) for r in ranking[: len(tops)]]
    assert report["region"]["rows"][0]["size"] == "overall"


def test_staircase_is_the_two_runs_read_out_on_the_gaze_heads(report_dir):
    """Fig. 2b: the dynamic stage's first schedule, steered once with its gaze heads and once with its
    random control; both read out on the top-K gaze heads, which follow the schedule when steered."""
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    sc = report["staircase"]
    stage = json.loads((report_dir / "stages" / "staircase.json").read_text(encoding="utf-8"))
    dynamic = json.loads((report_dir / "stages" / "dynamic.json").read_text(encoding="utf-8"))
    first = next(g for g in dynamic["generations"] if g.get("schedule"))
    assert sc["schedule"] == first["schedule"] and sc["strip"] == first["strip"]
    assert [r["condition"] for r in sc["runs"]] == ["gaze", "random"]
    assert [r["heads"] for r in sc["runs"]] == [dynamic["heads"]["gaze"], dynamic["heads"]["random"]]
    assert sc["readout"] == dynamic["heads"]["gaze"]
    every = sc["switch_every"]
    for run, raw in zip(sc["runs"], stage["runs"], strict=True):
        assert np.allclose(run["mass"], raw["mass"], atol=1e-6)  # the stage's own numbers
        assert run["targets"] == [p for p in sc["schedule"] for _ in range(every)]
    gaze, control = sc["runs"]
    # steered, the gaze heads put nearly all their image attention on the scheduled panel
    assert gaze["on_target"] > 0.9 and gaze["target_mass"] > 0.9 > control["target_mass"]


def test_page_has_no_external_url(report_dir):
    html = (report_dir / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.IGNORECASE)
    assert not re.search(r"""(?:src|href)=["'](?!data:|#)""", html)


def test_page_opens_in_headless_chromium_without_network(report_dir, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium here (apt-get install chromium)")
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--proxy-server=127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # no network at all
        "--virtual-time-budget=5000",
        "--dump-dom",
        (report_dir / "index.html").resolve().as_uri(),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    assert 'data-images-decoded="6/6"' in dom  # every embedded figure decoded, offline
    assert all(f'id="{s}"' in dom for s in SECTIONS)


def test_resume_skips_finished_stages_and_compare_renders_two(report_dir, tmp_path, capfd):
    second = tmp_path / "second"
    shutil.copytree(report_dir, second)
    (second / "index.html").unlink()
    assert main(["report", "--model", "demo", *TINY, "--resume", "--out", str(second)]) == 0
    err = capfd.readouterr().err
    assert err.count("done before, skipped") == len(STAGES) - 1  # no COCO asked this time: 5 stages
    assert "loading model" not in err
    assert (second / "index.html").exists()
    both = tmp_path / "both"
    assert main(["report", "--compare", str(report_dir), str(second), "--out", str(both)]) == 0
    data = json.loads((both / "compare.json").read_text(encoding="utf-8"))
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    assert len(data["rows"]) == 2 and data["rows"][0]["peak"] == report["sweep"]["peak"]
    page = parse(both / "index.html")
    assert "compare" in page.ids
    data["paper"] = json.loads(json.dumps(PAPER)) | {"depth": report["paper"]["depth"]}
    for path, kind, text in page.numbers:
        assert text == fmt(lookup(data, path), kind), path
    assert sum(p.startswith("rows/1/") for p, _, _ in page.numbers) == 7


def test_sweep_ks_scale_the_papers_grid():
    assert sweep_ks(PAPER_N_HEADS) == PAPER_KS
    ks = sweep_ks(96)
    assert ks == tuple(sorted(set(ks))) and max(ks) <= 48 and min(ks) >= 1
    assert len(sweep_ks(96, quick=True)) < len(ks)


def test_compare_rows_depth_and_peak_without_sweep():
    rep = {
        "model": "m",
        "discovery": {"n_layers": 8, "n_heads": 12, "gaze_depth": 0.5},
        "sweep": None,
        "static": {
            "top_k": 10,
            "rows": [{"condition": "gaze", "accuracy": 0.9}, {"condition": "random", "accuracy": 0.1}],
        },
    }
    (row,) = compare_rows([rep])
    assert row["peak"] == {"k": 10, "gaze": 0.9, "random": 0.1, "all": None}
    assert row["gaze_depth"] == 0.5
