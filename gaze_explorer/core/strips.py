"""Comic strips: loading images safely, composing panels into a strip, and reading strip folders.

- :func:`load_image` opens any user image as RGB, or raises :class:`InvalidImageError` with a
  message that says what is wrong (missing, empty, truncated, not an image, too large). Animated
  images (GIF, APNG, WebP) are accepted: their FIRST frame is used. CMYK, 16-bit, palette, grey
  and alpha images are converted to RGB (alpha is flattened onto white); EXIF rotation is applied.
- :func:`compose_strip` follows the paper: panels resized to a common height (rounded to a multiple
  of 32, the Qwen-VL token size), each width rounded to a multiple of 32, pasted left to right,
  and a white gap painted over each boundary.
- :func:`load_strip_folder` / :func:`iter_strip_folders` read the authors' layout
  ``comicN/p1.png .. pN.png`` with optional ``captions.json`` / ``attributes.json``, either in the
  strip folder (a list, one entry per panel) or at the root (a dict: strip name -> list).
- :func:`raw_comics_windows` reads the COMICS corpus layout ``<comic_id>/<page>_<panel>.jpg``.
- :func:`detect_panel_gutters` proposes panel boundaries from an image's gutters (white, black or
  flat separators, or the colour change between two flat panel backgrounds), for panels of unequal
  widths; the user confirms the proposal.
"""

from __future__ import annotations

import contextlib
import json
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from gaze_explorer.core.errors import DatasetError, InvalidImageError

MAX_SIDE = 16384
MAX_PIXELS = 16384 * 8192  # beyond this, refuse as a likely decompression bomb
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass
class Strip:
    """A composed strip: the image, each panel's width in it, and any ground truth per panel."""

    image: Image.Image
    panel_widths: list[int]
    captions: list[str] | None = None
    attributes: list[dict] | None = None
    name: str = "strip"

    @property
    def n_panels(self) -> int:
        return len(self.panel_widths)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16/32-bit grey: scale to 8 bits by the type's range (PIL's own convert clips to 255)
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        if img.mode == "I" and arr.max() <= 255:
            top = 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB") if img.mode != "RGB" else img


def load_image(path: str | Path) -> Image.Image:
    """Open ``path`` as an RGB image, or raise :class:`InvalidImageError` saying why not."""
    p = Path(path)
    if not p.exists():
        raise InvalidImageError(f"image {p} does not exist")
    if p.is_dir():
        raise InvalidImageError(f"image {p} is a folder, not an image file")
    if p.stat().st_size == 0:
        raise InvalidImageError(f"image {p} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(p)
            w, h = img.size
            if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
                raise InvalidImageError(
                    f"image {p} is {w}x{h} px; the limit is {MAX_SIDE} px a side and "
                    f"{MAX_PIXELS} px in all (downscale it first)"
                )
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)  # animated: the first frame is the image we use
            img.load()
    except InvalidImageError:
        raise
    except UnidentifiedImageError as exc:
        raise InvalidImageError(f"{p} is not an image PIL can read (png, jpg, webp, bmp, gif...)") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImageError(f"image {p} is too large to decode safely ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"image {p} is damaged or truncated ({exc})") from exc
    # a broken EXIF block is not worth refusing the image for
    with contextlib.suppress(Exception):
        img = ImageOps.exif_transpose(img)
    return _to_rgb(img)


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)


