"""The project's Cell Tracking Challenge export (`napari_vos.ctc_export.write_ctc`) scored by the CTC's own
measures as `py-ctcmetrics` (module ``ctc_metrics``, the CTC's Python evaluation) computes them, on
synthetic dividing cells whose lineage is known (`napari_vos.data.synthetic_cells.cell_video`).

For each seed the ground truth is written here in CTC's layout, GT/TRA/man_trackNNN.tif +
man_track.txt and GT/SEG/man_segNNN.tif, by a writer of this script's own (not write_ctc): the
generator's ids are kept as track labels, a run of frames after an id was hidden for some frames gets
a new label whose parent is the run before (CTC's annotation rule), and each daughter's parent is its
parent's last run, all from the generator's lineage. Then:

- case A: the ground-truth labels and the generator's lineage written as a RESULT by write_ctc
  (which renumbers every track): TRA, DET and SEG must be 1; also without the lineage ("A, no
  lineage"), which only the division links should cost;
- case B: frame 0's true labels propagated by each method (`napari_vos.propagate`, as
  scripts/division_split_gain.py runs it), written as they are ("B <method>") and after
  `napari_vos.divisions.split_divisions` with the split's lineage ("B <method> split"). SEG from
  ctc_metrics is compared with the project's `napari_vos.evaluation.ctc.seg_measure` on the same
  labels (the export renumbers ids but must not change a pixel, so they should agree);
- probes: small folders, as write_ctc writes them and broken by hand, checked by both the project's
  `check_ctc` and ctc_metrics' validity check (`validate_sequence`), to see that they agree.

Every result folder is also checked with `check_ctc`. ctc_metrics is not a project dependency:
install it apart, e.g. ``.venv/bin/pip install --no-deps --target /tmp/ctcm py-ctcmetrics==1.3.3
scikit-learn joblib threadpoolctl narwhals`` (numpy, scipy, pandas, tifffile and imagecodecs come
from the project's environment), and pass ``--ctc-metrics /tmp/ctcm`` or put it on PYTHONPATH.

``--cache DIR`` keeps the propagated stacks to read back on a later run (to compare splits without
propagating again), ``--split-option NAME=VALUE`` (repeatable) passes a keyword argument to
split_divisions (numbers as numbers, true/false as booleans). The means also give BC(0) and BC(1).

Usage: .venv/bin/python scripts/ctc_metrics_check.py [--ctc-metrics DIR] [--methods flow,frtm]
       [--frames 40] [--size 256] [--cells 20] [--rate 0.02] [--keep DIR] [--cache DIR]
       [--split-option NAME=VALUE ...] [SEEDS ...]   (default seeds 5 6)
"""
from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import tifffile

from napari_vos.ctc_export import check_ctc, write_ctc
from napari_vos.data.synthetic_cells import cell_video
from napari_vos.evaluation.ctc import seg_measure

METRICS = ["Valid", "SEG", "TRA", "DET", "BC"]


def load_ctc_metrics(where: str | None):
    """ctc_metrics' evaluate_sequence and validate_sequence, or exit saying how to get them."""
    if where:
        sys.path.append(where)  # after the project's environment: its numpy etc. stay the ones imported
    try:
        from ctc_metrics import evaluate_sequence, validate_sequence
    except ImportError as err:
        sys.exit(f"ctc_metrics is not importable ({err}). Install py-ctcmetrics apart from the project, e.g.\n"
                 "  .venv/bin/pip install --no-deps --target /tmp/ctcm py-ctcmetrics==1.3.3 scikit-learn joblib "
                 "threadpoolctl narwhals\nthen run with --ctc-metrics /tmp/ctcm (or PYTHONPATH=/tmp/ctcm).")
    return evaluate_sequence, validate_sequence


# ---- the ground truth, written independently of napari_vos.ctc_export ----

def _runs(frames: list[int]) -> list[tuple[int, int]]:
    """Sorted frame numbers as runs of consecutive frames, (first, last) each."""
    runs, start = [], frames[0]
    for a, b in zip(frames, frames[1:] + [None]):
        if b != a + 1:
            runs.append((start, a))
            start = b
    return runs


