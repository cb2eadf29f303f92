"""Why `split_divisions` finds divisions late or not at all, on the oracle labels of
scripts/division_split_oracle.py (perfect propagation: every daughter under its root's id):

- offsets: found frame - true frame of the divisions matched within 10 frames (the oracle's rule
  with a wider window);
- false divisions (matching no true one within 4 frames), by what the two daughters cover on the
  frame they start: one true cell (cut by the frame's edge, or pinched), two sisters (a true
  division found too far off, or a sister pair split a second time), two other cells of the same
  root touching (cousins, an aunt), or a true cell and nothing;
- visible misses, by what the split made of the true daughters on the frames after the division;
- necks: for the visible divisions, on each of the 5 frames from the true one, whether the merged
  mask is in two 8-connected parts, or has two lobes at neck ratio 0.8 (the default), 0.9, 0.95,
  each lobe lying over one true daughter;
- ctc_metrics' BC(0), BC(1), BC(2) (and TRA, DET) of the split oracle labels written with
  `write_ctc`, against the ground truth written by scripts/ctc_metrics_check.py's `write_gt`.

Usage: .venv/bin/python scripts/division_diagnose.py [--ctc-metrics /tmp/ctcm] [--frames 120]
       [--option NAME=VALUE ...] [--no-necks-table] [--list] [SEEDS ...]   (default seeds 5 6 7 8 9)
"""
from __future__ import annotations

import collections
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from ctc_metrics_check import _quiet, load_ctc_metrics, write_gt  # noqa: E402
from division_split_oracle import WITHIN, match, oracle_case, parse_options  # noqa: E402

from napari_vos.ctc_export import write_ctc  # noqa: E402
from napari_vos.divisions import _lobes, _parts, split_divisions  # noqa: E402


def main_cover(result_frame: np.ndarray, truth_frame: np.ndarray, i: int) -> tuple[int, float]:
    """The true id covering most of result id ``i`` on the frame, and the share of ``i`` it covers."""
    under = truth_frame[result_frame == i]
    if not under.size:
        return 0, 0.0
    ids, counts = np.unique(under, return_counts=True)
    k = int(np.argmax(counts))
    return int(ids[k]), counts[k] / under.size


