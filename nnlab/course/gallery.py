"""The course's figures for review: run every solution notebook, save each figure as a PNG and one ``index.html``,
and check every figure for mechanical faults.

::

    python -m nnlab.course.gallery                 # (make gallery) -> test-output/gallery/index.html
    from nnlab.course.gallery import figure_faults
    figure_faults(fig)                             # [] or ["jet colour map in axes 0", ...]

The fault checker (:func:`figure_faults`) looks for what a reviewer should not have to: blank or near-uniform
images, a banned colour map (``jet`` and other rainbows), titles that overlap other axes (measured with
matplotlib's tight bounding boxes), overlapping tick labels, and several series (lines, scatters) without a
legend. While the gallery runs a notebook, the kernel checks each figure as it is drawn (the live ``Figure``, not
only its pixels) and writes the faults into the PNG's text chunk ``nnlab:faults``; :func:`png_faults` reads them
back and adds the pixel check, so the figures on disk can be tested later (``tests/test_gallery.py``).
"""
from __future__ import annotations

import argparse
import html
import json
import os
import re
import sys
import time
from base64 import b64decode
from pathlib import Path
from typing import List, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "test-output" / "gallery"
FAULTS_KEY = "nnlab:faults"
#: A panel whose displayed colours vary less than this (standard deviation, 0-1 scale) is "near-uniform".
UNIFORM_STD = 0.01


# =========================================================================== the fault checker
def _images(ax):
    return list(ax.get_images())


def _uniform_faults(fig) -> List[str]:
    faults = []
    for k, ax in enumerate(fig.axes):
        if getattr(ax, "_colorbar", None) is not None:
            continue
        for im in _images(ax):
            data = im.get_array()
            if data is None or data.size < 16:
                continue
            rgba = np.asarray(im.to_rgba(data, bytes=False), dtype=float)
            if rgba.ndim != 3:
                continue
            shown = rgba[..., :3]
            if np.ma.isMaskedArray(data) and data.ndim == 2:
                shown = shown[~np.ma.getmaskarray(data)]
            shown = shown.reshape(-1, 3)
            if len(shown) and shown.std(0).max() < UNIFORM_STD:
                faults.append(f"near-uniform image in axes {k} ({_name(ax)})")
    if not fig.axes:
        faults.append("blank figure: no axes")
    return faults


def _name(ax) -> str:
    return repr(ax.get_title()[:40]) if ax.get_title() else "untitled"


def _cmap_faults(fig) -> List[str]:
    from nnlab.viz.images import BANNED_CMAPS    # imported late: importing nnlab.viz applies the course style,
                                                 # which must come after the lab's own `%matplotlib inline`
    faults = []
    for k, ax in enumerate(fig.axes):
        mappables = _images(ax) + [c for c in ax.collections if c.get_array() is not None]
        for m in mappables:
            name = getattr(m.get_cmap(), "name", "")
            if name in BANNED_CMAPS:
                faults.append(f"{name} colour map in axes {k} ({_name(ax)})")
    return faults


def _overlap(a, b, tol: float = 1.0) -> bool:
    return (min(a.x1, b.x1) - max(a.x0, b.x0) > tol) and (min(a.y1, b.y1) - max(a.y0, b.y0) > tol)


