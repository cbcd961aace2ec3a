"""The bad-input table: every input a user provides, each refused with one of our clear errors, and
nothing lost (the input file, and any session file involved, are byte-identical afterwards).

Each case is a row of ``CASES``: (id, builder, expected error, message regex). A builder writes the
bad input under ``tmp_path`` and returns ``(action, protected_files)``. docs/robustness.md lists the
table and its counts.
"""

from __future__ import annotations

import json
import re
import shutil

import h5py
import numpy as np
import pytest
from PIL import Image
from robust_helpers import DEMO_MODEL, digest, read_all, write_session

from gaze_explorer.core.errors import (
    DatasetError,
    GazeExplorerError,
    HeadSpecError,
    InvalidImageError,
    ModelLoadError,
    PromptError,
    RegionError,
    ScheduleError,
    SchemaVersionError,
    SessionFileError,
    UnsupportedFamilyError,
)
from gaze_explorer.core.heads import load_head_list
from gaze_explorer.core.regions import ImageTokenGrid, box_region, validate_box
from gaze_explorer.core.steering import parse_schedule
from gaze_explorer.core.strips import load_image


# ----- images --------------------------------------------------------------------------------
def _png(tmp_path, name="img.png", size=(64, 32), mode="RGB"):
    p = tmp_path / name
    Image.new(mode, size, 128).save(p)
    return p


def img_truncated(tmp_path):
    good = _png(tmp_path, "full.png", (256, 256))
    Image.effect_noise((256, 256), 40).convert("RGB").save(good)
    p = tmp_path / "truncated.png"
    p.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return (lambda: load_image(p)), [p]