def compose_strip(
    panels: Sequence[Image.Image | str | Path],
    height: int = 256,
    gap: int = 6,
    multiple: int = 32,
    *,
    captions: Sequence[str] | None = None,
    attributes: Sequence[dict] | None = None,
    name: str = "strip",
) -> Strip:
    """Paste ``panels`` left to right at a common height (the paper's recipe, see module doc)."""
    if not panels:
        raise DatasetError("a strip needs at least one panel")
    if height < 1 or multiple < 1 or gap < 0:
        raise ValueError("height and multiple must be >= 1 and gap >= 0")
    images = [p if isinstance(p, Image.Image) else load_image(p) for p in panels]
    images = [_to_rgb(im) for im in images]
    h = _round_to(height, multiple)
    widths = [_round_to(im.width * h / max(im.height, 1), multiple) for im in images]
    strip = Image.new("RGB", (sum(widths), h), (255, 255, 255))
    x = 0
    for im, w in zip(images, widths, strict=True):
        strip.paste(im.resize((w, h), Image.Resampling.BICUBIC), (x, 0))
        x += w
    if gap > 0:
        draw = ImageDraw.Draw(strip)
        x = 0
        for w in widths[:-1]:
            x += w
            # the gap is centred on the boundary, so both panels lose the same few columns
            draw.rectangle([x - gap // 2, 0, x - gap // 2 + gap - 1, h - 1], fill=(255, 255, 255))
    for what, values in (("captions", captions), ("attributes", attributes)):
        if values is not None and len(values) != len(images):
            raise DatasetError(f"strip {name}: {len(values)} {what} for {len(images)} panels")
    return Strip(
        strip,
        widths,
        None if captions is None else [str(c) for c in captions],
        None if attributes is None else [dict(a) for a in attributes],
        name,
    )


@dataclass(frozen=True)
class GutterProposal:
    """Panel boundaries proposed from an image's gutters, for the user to confirm.

    ``gutters`` are the separators ``(x0, x1)`` (pixel columns, end exclusive) taken as panel
    boundaries, left to right: a gutter or separator line, or an empty span ``(x, x)`` where two flat
    panel backgrounds meet with nothing between them; ``boundaries`` their centres (the x-positions
    between panels); ``widths`` the resulting panel widths in pixels (``len(boundaries) + 1`` panels).
    """

    gutters: list[tuple[int, int]]
    boundaries: list[float]
    widths: list[float]

    @property
    def n_panels(self) -> int:
        return len(self.widths)


def _trim_uniform_rows(arr: np.ndarray, tolerance: float) -> np.ndarray:
    """``arr`` without the uniform rows at its top and bottom (an outer margin).

    A margin row crosses every column, so a panel's flat background column would not read as flat
    with a margin above it; a row that is the same colour all the way across tells no column apart.
    """
    busy = np.flatnonzero(arr.std(axis=1).max(axis=-1) > tolerance)  # rows that are not uniform
    if busy.size == 0:
        return arr
    return arr[busy[0] : busy[-1] + 1]


def _colour_runs(means: np.ndarray, tolerance: float) -> list[tuple[int, int]]:
    """Split a band's column colours ``[n, 3]`` into runs ``(i0, i1)`` of one colour (a step between
    neighbouring columns above ``tolerance`` starts a new run)."""
    steps = np.flatnonzero(np.abs(np.diff(means, axis=0)).max(axis=-1) > tolerance) + 1
    starts = [0, *steps.tolist()]
    return list(zip(starts, [*starts[1:], len(means)], strict=True))


def _band_separators(
    a: int, means: np.ndarray, tolerance: float, min_gap: float, edges: tuple[bool, bool] = (False, False)
) -> list[tuple[int, int]]:
    """The separators ``(x0, x1)`` inside one flat band starting at column ``a``.

    A flat band between two panels holds the separator and, beside it, any flat background of the
    two panels. The band is split into runs of one colour, each of which is:

    - a gutter: white or black (ink), and narrower than a panel or lying between two non-ink
      backgrounds (a wide white run at the band's end is a white panel background, not a gutter);
    - a background: any other run at least ``thin`` wide;
    - thin: a narrower one (a coloured separator line, or the blended columns of an anti-aliased or
      JPEG-compressed edge).

    Between two backgrounds the separator spans the gutter runs there, else the thin runs (a line,
    or nothing: two backgrounds that touch are cut at the colour change). Before the first and after
    the last background, gutter runs count, and a thin run that steps sharply to the background is
    a sliver of the other panel's background (cut at the step); other thin runs there are the blur
    of a panel's content. A band of one colour, or of thin runs only, is a separator as a whole.

    ``edges`` says whether the band touches the image's left / right edge. Such a band is an outer
    margin, or (when panels are flat through and through) holds whole panels with their gutters
    between them, so it is read more strictly: what lies before the first background at a touching
    edge (and after the last) is margin, not a separator; a band of one colour or of thin runs only
    is all margin; and between two backgrounds only a gutter, or a thin line whose colour is not a
    blend of the two backgrounds, is a separator. Two backgrounds that touch, or are blurred into
    each other, are not cut there: they may be the margin beside a panel, or one picture's stripes.
    """
    at_edge = any(edges)
    runs = _colour_runs(means, tolerance)
    if len(runs) == 1:
        return [] if at_edge else [(a, a + len(means))]
    ink_level = 3 * tolerance  # how far from pure white or black a gutter may be
    thin = max(3.0, min_gap / 4)
    colours = [means[i0:i1].mean(axis=0) for i0, i1 in runs]
    kinds = []
    for (i0, i1), colour in zip(runs, colours, strict=True):
        ink = bool((colour >= 255 - ink_level).all() or (colour <= ink_level).all())
        kinds.append(("wide ink" if i1 - i0 >= min_gap else "gutter") if ink else "background")
        if kinds[-1] == "background" and i1 - i0 < thin:
            kinds[-1] = "thin"
    for k, kind in enumerate(kinds):
        if kind == "wide ink":  # a gutter only with non-ink backgrounds on both sides
            between = "background" in kinds[:k] and "background" in kinds[k + 1 :]
            kinds[k] = "gutter" if between else "background"
    backgrounds = [k for k, kind in enumerate(kinds) if kind == "background"]
    if not backgrounds and "gutter" not in kinds:  # thin runs only: a coloured separator, blurred
        return [] if at_edge else [(a, a + len(means))]

    def steps_apart(j: int, k: int) -> bool:  # more than blur between two neighbouring runs
        return bool(np.abs(colours[j] - colours[k]).max() > ink_level)

    def a_line_between(left: int, right: int) -> bool:  # thin runs not a blend of the two backgrounds
        if right - left < 2:
            return False
        line = means[runs[left + 1][0] : runs[right - 1][1]].mean(axis=0)
        low = np.minimum(colours[left], colours[right]) - ink_level
        high = np.maximum(colours[left], colours[right]) + ink_level
        return bool(((line < low) | (line > high)).any())

    separators = []
    for left, right in pairwise([-1, *backgrounds, len(runs)]):
        if (left == -1 and edges[0]) or (right == len(runs) and edges[1]):
            continue  # at the image's edge: the margin
        gutters = [k for k in range(left + 1, right) if kinds[k] == "gutter"]
        if gutters:
            separators.append((a + runs[gutters[0]][0], a + runs[gutters[-1]][1]))
        elif left >= 0 and right < len(runs):  # between two backgrounds: a thin line, or the change
            if not at_edge or a_line_between(left, right):  # (in a band of whole panels: a line only)
                separators.append((a + runs[left][1], a + runs[right][0]))
        elif left == -1 and 0 < right < len(runs) and steps_apart(right - 1, right):
            separators.append((a + runs[right][0],) * 2)  # a thin sliver of the left panel's background
        elif right == len(runs) and 0 <= left < right - 1 and steps_apart(left, left + 1):
            separators.append((a + runs[left][1],) * 2)  # a thin sliver of the right panel's background
    return separators


def detect_panel_gutters(
    image: Image.Image,
    n_panels: int | None = None,
    *,
    tolerance: float = 8.0,
    min_panel_fraction: float = 0.04,
) -> GutterProposal:
    """Propose panel boundaries from the gutters of a side-by-side strip (a proposal, not a fact).

    Flat columns are full-height columns that are each nearly uniform (per-channel standard
    deviation down the column at most ``tolerance`` on 0..255, after uniform rows at the top and
    bottom, an outer margin, are set aside). Neighbouring flat columns form bands; a band touching
    the image's left or right edge is a margin there, but when the panels are flat through and
    through it also holds whole panels and the gutters between them (read strictly, see
    :func:`_band_separators`). A band between two panels also holds
    the flat background beside each panel's content, so its centre is not the boundary: the
    separator inside it is found from its runs of one colour (see :func:`_band_separators`): a
    white, black or thin separator line, else the colour change between two backgrounds, else (a
    band of one colour) the whole band. Boundaries closer than ``min_panel_fraction`` of the width
    to an edge or to a boundary from a wider band are dropped (a thin sliver is not a panel). With
    ``n_panels``, the ``n_panels - 1`` boundaries from the widest bands are kept, and too few raise
    :class:`RegionError`; without it, every boundary found is kept.
    """
    from gaze_explorer.core.errors import RegionError

    arr = _trim_uniform_rows(np.asarray(image.convert("RGB"), dtype=np.float32), tolerance)  # [h, w, 3]
    width = arr.shape[1]
    uniform = arr.std(axis=0).max(axis=-1) <= tolerance  # [width] flat columns
    means = arr.mean(axis=0)  # [width, 3] each column's colour
    edges = np.flatnonzero(np.diff(np.concatenate([[0], uniform.astype(np.int8), [0]])))
    bands = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    min_gap = min_panel_fraction * width
    candidates = [  # (band width, separator), ranked widest band first, then widest separator
        (b - a, sep)
        for a, b in bands
        for sep in _band_separators(a, means[a:b], tolerance, min_gap, (a == 0, b == width))
        if min_gap <= sum(sep) / 2 <= width - min_gap
    ]
    kept: list[tuple[int, int]] = []
    for _, sep in sorted(candidates, key=lambda c: (-c[0], c[1][0] - c[1][1], c[1][0])):
        centre = sum(sep) / 2
        if all(abs(centre - sum(k) / 2) >= min_gap for k in kept):
            kept.append(sep)
    if n_panels is not None:
        if n_panels < 1:
            raise RegionError(f"a strip needs at least 1 panel, got {n_panels}")
        if len(kept) < n_panels - 1:
            raise RegionError(
                f"found {len(kept)} gutter(s) in the image but {n_panels} panels need {n_panels - 1}; "
                "give the panel widths (--panel-widths) instead"
            )
        kept = kept[: n_panels - 1]
    kept.sort()
    boundaries = [sum(b) / 2 for b in kept]
    cuts = [0.0, *boundaries, float(width)]
    return GutterProposal(kept, boundaries, [b - a for a, b in pairwise(cuts)])


def _natural_key(text: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _panel_files(folder: Path) -> dict[int, Path]:
    out: dict[int, Path] = {}
    for f in folder.iterdir():
        m = re.fullmatch(r"p(\d+)", f.stem, flags=re.IGNORECASE)
        if m and f.suffix.lower() in IMAGE_SUFFIXES and f.is_file():
            out.setdefault(int(m.group(1)), f)
    return out


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc


def _per_panel(data: object, n: int, source: Path, name: str) -> list | None:
    """A folder's per-panel list from a list, a ``{"p1": ...}`` dict, or a root dict by strip name."""
    if isinstance(data, dict) and name in data:
        data = data[name]
    if isinstance(data, dict) and all(re.fullmatch(r"p\d+", str(k)) for k in data):
        data = [data.get(f"p{k + 1}") for k in range(n)]
    if not isinstance(data, list):
        return None
    if len(data) < n:
        raise DatasetError(f"{source}: {len(data)} entries for strip {name}, which has {n} panels")
    return list(data[:n])


def load_strip_folder(
    folder: str | Path,
    n_panels: int | None = None,
    *,
    height: int = 256,
    gap: int = 6,
    multiple: int = 32,
    root_captions: object = None,
    root_attributes: object = None,
) -> Strip:
    """Compose the strip in ``folder`` (``p1..pN`` images; ``n_panels`` defaults to all of them)."""
    d = Path(folder)
    if not d.is_dir():
        raise DatasetError(f"strip folder {d} does not exist")
    files = _panel_files(d)
    n = n_panels or len(files)
    missing = [k for k in range(1, n + 1) if k not in files]
    if n == 0 or missing:
        raise DatasetError(
            f"strip folder {d} lacks panel image(s) {', '.join(f'p{k}' for k in missing) or 'p1'} "
            f"(expected p1..p{max(n, 1)} as png/jpg/jpeg/webp/bmp)"
        )
    extra = {}
    for key, root_data in (("captions", root_captions), ("attributes", root_attributes)):
        local = d / f"{key}.json"
        data = _read_json(local) if local.exists() else root_data
        extra[key] = None if data is None else _per_panel(data, n, local, d.name)
    return compose_strip(
        [files[k] for k in range(1, n + 1)],
        height,
        gap,
        multiple,
        captions=extra["captions"],
        attributes=extra["attributes"],
        name=d.name,
    )


def strip_folder_names(root: str | Path, n_panels: int = 6) -> list[Path]:
    """The sub-folders of ``root`` that hold panels p1..p``n_panels``, in natural order."""
    r = Path(root)
    if not r.is_dir():
        raise DatasetError(f"comics folder {r} does not exist")
    folders = [
        f
        for f in sorted(r.iterdir(), key=lambda f: _natural_key(f.name))
        if f.is_dir() and all(k in _panel_files(f) for k in range(1, n_panels + 1))
    ]
    if not folders:
        raise DatasetError(
            f"no strip folders under {r}: expected sub-folders like comic1/ holding p1..p{n_panels} images "
            "(use --use-raw for the COMICS corpus layout <comic>/<page>_<panel>.jpg)"
        )
    return folders


def iter_strip_folders(
    root: str | Path, n_panels: int = 6, *, height: int = 256, gap: int = 6, multiple: int = 32
) -> Iterator[Strip]:
    """Every strip folder under ``root`` (authors' layout), composed, in natural order."""
    r = Path(root)
    folders = strip_folder_names(r, n_panels)
    root_data = {
        k: (_read_json(r / f"{k}.json") if (r / f"{k}.json").exists() else None)
        for k in ("captions", "attributes")
    }
    for f in folders:
        yield load_strip_folder(
            f,
            n_panels,
            height=height,
            gap=gap,
            multiple=multiple,
            root_captions=root_data["captions"],
            root_attributes=root_data["attributes"],
        )


def _raw_pages(comic: Path) -> dict[int, list[Path]]:
    pages: dict[int, dict[int, Path]] = {}
    for f in comic.iterdir():
        m = re.fullmatch(r"(\d+)_(\d+)", f.stem)
        if m and f.suffix.lower() in IMAGE_SUFFIXES and f.is_file():
            pages.setdefault(int(m.group(1)), {})[int(m.group(2))] = f
    return {p: [panels[k] for k in sorted(panels)] for p, panels in pages.items()}


def raw_comics_windows(
    root: str | Path,
    n_panels: int = 6,
    seed: int = 0,
    n_strips: int | None = None,
    *,
    height: int = 256,
    gap: int = 6,
    multiple: int = 32,
) -> Iterator[Strip]:
    """Seeded strips from the COMICS layout: per comic, ``n_panels`` consecutive panels of one page.

    Comics are visited in a seeded order; for each, the page is drawn among interior pages (the
    first and last 5 are skipped when the comic has more than 10) that hold at least ``n_panels``
    panels, then the window's start on that page. Comics with no such page are skipped.
    """
    r = Path(root)
    if not r.is_dir():
        raise DatasetError(f"COMICS folder {r} does not exist")
    comics = sorted((c for c in r.iterdir() if c.is_dir()), key=lambda c: _natural_key(c.name))
    rng = np.random.default_rng(seed)
    produced = 0
    for i in rng.permutation(len(comics)):
        if n_strips is not None and produced >= n_strips:
            return
        comic = comics[int(i)]
        pages = _raw_pages(comic)
        numbers = sorted(pages)
        if len(numbers) > 10:
            numbers = numbers[5:-5]
        usable = [p for p in numbers if len(pages[p]) >= n_panels]
        if not usable:
            continue
        page = usable[int(rng.integers(len(usable)))]
        start = int(rng.integers(len(pages[page]) - n_panels + 1))
        files = pages[page][start : start + n_panels]
        yield compose_strip(files, height, gap, multiple, name=f"{comic.name}/p{page}_{start}")
        produced += 1
    if produced == 0:
        raise DatasetError(
            f"no usable comics under {r}: expected <comic_id>/<page>_<panel>.jpg with at least "
            f"{n_panels} panels on an interior page"
        )