def _text_faults(fig, renderer) -> List[str]:
    """Titles (and the suptitle) overlapping the tight bounding box of another axes; tick labels overlapping."""
    faults = []
    axes = [ax for ax in fig.axes if ax.get_visible()]
    titles = [(ax, t) for ax in axes for t in (ax.title, ax._left_title, ax._right_title)
              if t.get_visible() and t.get_text()]
    if fig._suptitle is not None and fig._suptitle.get_text():
        titles.append((None, fig._suptitle))
    extents = [text.get_window_extent(renderer) for _, text in titles]   # where the draw put them (before
    boxes = {}                                                           # get_tightbbox moves any title)
    for ax in axes:
        hidden = [t for t in (ax.title, ax._left_title, ax._right_title) if t.get_visible()]
        for t in hidden:
            t.set_visible(False)                  # the axes' box without its own titles
        boxes[ax] = ax.get_tightbbox(renderer)
        for t in hidden:
            t.set_visible(True)
    for (owner, text), box in zip(titles, extents):
        for k, ax in enumerate(axes):
            if ax is owner or boxes[ax] is None:
                continue
            if _overlap(box, boxes[ax]):
                what = "the suptitle" if owner is None else f"title {text.get_text()[:40]!r}"
                faults.append(f"{what} overlaps axes {k} ({_name(ax)})")
                break
    for i, ((_, a), box_a) in enumerate(zip(titles, extents)):
        for (_, b), box_b in zip(titles[i + 1:], extents[i + 1:]):
            if _overlap(box_a, box_b):
                faults.append(f"titles {a.get_text()[:30]!r} and {b.get_text()[:30]!r} overlap")
    for k, ax in enumerate(axes):
        if not ax.axison:
            continue
        for axis in (ax.xaxis, ax.yaxis):
            labels = [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
            extents = sorted((t.get_window_extent(renderer) for t in labels),
                             key=lambda b: b.x0 if axis is ax.xaxis else b.y0)
            if any(_overlap(a, b) for a, b in zip(extents, extents[1:])):
                faults.append(f"tick labels overlap in axes {k} ({_name(ax)})")
                break
    return faults


def _series(ax) -> int:
    """How many data series the axes draws: lines with more than two points, and scatters (each distinct colour
    of a scatter coloured per point counts as one)."""
    from matplotlib.collections import PathCollection

    n = sum(1 for line in ax.get_lines() if len(np.atleast_1d(line.get_xdata())) > 2)
    for c in ax.collections:
        if not isinstance(c, PathCollection) or len(c.get_offsets()) < 2:
            continue
        if c.get_array() is not None:
            n += 2 if len(np.unique(np.asarray(c.get_array()))) > 1 else 1
        else:
            n += max(1, min(2, len(np.unique(np.round(c.get_facecolors(), 3), axis=0))))
    return n


def _legend_faults(fig) -> List[str]:
    has_colorbar = any(getattr(ax, "_colorbar", None) is not None for ax in fig.axes)
    if fig.legends:
        return []
    faults = []
    legended = {t.get_text() for ax in fig.axes if ax.get_legend() is not None for t in ax.get_legend().get_texts()}
    for k, ax in enumerate(fig.axes):
        if getattr(ax, "_colorbar", None) is not None or ax.get_legend() is not None:
            continue
        labels = [label for label in ax.get_legend_handles_labels()[1] if not label.startswith("_")]
        if labels and set(labels) <= legended:    # small multiples: one panel's legend names this panel's series
            continue
        if _series(ax) >= 2 and not has_colorbar:
            faults.append(f"{_series(ax)} series without a legend in axes {k} ({_name(ax)})")
    return faults


def figure_faults(fig) -> List[str]:
    """The mechanical faults of a matplotlib figure, as sentences (an empty list when there are none):
    blank or near-uniform images, a banned colour map (``jet`` ...), titles overlapping other axes (tight bounding
    boxes), overlapping tick labels, several series without a legend (or colour bar)."""
    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        raise ValueError(f"fig: expected a matplotlib Figure, got {type(fig).__name__}")
    canvas = fig.canvas
    if not hasattr(canvas, "get_renderer"):       # a closed figure (e.g. after the inline backend showed it)
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    return _uniform_faults(fig) + _cmap_faults(fig) + _text_faults(fig, renderer) + _legend_faults(fig)


def pixel_faults(rgb: np.ndarray) -> List[str]:
    """Faults visible in the pixels of a saved figure (H, W, 3 or 4) in [0, 1] or bytes: a blank (near-uniform)
    picture."""
    rgb = np.asarray(rgb, dtype=float)
    if rgb.max() > 1:
        rgb = rgb / 255
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"rgb: expected an image (H, W, 3|4), got shape {rgb.shape}")
    if rgb[..., :3].reshape(-1, 3).std(0).max() < UNIFORM_STD:
        return ["blank figure: its pixels are near-uniform"]
    return []


def png_faults(path) -> List[str]:
    """The faults of a gallery PNG: those the kernel recorded in its ``nnlab:faults`` text chunk, plus the pixel
    check."""
    from PIL import Image

    with Image.open(path) as image:
        recorded = json.loads(image.info.get(FAULTS_KEY, "[]"))
        pixels = np.asarray(image.convert("RGB"))
    return list(recorded) + pixel_faults(pixels)


def install_checker() -> None:
    """In a kernel: check every figure as it is rendered to PNG and record its faults in the PNG's text chunk
    ``nnlab:faults`` (so the notebook's outputs carry them). Idempotent."""
    from matplotlib.backend_bases import FigureCanvasBase

    if getattr(FigureCanvasBase.print_figure, "_nnlab_checked", False):
        return
    original = FigureCanvasBase.print_figure

    def print_figure(self, filename, *args, **kwargs):
        fmt = kwargs.get("format") or (Path(filename).suffix[1:] if isinstance(filename, (str, os.PathLike))
                                       else None)
        if fmt == "png":
            try:
                faults = figure_faults(self.figure)
            except Exception as error:  # the check must never break a lab
                faults = [f"fault check failed: {type(error).__name__}: {error}"]
            metadata = dict(kwargs.get("metadata") or {})
            metadata[FAULTS_KEY] = json.dumps(faults)
            kwargs["metadata"] = metadata
        return original(self, filename, *args, **kwargs)

    print_figure._nnlab_checked = True
    FigureCanvasBase.print_figure = print_figure


