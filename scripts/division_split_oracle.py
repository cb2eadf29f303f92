"""How well `split_divisions` finds divisions where the propagation is perfect: the ground truth of
synthetic dividing cells with every daughter put back under its root cell's id (what a method that
follows each painted cell without error gives), split again and compared with the true lineage.
A found division matches a true one when they are at most 4 frames apart and, on the later of the
two frames, its daughters overlap the two true daughters one each (IoU above 0.5), each true
division matched once. "Visible" counts the true divisions the labels alone can show: two daughters,
each of 10 pixels or more (split_divisions' min_pixels) on 2 frames (its persist) within those 4
frames; the others lose a daughter through the frame's edge at once, or divide on the last frames.
"on the frame" counts the matched divisions found on the true frame, "mean |off|" their mean distance
in frames from it.

Options (``--option name=value``, repeatable) are passed to split_divisions as keyword arguments
(numbers as numbers, true/false as booleans), to compare rules without editing the module.
The functions (`oracle_case`, `match`) are imported by scripts/division_diagnose.py.
Usage: .venv/bin/python scripts/division_split_oracle.py [FRAMES] [SEEDS...] [--option NAME=VALUE ...]"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np

from napari_vos.data.synthetic_cells import cell_video, under_root_ids
from napari_vos.divisions import split_divisions

WITHIN = 4  # frames between a found division and the true one


@dataclass
class OracleCase:
    """One seed's synthetic video, its merged labels and its true divisions: parent -> (frame, daughters)."""

    seed: int
    video: object
    truth: np.ndarray
    merged: np.ndarray
    true: dict[int, tuple[int, list[int]]]
    visible: set[int]  # parents of the visible true divisions


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def oracle_case(seed: int, frames: int = 120) -> OracleCase:
    video = cell_video(frames, (256, 256), n_cells=20, seed=seed, division_rate=0.01)
    truth = np.asarray(video.labels)
    merged = under_root_ids(truth, video.lineage)
    true: dict[int, tuple[int, list[int]]] = {}
    for i, (parent, first, _) in video.lineage.items():
        if parent:
            frame, daughters = true.get(parent, (first, []))
            true[parent] = (min(frame, first), daughters + [i])
    visible = {parent for parent, (frame, daughters) in true.items()
               if len(daughters) == 2 and sum(all(np.count_nonzero(truth[t] == d) >= 10 for d in daughters)
                                              for t in range(frame, min(frame + WITHIN + 1, frames))) >= 2}
    return OracleCase(seed, video, truth, merged, true, visible)


def match(case: OracleCase, result, within: int = WITHIN) -> dict[int, object]:
    """True parent -> the found division matching it (see the module's text), each matched once."""
    frames = len(case.truth)
    matched: dict[int, object] = {}
    for found in result.divisions:
        for parent, (frame, daughters) in case.true.items():
            t = max(found.frame, frame)
            if parent in matched or abs(found.frame - frame) > within or len(daughters) != 2 or t >= frames:
                continue
            pairs = [[iou(result.labels[t] == d, case.truth[t] == g) for g in daughters] for d in found.daughters]
            if len(found.daughters) >= 2 and any(pairs[a][0] > 0.5 and pairs[b][1] > 0.5
                                                 for a in range(len(pairs)) for b in range(len(pairs)) if a != b):
                matched[parent] = found
                break
    return matched


def parse_options(args: list[str]) -> tuple[list[str], dict]:
    """The arguments without ``--option NAME=VALUE`` pairs, and those options as keyword arguments."""
    rest, options = [], {}
    it = iter(args)
    for arg in it:
        if arg == "--option":
            name, value = next(it).split("=", 1)
            low = value.lower()
            options[name] = (True if low == "true" else False if low == "false" else
                             int(value) if value.lstrip("-").isdigit() else float(value))
        else:
            rest.append(arg)
    return rest, options


def main() -> None:
    args, options = parse_options(sys.argv[1:])
    frames = int(args[0]) if args else 120
    seeds = [int(s) for s in args[1:]] or [5, 6]
    totals = np.zeros(4, int)
    on_frame, offsets, total_seconds = 0, [], 0.0
    for seed in seeds:
        case = oracle_case(seed, frames)
        start = time.perf_counter()
        result = split_divisions(case.merged, **options)
        seconds = time.perf_counter() - start
        total_seconds += seconds
        matched = match(case, result)
        offs = [found.frame - case.true[parent][0] for parent, found in matched.items()]
        on_frame += sum(o == 0 for o in offs)
        offsets += offs
        totals += (len(case.true), len(case.visible), len(result.divisions), len(matched))
        print(f"seed {seed}: true divisions {len(case.true)} ({len(case.visible)} visible), reported "
              f"{len(result.divisions)}, matching {len(matched)} ({sum(o == 0 for o in offs)} on the frame); "
              f"split in {seconds:.2f} s", flush=True)
    mean_off = np.mean(np.abs(offsets)) if offsets else float("nan")
    print(f"{len(seeds)} videos of {frames} frames{' ' + str(options) if options else ''}: true {totals[0]} "
          f"({totals[1]} visible), reported {totals[2]}, matching {totals[3]} ({on_frame} on the frame, mean |off| "
          f"{mean_off:.2f}); split {total_seconds:.2f} s in all")


if __name__ == "__main__":
    main()