def img_empty(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    return (lambda: load_image(p)), [p]


def img_not_an_image(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is a text file with an image suffix\n")
    return (lambda: load_image(p)), [p]


def img_20000_wide(tmp_path):
    p = _png(tmp_path, "wide.png", (20_000, 4), "L")
    return (lambda: load_image(p)), [p]


def img_missing(tmp_path):
    return (lambda: load_image(tmp_path / "nope.png")), []


IMAGE_CASES = [
    ("image: truncated", img_truncated, InvalidImageError, "damaged or truncated"),
    ("image: 0 bytes", img_empty, InvalidImageError, "empty"),
    ("image: not an image", img_not_an_image, InvalidImageError, "not an image"),
    ("image: 20,000 px wide", img_20000_wide, InvalidImageError, "20000x4 px"),
    ("image: missing path", img_missing, InvalidImageError, "does not exist"),
]


# ----- session files -------------------------------------------------------------------------
def _session(tmp_path):
    return write_session(tmp_path / "s.h5")


def ses_truncated(tmp_path):
    good = _session(tmp_path)
    p = tmp_path / "truncated.h5"
    p.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    return (lambda: read_all(p)), [p]


def ses_not_hdf5(tmp_path):
    p = tmp_path / "notes.h5"
    p.write_bytes(b"\x89PNG not a session at all" * 50)
    return (lambda: read_all(p)), [p]


def ses_newer_schema(tmp_path):
    p = _session(tmp_path)
    with h5py.File(p, "r+") as f:
        f.attrs["schema_version"] = 1000
    return (lambda: read_all(p)), [p]


def _deleted(group):
    def build(tmp_path):
        p = _session(tmp_path)
        with h5py.File(p, "r+") as f:
            del f[group]
        return (lambda: read_all(p)), [p]

    return build


def _wrong_attr(where, key, value):
    def build(tmp_path):
        p = _session(tmp_path)
        with h5py.File(p, "r+") as f:
            f[where].attrs[key] = value
        return (lambda: read_all(p)), [p]

    return build


SESSION_CASES = [
    ("session: truncated", ses_truncated, SessionFileError, "truncated|damaged"),
    ("session: not HDF5", ses_not_hdf5, SessionFileError, "not an HDF5 file"),
    ("session: newer schema", ses_newer_schema, SchemaVersionError, "1000"),
    ("session: image group deleted", _deleted("image"), SessionFileError, "missing"),
    ("session: runs group deleted", _deleted("runs"), SessionFileError, "missing"),
    (
        "session: a run's attention deleted",
        _deleted("runs/run_000/attention/decode"),
        SessionFileError,
        "attention",
    ),
    ("session: token_text deleted", _deleted("runs/run_000/token_text"), SessionFileError, "token_text"),
    (
        "session: schema_version is text",
        _wrong_attr("/", "schema_version", "one"),
        SessionFileError,
        "integer",
    ),
    ("session: grid rows is text", _wrong_attr("grid", "rows", "two"), SessionFileError, "integer"),
    ("session: n_heads is a float", _wrong_attr("runs/run_000", "n_heads", 2.5), SessionFileError, "integer"),
    (
        "session: options not JSON",
        _wrong_attr("runs/run_000", "options_json", "{x"),
        SessionFileError,
        "JSON",
    ),
]


# ----- head lists (checked against the demo model's 6 layers x 16 heads) -----------------------
def _head_file(name, text):
    def build(tmp_path):
        p = tmp_path / name
        p.write_text(text)
        return (lambda: load_head_list(p).validate(6, 16)), [p]

    return build


HEAD_CASES = [
    ("heads: malformed JSON", _head_file("h.json", '[{"layer": 1, "head": '), HeadSpecError, "JSON|json"),
    ("heads: JSON of the wrong shape", _head_file("h.json", '{"layer": "a"}'), HeadSpecError, None),
    ("heads: malformed CSV", _head_file("h.csv", "layer,head\n1,two\n"), HeadSpecError, None),
    ("heads: CSV without columns", _head_file("h.csv", "banana\n"), HeadSpecError, None),
    ("heads: layer out of range", _head_file("h.csv", "layer,head\n6,0\n"), HeadSpecError, "range|layer"),
    ("heads: head out of range", _head_file("h.csv", "layer,head\n0,16\n"), HeadSpecError, "range|head"),
    ("heads: negative index", _head_file("h.csv", "layer,head\n-1,0\n"), HeadSpecError, None),
    ("heads: duplicates", _head_file("h.csv", "layer,head\n1,2\n1,2\n"), HeadSpecError, "duplicate|twice"),
    (
        "heads: missing file",
        lambda t: ((lambda: load_head_list(t / "no.csv")), []),
        HeadSpecError,
        "not exist",
    ),
]


# ----- schedules and boxes (an image of 192x64 px, 3 panels) -----------------------------------
GRID = ImageTokenGrid.uniform(192, 64, rows=2, cols=6, first_position=5)


def _call(fn, *args):
    return lambda tmp_path: ((lambda: fn(*args)), [])


SCHEDULE_CASES = [
    ("schedule: panel that doesn't exist", _call(parse_schedule, "1,4", 3, 8), ScheduleError, "panel 4"),
    ("schedule: panel 0", _call(parse_schedule, "0,1", 3, 8), ScheduleError, "panel 0"),
    ("schedule: not numbers", _call(parse_schedule, "1,two", 3, 8), ScheduleError, "not a panel"),
    ("schedule: empty", _call(parse_schedule, "", 3, 8), ScheduleError, "panel numbers"),
    ("box: negative area", _call(validate_box, (50, 10, 10, 40), 192, 64), RegionError, "negative area"),
    ("box: zero area", _call(validate_box, (10, 10, 10, 40), 192, 64), RegionError, "zero"),
    ("box: outside the image", _call(validate_box, (300, 0, 400, 20), 192, 64), RegionError, "outside"),
    ("box: three numbers", _call(validate_box, (1, 2, 3), 192, 64), RegionError, "four numbers"),
    ("box: NaN", _call(validate_box, (0, 0, float("nan"), 5), 192, 64), RegionError, "non-finite"),
    ("box region: outside the image", _call(box_region, GRID, (-50, -50, -1, -1)), RegionError, "outside"),
]


# ----- prompts and models (the demo model) -----------------------------------------------------
def _prompt(text):
    def build(tmp_path):
        from gaze_explorer.inference.loading import load_model

        loaded = load_model(DEMO_MODEL, num_threads=1)
        img = Image.new("RGB", (192, 64), 200)
        return (lambda: loaded.adapter.build_inputs(img, text)), []

    return build


def _model_dir(tmp_path, config=None, weights=None):
    d = tmp_path / "model"
    shutil.copytree(DEMO_MODEL, d, ignore=shutil.ignore_patterns("model.safetensors", "README.md"))
    if config is not None:
        (d / "config.json").write_text(json.dumps(config))
    (d / "model.safetensors").write_bytes(
        weights if weights is not None else (DEMO_MODEL / "model.safetensors").read_bytes()
    )
    return d


def model_missing(tmp_path):
    from gaze_explorer.inference.loading import load_model

    return (lambda: load_model(tmp_path / "no_such_model")), []


def model_unsupported(tmp_path):
    from gaze_explorer.inference.loading import load_model

    cfg = {
        "model_type": "bert",
        "architectures": ["BertModel"],
        "hidden_size": 32,
        "num_attention_heads": 2,
        "num_hidden_layers": 1,
        "intermediate_size": 64,
        "vocab_size": 100,
    }
    d = _model_dir(tmp_path, config=cfg, weights=b"")
    return (lambda: load_model(d)), [d / "config.json"]


def model_corrupt_weights(tmp_path):
    from gaze_explorer.inference.loading import load_model

    blob = (DEMO_MODEL / "model.safetensors").read_bytes()
    d = _model_dir(tmp_path, weights=blob[: len(blob) // 3])
    return (lambda: load_model(d)), [d / "model.safetensors"]


def model_garbage_weights(tmp_path):
    from gaze_explorer.inference.loading import load_model

    d = _model_dir(tmp_path, weights=np.random.default_rng(0).bytes(4096))
    return (lambda: load_model(d)), [d / "model.safetensors"]


def model_pickle_only(tmp_path):
    from gaze_explorer.inference.loading import load_model

    d = _model_dir(tmp_path)
    (d / "model.safetensors").unlink()
    (d / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    return (lambda: load_model(d)), [d / "pytorch_model.bin"]


PROMPT_MODEL_CASES = [
    ("prompt: empty", _prompt(""), PromptError, "empty"),
    ("prompt: whitespace only", _prompt("   \n"), PromptError, "empty"),
    ("prompt: very long (200k chars)", _prompt("panel " * 40_000), PromptError, "context"),
    ("model: missing path", model_missing, ModelLoadError, "no_such_model"),
    ("model: unsupported family", model_unsupported, UnsupportedFamilyError, "bert"),
    ("model: truncated safetensors", model_corrupt_weights, ModelLoadError, "safetensors|corrupt|damaged"),
    ("model: garbage safetensors", model_garbage_weights, ModelLoadError, "safetensors|corrupt|damaged"),
    ("model: pickle weights only", model_pickle_only, ModelLoadError, "pickle"),
]


# ----- strip corpora, per-strip boxes, run names --------------------------------------------
def _comics(folder):
    def build(tmp_path):
        from gaze_explorer.core.strips import iter_strip_folders

        root = tmp_path / folder
        if folder == "empty":
            root.mkdir()
        return (lambda: list(iter_strip_folders(root))), []

    return build


def boxes_malformed(tmp_path):
    from gaze_explorer.cli.evaluate import read_boxes

    p = tmp_path / "boxes.json"
    p.write_text('{"comic1": [[0, 0, 10')
    return (lambda: read_boxes(str(p), [])), [p]


def run_unknown(tmp_path):
    from gaze_explorer.storage import SessionReader

    p = _session(tmp_path)

    def action():
        with SessionReader(p) as reader:
            reader.run_info("no_such_run")

    return action, [p]


OTHER_CASES = [
    ("comics: missing folder", _comics("nope"), DatasetError, "does not exist"),
    ("comics: folder without strips", _comics("empty"), DatasetError, "no strip folders"),
    ("boxes: malformed JSON", boxes_malformed, DatasetError, "cannot read boxes file"),
    ("run: name not in the session", run_unknown, SessionFileError, "no run 'no_such_run'"),
]

CASES = IMAGE_CASES + SESSION_CASES + HEAD_CASES + SCHEDULE_CASES + PROMPT_MODEL_CASES + OTHER_CASES


# ----- the other inputs, through the real commands (gaze_explorer.cli.main in this process) -----------
IMAGE, SESSION = "<a 192x64 image>", "<a session file>"
COCO = json.dumps(
    {
        "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 64}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 40, 40], "area": 1600}],
        "categories": [{"id": 1, "name": "dog"}],
    }
)
OTHER_RUN = json.dumps({"command": "discover", "argv": ["discover", "--out", "x"], "n_shards": 2})


def _cli(*argv, files=None):
    """A command line (``{tmp}``: the test's folder) and the files it reads, written first: name ->
    text, IMAGE or SESSION; a name ending in ``/`` is a folder. The files are the protected ones."""

    def build(tmp_path):
        protected = []
        for name, content in (files or {}).items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if name.endswith("/"):
                path.mkdir(exist_ok=True)
                continue
            if content == IMAGE:
                Image.new("RGB", (192, 64), 128).save(path)
            elif content == SESSION:
                write_session(path)
            else:
                path.write_text(content)
            protected.append(path)
        return [a.replace("{tmp}", str(tmp_path)) for a in argv], protected

    return build


SWEEP = ("evaluate", "sweep", "--json", "{tmp}/sweep.json")
COCO_REGION = ("evaluate", "region", "--coco-annotations", "{tmp}/coco.json", "--images")
GENERATE = ("generate", "--image", "{tmp}/x.png", "--prompt", "what is in panel 1?")
CAPTURE = (*GENERATE, "--session", "{tmp}/new.h5", "--capture")
EXPORT = ("export", "--session", "{tmp}/s.h5", "--out", "{tmp}/figures")
SHARDED = ("discover", "--out", "{tmp}/ranking", "--executor", "local", "--shard-dir")

# (id, command line, exit code: 1 our error, 2 argparse's usage error; the message's last line)
CLI_CASES = [
    (
        "control pool: unknown name",
        _cli("evaluate", "static", "--control-pool", "banana"),
        2,
        "unknown control pool",
    ),
    (
        "control pool: percentile over 100",
        _cli(
            *GENERATE,
            "--panels",
            "3",
            "--heads",
            "random:2",
            "--target",
            "1",
            "--control-pool",
            "percentile:150",
            files={"x.png": IMAGE},
        ),
        2,
        "from 0 to 100",
    ),
    (
        "control pool: percentile not a number",
        _cli(*EXPORT, "--control-pool", "percentile:five", files={"s.h5": SESSION}),
        2,
        "from 0 to 100",
    ),
    ("sweep axis: no name=values", _cli(*SWEEP, "--over", "banana"), 1, "write k=5,10,50"),
    ("sweep axis: K of 0", _cli(*SWEEP, "--over", "k=0,5"), 1, "K must be a whole number >= 1"),
    ("sweep axis: not numbers", _cli(*SWEEP, "--over", "strength=lots"), 1, "'lots' is not a number"),
    ("prompts file: missing", _cli(*SWEEP, "--prompts", "{tmp}/nope.txt"), 1, "cannot read prompts file"),
    (
        "prompts file: empty",
        _cli(*SWEEP, "--prompts", "{tmp}/p.txt", files={"p.txt": "\n\n"}),
        1,
        "holds no prompt",
    ),
    ("sweep resume: missing", _cli(*SWEEP, "--resume", "{tmp}/old.json"), 1, "no such file"),
    (
        "sweep resume: malformed JSON",
        _cli(*SWEEP, "--resume", "{tmp}/old.json", files={"old.json": '{"cells": ['}),
        1,
        "is not a sweep JSON",
    ),
    (
        "coco annotations: missing",
        _cli(*COCO_REGION, "{tmp}/imgs", files={"imgs/a.png": IMAGE}),
        1,
        "coco.json does not exist",
    ),
    (
        "coco annotations: malformed JSON",
        _cli(*COCO_REGION, "{tmp}/imgs", files={"coco.json": '{"images": [', "imgs/a.png": IMAGE}),
        1,
        "cannot read COCO annotations",
    ),
    (
        "coco images: missing folder",
        _cli(*COCO_REGION, "{tmp}/nope", files={"coco.json": COCO}),
        1,
        "images folder .*nope does not exist",
    ),
    (
        "coco images: folder without the annotated images",
        _cli(*COCO_REGION, "{tmp}/imgs", files={"coco.json": COCO, "imgs/": None}),
        1,
        r"1 image\(s\) of the annotations are not in .*: a.png",
    ),
    (
        "synonyms: malformed JSON",
        _cli(
            *COCO_REGION,
            "{tmp}/imgs",
            "--synonyms",
            "{tmp}/syn.json",
            files={"coco.json": COCO, "imgs/a.png": IMAGE, "syn.json": '{"dog": ['},
        ),
        1,
        "cannot read synonyms file",
    ),
    (
        "synonyms: JSON of the wrong shape",
        _cli(
            *COCO_REGION,
            "{tmp}/imgs",
            "--synonyms",
            "{tmp}/syn.json",
            files={"coco.json": COCO, "imgs/a.png": IMAGE, "syn.json": '["dog", "puppy"]'},
        ),
        1,
        'must be {"category"',
    ),
    (
        "min box area: NaN",
        _cli(
            *COCO_REGION,
            "{tmp}/imgs",
            "--min-box-area",
            "nan",
            files={"coco.json": COCO, "imgs/a.png": IMAGE},
        ),
        2,
        "must be finite",
    ),
    ("spans: end before start", _cli(*EXPORT, "--spans", "12-3", files={"s.h5": SESSION}), 1, "start <= end"),
    (
        "spans: past the run's last step",
        _cli(*EXPORT, "--spans", "0-500", files={"s.h5": SESSION}),
        1,
        "ends at step 500, but the run has steps 0-5",
    ),
    (
        "spans: malformed JSON file",
        _cli(*EXPORT, "--spans", "{tmp}/spans.json", files={"s.h5": SESSION, "spans.json": '[{"start": '}),
        1,
        "cannot read spans file",
    ),
    (
        "spans: missing file",
        _cli(*EXPORT, "--spans", "{tmp}/spans.json", files={"s.h5": SESSION}),
        1,
        "spans file .* does not exist",
    ),
    (
        "discovery: not in the session",
        _cli(*EXPORT, "--discovery", "disc_009", files={"s.h5": SESSION}),
        1,
        "no discovery 'disc_009'",
    ),
    ("capture: not a scope", _cli(*CAPTURE, "everything", files={"x.png": IMAGE}), 2, "use full, image-keys"),
    (
        "capture: missing head list",
        _cli(*CAPTURE, "heads:{tmp}/h.csv", files={"x.png": IMAGE}),
        1,
        "head list .*h.csv does not exist",
    ),
    (
        "capture: malformed head list",
        _cli(*CAPTURE, "heads:{tmp}/h.json", files={"x.png": IMAGE, "h.json": '[{"layer": 1, '}),
        1,
        "not valid JSON",
    ),
    (
        "panel shape: a boundary outside the image",
        _cli(*GENERATE, "--panel-bounds", "100,500", files={"x.png": IMAGE}),
        1,
        "inside the 192 px wide image",
    ),
    (
        "panel shape: a width of 0",
        _cli(*GENERATE, "--panel-widths", "1,0,2", files={"x.png": IMAGE}),
        2,
        "positive panel widths",
    ),
    (
        "shard dir: manifest not JSON",
        _cli(*SHARDED, "{tmp}/shards", files={"shards/manifest.json": '{"command": '}),
        1,
        "cannot read .*manifest.json",
    ),
    (
        "shard dir: another run's shards",
        _cli(*SHARDED, "{tmp}/shards", files={"shards/manifest.json": OTHER_RUN}),
        1,
        "holds the shards of another run",
    ),
    (
        "shard dir: a file",
        _cli(*SHARDED, "{tmp}/shards", files={"shards": "x"}),
        1,
        "is a file, not a folder",
    ),
    (
        "shard dir: merge without a manifest",
        _cli("merge", "{tmp}/shards", files={"shards/": None}),
        1,
        "no manifest",
    ),
    (
        "shard dir: merge a malformed manifest",
        _cli("merge", "{tmp}/shards", files={"shards/manifest.json": "[1, 2"}),
        1,
        "cannot read .*manifest.json",
    ),
    (
        "compare: folder without report.json",
        _cli("report", "--out", "{tmp}/r", "--compare", "{tmp}/old", files={"old/": None}),
        1,
        "cannot read .*report.json",
    ),
    (
        "compare: malformed report.json",
        _cli(
            "report", "--out", "{tmp}/r", "--compare", "{tmp}/old", files={"old/report.json": '{"sections": '}
        ),
        1,
        "cannot read .*report.json",
    ),
]


@pytest.mark.parametrize(
    ("build", "code", "match"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES]
)
def test_bad_input_to_a_real_command_exits_with_a_clear_message(tmp_path, capsys, build, code, match):
    """Each fails before the model loads (or on the demo model, before any generation): exit code 1
    with our one error line, or 2 with argparse's usage; never a traceback; the inputs unchanged."""
    from gaze_explorer.cli import main

    argv, protected = build(tmp_path)
    before = {p: digest(p) for p in protected}
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's usage error
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == code, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"gaze-explorer {argv[0]}: error: "), err
    assert re.search(match, last), last
    assert {p: digest(p) for p in before} == before, "a refused input changed"


@pytest.mark.parametrize(("build", "error", "match"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_clearly_and_nothing_is_lost(tmp_path, build, error, match):
    bystander = write_session(tmp_path / "bystander.h5")  # a user's other session file
    action, protected = build(tmp_path)
    before = {p: digest(p) for p in [*protected, bystander]}
    with pytest.raises(error, match=match) as info:
        action()
    assert isinstance(info.value, GazeExplorerError)
    assert str(info.value).strip(), "the message must say something"
    assert {p: digest(p) for p in before} == before, "a refused input or a session file changed"
    assert read_all(bystander) == 6


def test_unusual_but_valid_images_are_converted_not_refused(tmp_path):
    """CMYK, 16-bit and animated images are accepted as RGB (first frame), never silently broken."""
    cmyk = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (40, 20), (0, 255, 255, 0)).save(cmyk)  # pure red in CMYK
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((20, 40), 65535, dtype=np.uint16)).save(deep)
    anim = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (40, 20), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(anim, save_all=True, append_images=frames[1:], duration=50, loop=0)
    before = {p: digest(p) for p in (cmyk, deep, anim)}
    red = np.asarray(load_image(cmyk))
    assert red.shape == (20, 40, 3) and red[..., 0].mean() > 200 and red[..., 2].mean() < 60
    white = np.asarray(load_image(deep))
    assert white.shape == (20, 40, 3) and white.min() > 200
    first = np.asarray(load_image(anim))
    assert first.shape == (20, 40, 3) and first[..., 0].mean() > 200 and first[..., 2].mean() < 60
    assert {p: digest(p) for p in before} == before


# Every option of the real commands and of the app, by what the user gives it. INPUTS: content the
# program opens or interprets itself, each of whose kinds must have rows in the table above. The
# rest argparse refuses itself (a type= or choices=, tests/test_cli_args.py), or are outputs or flags.
INPUTS = {
    "--image": "image",
    "--session": "session",
    "--heads": "heads",
    "--heads-file": "heads",
    "--ranking": "heads",
    "--schedule": "schedule",
    "--box": "box",
    "--prompt": "prompt",
    "--model": "model",
    "--comics": "comics",
    "--boxes": "boxes",
    "--run": "run",
    "--control-pool": "control pool",
    "--over": "sweep axis",
    "--prompts": "prompts file",
    "--resume": "sweep resume",  # evaluate sweep's JSON to continue (report's --resume is a flag)
    "--coco-annotations": "coco annotations",
    "--images": "coco images",
    "--synonyms": "synonyms",
    "--spans": "spans",
    "--discovery": "discovery",  # export: a key of the session's discoveries
    "--capture": "capture",  # heads:FILE is a head list
    "--panel-widths": "panel shape",
    "--panel-bounds": "panel shape",  # argparse checks the numbers, the command the image's width
    "--shard-dir": "shard dir",  # discover/evaluate --executor's folder, and merge's DIR
    "--compare": "compare",
}
CHECKED_BY_ARGPARSE = {
    "--device",
    "--device-map",
    "--dtype",
    "--n-panels",
    "--n-strips",
    "--panel-height",
    "--seed",
    "--max-new-tokens",
    "--mode",
    "--no-repeat-ngram-size",
    "--panels",
    "--repetition-penalty",
    "--strength",
    "--switch-every",
    "--target",
    "--conditions",
    "--judge",
    "--max-strips",
    "--shard",
    "--top-k",
    "--figure",
    "--format",
    "--head",
    "--layer",
    "--step",
    "--input-policy",
    "--executor",
    "--weighting",
    "--jobs",
    "--retries",
    "--slurm-gpus-per-job",
    "--slurm-cpus-per-job",
    "--slurm-mem-gb",
    "--slurm-time-min",
    "--slurm-array-parallelism",
    "--baseline-rule",
    "--bias-on",
    "--switch-alignment",
    "--n-resamples",
    "--loc-entropy",
    "--loc-bottom-row",
    "--protocol",
    "--criteria",
    "--max-images",
    "--min-box-area",
    "--sweep-ks",
}
OUTPUTS_AND_FLAGS = {
    "--out",
    "--json",
    "--screenshot",
    "--help",
    "--version",
    "--use-raw",
    "--ignore-eos",
    "--trust-remote-code",
    "--detach",
    "--quick",
}
# handed to SLURM as given (sbatch refuses a partition it does not know); nothing of ours reads it
PASSED_TO_SLURM = {"--slurm-partition"}


def _options_of_every_command() -> dict[str, set[str]]:
    """The options each command (and the app) shows in its --help."""
    from gaze_explorer.cli.app_args import build_app_parser
    from gaze_explorer.cli.parser import build_parsers

    parsers = {**build_parsers().commands, "app": build_app_parser()}
    option = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
    return {name: set(option.findall(p.format_help())) for name, p in parsers.items()}


def test_every_input_of_the_real_commands_has_rows_in_the_table():
    options = _options_of_every_command()
    assert options["generate"] >= {"--image", "--prompt", "--model"}  # the help was read
    known = INPUTS.keys() | CHECKED_BY_ARGPARSE | OUTPUTS_AND_FLAGS | PASSED_TO_SLURM
    unclassified = {f"{name} {opt}" for name, opts in options.items() for opt in opts - known}
    assert not unclassified, f"say what these options take (INPUTS needs table rows): {sorted(unclassified)}"
    kinds_in_table = {c[0].split(":")[0] for c in CASES + CLI_CASES}
    used = {INPUTS[o] for opts in options.values() for o in opts if o in INPUTS}
    assert used <= kinds_in_table, f"inputs without a bad-input row: {sorted(used - kinds_in_table)}"