# =========================================================================== running the notebooks
_SETUP = "from nnlab.course.gallery import install_checker as _nnlab_install_checker; _nnlab_install_checker()"


def _sentences(markdown: str) -> List[str]:
    text = re.sub(r"```.*?```", " ", markdown, flags=re.S)
    text = re.sub(r"^\s*#+\s*", "", text, flags=re.M)
    text = re.sub(r"\s+", " ", text).strip()
    return [s.strip() for s in re.split(r"(?<=[.!?:])\s+(?=[A-Z(*`$])", text) if s.strip()]


def _widget_pngs(output: dict, state: dict) -> List[str]:
    """The PNGs drawn inside an explorer (ipywidgets Output models reachable from a widget view)."""
    data = output.get("data", {}).get("application/vnd.jupyter.widget-view+json")
    if not data:
        return []
    pngs, todo, seen = [], [data["model_id"]], set()
    while todo:
        model_id = todo.pop(0)
        if model_id in seen or model_id not in state:
            continue
        seen.add(model_id)
        model = state[model_id]
        if model.get("model_name") == "OutputModel":
            for out in model.get("state", {}).get("outputs", []):
                if "image/png" in out.get("data", {}):
                    pngs.append(out["data"]["image/png"])
        for child in model.get("state", {}).get("children", []):
            todo.append(str(child).replace("IPY_MODEL_", ""))
    return pngs


def figures_of(nb) -> List[dict]:
    """``[{cell, index, sentence, png (base64)}]``: every figure of an executed notebook (cell outputs and the
    figures inside its widgets), with the last sentence of the nearest markdown cell above it."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    figures, sentence = [], ""
    for number, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            sentences = _sentences(cell.source)
            sentence = sentences[-1] if sentences else sentence
            continue
        if cell.cell_type != "code":
            continue
        k = 0
        for output in cell.get("outputs", []):
            pngs = [output["data"]["image/png"]] if "image/png" in output.get("data", {}) else []
            for png in pngs + _widget_pngs(output, state):
                figures.append({"cell": number, "index": k, "sentence": sentence, "png": png,
                                "widget": not pngs})
                k += 1
    return figures



def stray_reprs(nb) -> List[dict]:
    """``[{cell, text}]``: echoed reprs of objects (``<torch._C.Generator object at 0x...>`` from a last line
    ``torch.manual_seed(0)``, ``[<matplotlib.lines.Line2D ...>]``), which a lab should end with ``;`` or ``_ =``."""
    found = []
    for number, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("output_type") != "execute_result":
                continue
            text = str(output.get("data", {}).get("text/plain", "")).strip()
            if " at 0x" in text and text.startswith(("<", "[<", "(<")):
                found.append({"cell": number, "text": text[:120]})
    return found


def execute(path: Path, timeout: int = 600):
    """Execute a notebook with nbclient in its folder (NNLAB_DATA etc. from the environment), the fault checker
    installed first in a cell that is removed again. Returns the executed notebook."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(_SETUP))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    nb.cells.pop(0)
    return nb


def build(notebooks: Optional[List[Path]] = None, out: Path = OUT, timeout: int = 600) -> dict:
    """Run the notebooks (default: every ``solutions/*.ipynb``), write their figures as PNGs and ``index.html``
    under ``out``, and ``faults.json``. Returns ``{"figures": n, "faults": n, "faulty": [...], "errors": [...]}``."""
    notebooks = sorted(notebooks or (ROOT / "solutions").glob("[0-9]*.ipynb"))
    out.mkdir(parents=True, exist_ok=True)
    rows, errors, strays = [], [], []
    for path in notebooks:
        lab = path.stem
        start = time.time()
        print(f"{lab}: running ...", flush=True)
        try:
            nb = execute(path, timeout)
        except Exception as error:  # a failing lab is reported in the gallery, the others still run
            errors.append(f"{lab}: {type(error).__name__}: {str(error)[:300]}")
            print(f"{lab}: FAILED {type(error).__name__}", flush=True)
            continue
        strays += [{"lab": lab, **stray} for stray in stray_reprs(nb)]
        (out / lab).mkdir(exist_ok=True)
        for old in (out / lab).glob("*.png"):
            old.unlink()
        for fig in figures_of(nb):
            name = f"{lab}/cell{fig['cell']:02d}_{fig['index']}.png"
            (out / name).write_bytes(b64decode(fig["png"]))
            rows.append({"lab": lab, "cell": fig["cell"], "sentence": fig["sentence"], "png": name,
                         "widget": fig["widget"], "faults": png_faults(out / name)})
        print(f"{lab}: {sum(r['lab'] == lab for r in rows)} figures in {time.time() - start:.0f} s", flush=True)
    summary = {"figures": len(rows), "faults": sum(len(r["faults"]) for r in rows),
               "faulty": [r for r in rows if r["faults"]], "errors": errors, "stray_reprs": strays,
               "rows": rows}
    (out / "faults.json").write_text(json.dumps(summary, indent=1))
    (out / "index.html").write_text(_html(rows, errors, strays))
    return summary