def touches_edge(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def classify_false(case, result, found) -> str:
    lineage = case.video.lineage
    t = found.frame
    covers = [main_cover(result.labels[t], case.truth[t], d) for d in found.daughters]
    ids = [c[0] for c in covers]
    if len(found.daughters) != 2:
        return f"{len(found.daughters)} daughters"
    if 0 in ids:
        return "a daughter over background"
    a, b = ids
    if a == b:
        mask = case.truth[t] == a
        kind = "one cell cut by the frame's edge" if touches_edge(mask) else "one cell, pinched"
        if a in case.true and 0 <= case.true[a][0] - t <= 4:
            kind += " (a parent rounding up, dividing within 4 frames)"
        elif lineage[a][1] >= t - 3:
            kind += " (a daughter born within 3 frames)"
        return kind
    pa, pb = lineage[a][0], lineage[b][0]
    if pa and pa == pb:
        off = t - case.true[pa][0]
        return f"two sisters, {off:+d} frames from their division" if abs(off) > WITHIN else \
            "two sisters, within 4 frames but a daughter's IoU <= 0.5"
    if a == pb or b == pa:
        return "a parent and its daughter"
    return "two cells of one root touching (cousins, aunt)"


def classify_miss(case, result, parent) -> str:
    frame, daughters = case.true[parent]
    frames = len(case.truth)
    if frame >= frames - 2:
        return "on the last 2 frames"
    # what the split gave the two true daughters on the frames after
    separated_at = None
    for t in range(frame, frames):
        owners = []
        for d in daughters:
            m = case.truth[t] == d
            if not m.any():
                owners.append(None)
                continue
            ids, counts = np.unique(result.labels[t][m], return_counts=True)
            owners.append(int(ids[np.argmax(counts)]))
        if None in owners:
            return "a daughter leaves before the two are split" if separated_at is None else "?"
        if owners[0] != owners[1]:
            separated_at = t
            break
    if separated_at is None:
        return "never split"
    off = separated_at - frame
    found = [d for d in result.divisions if d.frame == separated_at and set(owners) <= set(d.daughters)]
    if not found:
        return f"daughters apart from {off:+d} by other ids (not one division's daughters)"
    return f"split {off:+d} frames off" if off > WITHIN else f"split {off:+d}, daughter IoU <= 0.5"


def neck_table(case) -> collections.Counter:
    """(offset, what) -> count over the visible divisions: 'parts', 'lobes@r', or 'none'."""
    counter: collections.Counter = collections.Counter()
    frames = len(case.truth)
    for parent in case.visible:
        frame, daughters = case.true[parent]
        for off in range(-1, 5):
            t = frame + off
            if t >= frames:
                break
            truth = case.truth[t]
            if off < 0:
                mask = truth == parent
            else:
                a, b = (truth == d for d in daughters)
                if not a.any() or not b.any():
                    counter[(off, "a daughter absent")] += 1
                    continue
                mask = a | b
            if not mask.any():
                counter[(off, "absent")] += 1
                continue
            ys, xs = np.nonzero(mask)
            box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
            m = mask[box]
            parts, sizes = _parts(m)
            if np.count_nonzero(sizes[1:] >= max(10, 0.2 * sizes[1:].sum())) >= 2:
                counter[(off, "parts")] += 1
                continue
            what = "none"
            for ratio in (0.8, 0.85, 0.9, 0.95):
                lobes, n = _lobes(m, ratio)
                if n >= 2:
                    what = f"lobes@{ratio}"
                    break
            counter[(off, what)] += 1
    return counter


def bc_scores(case, result, tools, work: Path) -> dict:
    evaluate_sequence, _ = tools
    here = work / f"seed{case.seed}"
    write_gt(here / "GT", case.truth, case.video.lineage)
    write_ctc(here / "RES", result.labels, {d: p for d in result.lineage for p in [result.lineage[d][0]] if p})
    got, _, error = _quiet(evaluate_sequence, str(here / "RES"), str(here / "GT"),
                           metrics=["TRA", "DET", "BC(2)"], threads=1)
    if error:
        print(f"seed {case.seed}: ctc_metrics error {error}")
        return {}
    return got


def main() -> None:
    args, options = parse_options(sys.argv[1:])
    ctcm = None
    frames = 120
    rest, necks, listing = [], True, False
    it = iter(args)
    for a in it:
        if a == "--ctc-metrics":
            ctcm = next(it)
        elif a == "--frames":
            frames = int(next(it))
        elif a == "--no-necks-table":
            necks = False
        elif a == "--list":
            listing = True
        else:
            rest.append(a)
    seeds = [int(s) for s in rest] or [5, 6, 7, 8, 9]
    tools = load_ctc_metrics(ctcm) if ctcm else None
    work = Path(tempfile.mkdtemp(prefix="division_diagnose."))
    offsets: collections.Counter = collections.Counter()
    falses: collections.Counter = collections.Counter()
    misses: collections.Counter = collections.Counter()
    neck: collections.Counter = collections.Counter()
    bc = collections.defaultdict(list)
    totals = np.zeros(4, int)
    seconds = 0.0
    try:
        for seed in seeds:
            case = oracle_case(seed, frames)
            start = time.perf_counter()
            result = split_divisions(case.merged, **options)
            seconds += time.perf_counter() - start
            wide = match(case, result, within=10)
            strict = match(case, result)
            totals += (len(case.true), len(case.visible), len(result.divisions), len(strict))
            for parent, found in wide.items():
                offsets[found.frame - case.true[parent][0]] += 1
            matched_found = {id(f) for f in strict.values()}
            for found in result.divisions:
                if id(found) not in matched_found:
                    kind = classify_false(case, result, found)
                    falses[kind] += 1
                    if listing:
                        print(f"  seed {seed} false: parent {found.parent} frame {found.frame} "
                              f"daughters {found.daughters}: {kind}")
            for parent in sorted(case.visible - set(strict)):
                kind = classify_miss(case, result, parent)
                misses[kind] += 1
                if listing:
                    print(f"  seed {seed} miss: true parent {parent} frame {case.true[parent][0]} "
                          f"daughters {case.true[parent][1]}: {kind}")
            if necks:
                neck += neck_table(case)
            if tools:
                got = bc_scores(case, result, tools, work)
                for k in ("TRA", "DET", "BC(0)", "BC(1)", "BC(2)"):
                    if k in got:
                        bc[k].append(got[k])
                print(f"seed {seed}: " + ", ".join(f"{k} {got.get(k, float('nan')):.4f}"
                                                   for k in ("TRA", "DET", "BC(0)", "BC(1)", "BC(2)")), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nseeds {seeds}, {frames} frames{' ' + str(options) if options else ''}: true {totals[0]} "
          f"({totals[1]} visible), reported {totals[2]}, matching {totals[3]}; split {seconds:.2f} s")
    print("\nfound - true frame of the divisions matched within 10 frames:")
    for off in sorted(offsets):
        print(f"  {off:+d}: {offsets[off]}")
    print("\nfalse divisions (matching none within 4 frames):")
    for kind, n in falses.most_common():
        print(f"  {n:3d}  {kind}")
    print("\nvisible true divisions missed:")
    for kind, n in misses.most_common():
        print(f"  {n:3d}  {kind}")
    if necks:
        print("\nvisible divisions, the merged mask on the frames around the true one "
              "(offset -1: the parent's last frame):")
        kinds = sorted({k for _, k in neck})
        print("  offset | " + " | ".join(kinds))
        for off in range(-1, 5):
            print(f"  {off:+d} | " + " | ".join(str(neck[(off, k)]) for k in kinds))
    if bc:
        print("\nctc_metrics means: " + ", ".join(f"{k} {np.mean(v):.4f}" for k, v in bc.items()))


if __name__ == "__main__":
    main()