def write_gt(gt: Path, labels: np.ndarray, lineage: dict[int, tuple[int, int, int]]) -> dict[str, int]:
    """GT/TRA (man_trackNNN.tif, man_track.txt) and GT/SEG (man_segNNN.tif) of the generator's labels and
    lineage (id -> (parent or 0, first frame, last frame)). Returns counts (tracks, hidden runs, links)."""
    frames = len(labels)
    on: dict[int, list[int]] = {}
    for t in range(frames):
        for i in np.unique(labels[t]).tolist():
            if i:
                on.setdefault(int(i), []).append(t)
    assert set(on) == set(lineage), "the generator's lineage lists other ids than its labels hold"
    next_label = max(on) + 1
    runs: dict[int, list[tuple[int, int, int]]] = {}  # id -> [(label, first, last)]
    for i in sorted(on):
        assert (on[i][0], on[i][-1]) == lineage[i][1:], f"id {i}: frames {on[i][0]}-{on[i][-1]}, lineage {lineage[i]}"
        runs[i] = []
        for k, (b, e) in enumerate(_runs(on[i])):
            runs[i].append((i if k == 0 else next_label, b, e))
            next_label += k > 0
    assert next_label <= 65536, "more labels than 16-bit masks hold"
    rows, hidden, divisions = [], 0, 0
    for i, parts in runs.items():
        for k, (label, b, e) in enumerate(parts):
            parent = 0
            if k:
                parent, hidden = parts[k - 1][0], hidden + 1
            elif lineage[i][0] and lineage[i][0] in runs:
                parent_label, _, parent_end = runs[lineage[i][0]][-1]
                assert parent_end < b, f"id {i} begins on {b} but its parent is on frame {parent_end}"
                parent, divisions = parent_label, divisions + 1
            rows.append((label, b, e, parent))
    width = max(3, len(str(frames - 1)))
    (gt / "TRA").mkdir(parents=True)
    (gt / "SEG").mkdir()
    for t in range(frames):
        table = np.zeros(max(on) + 1, np.uint16)
        for i, parts in runs.items():
            for label, b, e in parts:
                if b <= t <= e:
                    table[i] = label
        mask = table[labels[t]]
        tifffile.imwrite(gt / "TRA" / f"man_track{t:0{width}d}.tif", mask)
        tifffile.imwrite(gt / "SEG" / f"man_seg{t:0{width}d}.tif", mask)
    (gt / "TRA" / "man_track.txt").write_text("".join(f"{a} {b} {c} {d}\n" for a, b, c, d in sorted(rows)))
    return {"tracks": len(rows), "hidden": hidden, "links": divisions}


# ---- scoring ----

def _quiet(call, *args, **kwargs):
    """call(...) with ctc_metrics' prints hidden and its warnings collected: (value or None, warnings, error)."""
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("always")
        try:
            value, error = call(*args, **kwargs), None
        except Exception as err:  # noqa: BLE001 - a crash of the metrics is a result to report
            value, error = None, f"{type(err).__name__}: {err}"[:160]
    said = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    return value, said, error


def score(res: Path, gt: Path, truth: np.ndarray, labels: np.ndarray, tools) -> dict:
    """ctc_metrics' measures of a result folder, its validity, check_ctc's problems, the project's SEG."""
    evaluate_sequence, validate_sequence = tools
    start = time.perf_counter()
    got, said, error = _quiet(evaluate_sequence, str(res), str(gt), metrics=list(METRICS), threads=1)
    valid, valid_said, valid_error = _quiet(validate_sequence, str(res), threads=1)
    got = got or {}
    return {"valid": (valid or {}).get("Valid") if not valid_error else f"crash ({valid_error})",
            "warnings": said + valid_said, "error": error, "check_ctc": check_ctc(res),
            "SEG": got.get("SEG"), "DET": got.get("DET"), "TRA": got.get("TRA"), "BC(2)": got.get("BC(2)"),
            "BC(0)": got.get("BC(0)"), "BC(1)": got.get("BC(1)"),
            "AOGM": {k: int(got[f"AOGM_{k}"]) for k in ("FN", "FP", "NS", "EA", "ED", "EC") if f"AOGM_{k}" in got},
            "gt_divisions": got.get("gt_divisions"), "seg_project": seg_measure(truth, labels),
            "seconds": time.perf_counter() - start}


def _f(v) -> str:
    return f"{v:.4f}" if isinstance(v, (float, np.floating)) else str(v)


def print_row(seed, case: str, tracks: int, s: dict) -> None:
    agree = ("yes" if s["SEG"] is not None and abs(s["SEG"] - s["seg_project"]) < 1e-9 else
             f"NO ({s['SEG']} vs {s['seg_project']})")
    aogm = " ".join(f"{k}{v}" for k, v in s["AOGM"].items())
    print(f"| {seed} | {case} | {tracks} | {s['valid']} | {len(s['check_ctc'])} | {_f(s['SEG'])} | "
          f"{_f(s['seg_project'])} | {agree} | {_f(s['DET'])} | {_f(s['TRA'])} | {_f(s['BC(2)'])} | {aogm} |",
          flush=True)
    for line in ([s["error"]] if s["error"] else []) + s["check_ctc"][:3] + s["warnings"][:3]:
        print(f"|   | note: {line} |", flush=True)