def report(summary: dict) -> str:
    """The markdown report of a gallery run (bench/results/gallery.md): counts, the faulty figures, stray reprs."""
    lines = ["# Gallery: the course's figures and their mechanical faults", "",
             "`make gallery` (nnlab.course.gallery) executes every solution notebook and checks every figure "
             "(blank / near-uniform images, banned colour maps, titles overlapping axes, overlapping tick labels, "
             "several series without a legend).", "",
             f"- figures: **{summary['figures']}**",
             f"- mechanical faults: **{summary['faults']}** in {len(summary['faulty'])} figures",
             f"- notebooks that failed: {len(summary['errors'])}", ""]
    if summary["errors"]:
        lines += ["## Notebooks that failed", ""] + [f"- {e}" for e in summary["errors"]] + [""]
    if summary["faulty"]:
        lines += ["## Faulty figures (for the per-lab pass)", "", "| figure | faults |", "|---|---|"]
        for r in summary["faulty"]:
            shown = "; ".join(r["faults"][:3]) + (f"; ... ({len(r['faults'])} in all)" if len(r["faults"]) > 3 else "")
            lines.append(f"| {r['png']} | {shown.replace('|', '/')} |")
        lines.append("")
    if summary.get("stray_reprs"):
        lines += ["## Stray reprs", ""] + [f"- {s['lab']} cell {s['cell']}: `{s['text']}`" for s in summary["stray_reprs"]]
    return "\n".join(lines) + "\n"


def _html(rows: List[dict], errors: List[str], strays: List[dict] = ()) -> str:
    faulty = sum(bool(r["faults"]) for r in rows)
    parts = ["<!doctype html><meta charset='utf-8'><title>nnlab gallery</title>",
             "<style>body{font-family:sans-serif;margin:1em}td{vertical-align:top;padding:6px;"
             "border-bottom:1px solid #ddd}img{max-width:720px}.fault{color:#b00}</style>",
             f"<h1>nnlab: {len(rows)} figures, {faulty} with mechanical faults</h1>"]
    parts += [f"<p class='fault'>{html.escape(e)}</p>" for e in errors]
    parts += [f"<p class='fault'>stray repr in {html.escape(s['lab'])} cell {s['cell']}: {html.escape(s['text'])}</p>"
              for s in strays]
    parts.append("<table><tr><th>lab</th><th>cell</th><th>the sentence it illustrates</th><th>figure</th></tr>")
    for r in rows:
        faults = "".join(f"<div class='fault'>{html.escape(f)}</div>" for f in r["faults"])
        where = " (explorer)" if r["widget"] else ""
        parts.append(f"<tr><td>{html.escape(r['lab'])}</td><td>{r['cell']}{where}</td>"
                     f"<td>{html.escape(r['sentence'])}{faults}</td>"
                     f"<td><img loading='lazy' src='{html.escape(r['png'])}'></td></tr>")
    parts.append("</table>")
    return "\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run the solution notebooks and write test-output/gallery/")
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks (default: solutions/*.ipynb)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    if not os.environ.get("NNLAB_DATA"):
        print("warning: NNLAB_DATA is not set; the labs look for their data in the default places", file=sys.stderr)
    summary = build(args.notebooks or None, args.out, args.timeout)
    if not args.notebooks:
        (ROOT / "bench" / "results" / "gallery.md").write_text(report(summary))
    print(f"{summary['figures']} figures, {summary['faults']} faults in {len(summary['faulty'])} figures, "
          f"{len(summary['errors'])} notebooks failed -> {args.out / 'index.html'}")
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