# ---- probes: check_ctc against ctc_metrics' validity on small folders ----

def probes(work: Path, tools) -> list[tuple[str, object, int]]:
    """(probe, ctc_metrics Valid or its crash, number of check_ctc problems) for small folders."""
    _, validate_sequence = tools
    gapped = np.zeros((7, 10, 12), np.uint8)
    gapped[[0, 1, 2, 5, 6], 1:4, 1:4] = 7  # id 7 hidden on frames 3-4
    gapped[:, 6:9, 6:10] = 2
    divided = gapped.copy()
    divided[4:, 6:9, 6:10] = 0
    divided[4:, 6:9, 6:7], divided[4:, 6:9, 9:10] = 11, 12  # 2 divides into 11 and 12 on frame 4
    long = np.zeros((1001, 4, 4), np.uint8)
    long[:, 1, 1] = 1
    long[500:, 2, 2] = 2

    def table(folder: Path, text: str) -> None:
        (folder / "res_track.txt").write_text(text)

    cases = [
        ("write_ctc: an id hidden on 2 frames", gapped, None, None),
        ("write_ctc: a division with its lineage", divided, {11: 2, 12: 2}, None),
        ("write_ctc: a daughter whose parent is still there", gapped, {2: 7}, None),
        ("write_ctc: bool labels", gapped > 0, None, None),
        ("write_ctc: an empty frame", np.where(np.arange(7)[:, None, None] == 3, 0, gapped), None, None),
        ("write_ctc: 1001 frames (mask0000.tif ...)", long, None, None),
        ("another .tif put in the folder", gapped, None,
         lambda f: tifffile.imwrite(f / "overview.tif", np.ones((10, 12), np.uint16))),
        ("a blank line at the end of res_track.txt", gapped, None,
         lambda f: table(f, (f / "res_track.txt").read_text() + "\n")),
        ("tabs on one line, spaces on the others", gapped, None,
         lambda f: table(f, "1 0 6 0\n2\t0\t2\t0\n3 5 6 2\n")),
        ("tabs on every line", gapped, None,
         lambda f: table(f, (f / "res_track.txt").read_text().replace(" ", "\t"))),
        ("a parent ending on the daughter's first frame", gapped, None,
         lambda f: table(f, "1 0 6 0\n2 0 5 0\n3 5 6 2\n")),
        ("a label on a mask not in res_track.txt", gapped, None,
         lambda f: tifffile.imwrite(f / "mask002.tif", np.where(np.arange(12) == 11, 9, tifffile.imread(
             f / "mask002.tif")).astype(np.uint16))),
        ("a track missing from one of its frames", gapped, None,
         lambda f: tifffile.imwrite(f / "mask003.tif", np.zeros((10, 12), np.uint16))),
    ]
    out = []
    for n, (name, labels, parents, damage) in enumerate(cases):
        folder = work / f"probe{n:02d}"
        write_ctc(folder, labels, parents)
        if damage:
            damage(folder)
        valid, _, error = _quiet(validate_sequence, str(folder), threads=1)
        out.append((name, f"crash: {error}" if error else valid["Valid"], check_ctc(folder)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("seeds", nargs="*", type=int, default=[5, 6])
    parser.add_argument("--ctc-metrics", default=None, help="folder holding ctc_metrics (else PYTHONPATH)")
    parser.add_argument("--methods", default="flow", help="comma-separated propagation methods (flow, frtm, ...)")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--cells", type=int, default=20)
    parser.add_argument("--rate", type=float, default=0.02, help="division rate of the synthetic cells")
    parser.add_argument("--keep", default=None, help="write the folders here and keep them (default: a temp folder)")
    parser.add_argument("--no-probes", action="store_true")
    parser.add_argument("--split-option", action="append", default=[], metavar="NAME=VALUE",
                        help="a keyword argument of split_divisions (repeatable)")
    parser.add_argument("--cache", default=None,
                        help="keep each propagated stack here (.npy by method, seed and video) and read it back on "
                             "later runs, to compare splits without propagating again")
    args = parser.parse_args()
    split_options = {}
    for option in args.split_option:
        name, value = option.split("=", 1)
        low = value.lower()
        split_options[name] = (True if low == "true" else False if low == "false" else
                               int(value) if value.lstrip("-").isdigit() else float(value))
    tools = load_ctc_metrics(args.ctc_metrics)
    methods = [m for m in args.methods.split(",") if m]
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ctc_metrics_check."))
    work.mkdir(parents=True, exist_ok=True)
    import ctc_metrics  # noqa: F401 - the version shown

    from importlib.metadata import PackageNotFoundError, version
    try:
        ctcm_version = version("py-ctcmetrics")
    except PackageNotFoundError:
        ctcm_version = "unknown version"
    print(f"ctc_metrics {ctcm_version} from {Path(ctc_metrics.__file__).parent}; cell_video({args.frames}, "
          f"({args.size}, {args.size}), n_cells={args.cells}, division_rate={args.rate}); seeds {args.seeds}; "
          f"methods {methods}; split {split_options or 'as default'}; folders in {work}")
    try:
        if not args.no_probes:
            print("\nprobes: ctc_metrics' validate_sequence against the project's check_ctc\n")
            print("| probe | ctc_metrics Valid | check_ctc problems |\n|---|---|---|")
            for name, valid, problems in probes(work / "probes", tools):
                print(f"| {name} | {valid} | {len(problems)}{': ' + problems[0] if problems else ''} |", flush=True)
        print("\n| seed | case | tracks | Valid | check_ctc problems | SEG ctc_metrics | SEG project | agree | DET "
              "| TRA | BC(2) | AOGM ops |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
        totals: dict[str, list[dict]] = {}
        for seed in args.seeds:
            video = cell_video(args.frames, (args.size, args.size), n_cells=args.cells, seed=seed,
                               division_rate=args.rate)
            truth = np.asarray(video.labels)
            here = work / f"seed{seed}"
            counts = write_gt(here / "GT", truth, video.lineage)
            print(f"| {seed} | GT | {counts['tracks']} | | | | | | | | | {counts['links']} division links, "
                  f"{counts['hidden']} runs after a hidden stretch |", flush=True)
            runs = [("A", truth, video.lineage), ("A, no lineage", truth, None)]
            for method in methods:
                from napari_vos import propagate
                from napari_vos.divisions import split_divisions

                start = time.perf_counter()
                cached = (Path(args.cache) / f"{method}_seed{seed}_{args.frames}x{args.size}_{args.cells}_"
                          f"{args.rate}.npy") if args.cache else None
                read_back = cached is not None and cached.exists()
                if read_back:
                    propagated = np.load(cached)
                else:
                    propagated = np.asarray(propagate(video.frames, truth[0], method=method, device="cpu").labels)
                    if cached is not None:
                        cached.parent.mkdir(parents=True, exist_ok=True)
                        np.save(cached, propagated)
                seconds = time.perf_counter() - start
                start = time.perf_counter()
                split = split_divisions(propagated, **split_options)
                print(f"|   | note: {method} {'read back' if read_back else 'propagated'} in {seconds:.1f} s; split: "
                      f"{len(split.divisions)} divisions in {time.perf_counter() - start:.2f} s |")
                runs += [(f"B {method}", propagated, None), (f"B {method} split", split.labels, split.lineage)]
            for case, labels, parents in runs:
                res = here / (case.replace(",", "").replace(" ", "_") + "_RES")
                exported = write_ctc(res, labels, parents)
                s = score(res, here / "GT", truth, labels, tools)
                print_row(seed, case, len(exported.table), s)
                totals.setdefault(case, []).append(s)
        print("\nmeans over the seeds\n\n| case | videos | all valid | SEG ctc_metrics | SEG project | DET | TRA "
              "| BC(2) | BC(0) | BC(1) |\n|---|---|---|---|---|---|---|---|---|---|")
        for case, rows in totals.items():
            mean = {k: np.mean([r[k] for r in rows]) if all(r[k] is not None for r in rows) else None
                    for k in ("SEG", "seg_project", "DET", "TRA", "BC(2)", "BC(0)", "BC(1)")}
            print(f"| {case} | {len(rows)} | {all(r['valid'] == 1 and not r['check_ctc'] for r in rows)} | "
                  f"{_f(mean['SEG'])} | {_f(mean['seg_project'])} | {_f(mean['DET'])} | {_f(mean['TRA'])} | "
                  f"{_f(mean['BC(2)'])} | {_f(mean['BC(0)'])} | {_f(mean['BC(1)'])} |")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
