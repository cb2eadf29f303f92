"""`napari-vos eval`: run a method over every sequence of a dataset and score it.

For each sequence (any layout `open_dataset` detects): the GT of its first annotated frame that
holds an object (frame 0 for DAVIS; the first GT frame for Cell Tracking Challenge data) is given
to the method through the public engine (`napari_vos.session.propagate`, both directions from
that frame), and the predicted stack is scored with the DAVIS measures (plus CTC SEG when the
sequence has many objects). Results are written after every sequence (`scoring.Report`), so
Ctrl-C keeps the finished ones; predictions can be saved as DAVIS palette PNGs (or a TIFF stack
when ids exceed 255) for `napari-vos score` or inspection.

``resume=True`` (``eval --resume``) continues a stopped run in the same --out: when its summary is
of the same evaluation (`check_same_evaluation`), its scored sequences are read back from the CSVs
(`scoring.read_earlier_run`) and kept, and only the others are run and appended. Each scored
sequence's summary entry records the sha256 of the files it was read from (`fingerprints`): a resume
whose kept sequences' files changed since is refused, and the same files at another place (the
dataset copied or cloned elsewhere) resume where the folder's path alone would be another dataset.

Zero-shot methods (COSNet; ``annotation="none"``, the default for a method that needs no
annotation) are given nothing: every frame is segmented and scored as foreground against the union
of the sequence's true objects (DAVIS 2016 unsupervised convention, `evaluation.unsupervised`).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from napari_vos.checks import painted_ids
from napari_vos.data.file_locks import hold_folder
from napari_vos.data.readers import name_key, open_dataset
from napari_vos.evaluation.fingerprints import sequence_fingerprint
from napari_vos.evaluation.metrics import evaluate_sequence
from napari_vos.evaluation.scoring import (FOREGROUND_SCORING, MANY_OBJECTS, EarlierRun, Report, first_annotation,
                                           now_with_zone, read_earlier_run, warn_unscored_truth)
from napari_vos.evaluation.unsupervised import evaluate_foreground

ANNOTATION_MODES = ("auto", "first", "none")

__all__ = ["evaluate_method", "save_prediction", "check_prediction_names", "resolve_annotation",
           "check_same_evaluation", "check_same_resolution", "ANNOTATION_MODES", "SAME_EVALUATION"]

#: the summary fields a resumed run must share with the earlier one (as asked; the checkpoint and
#: precision the method resolved are compared once it has run: `check_same_resolution`)
SAME_EVALUATION = ("method", "checkpoint_requested", "dataset", "max_side", "options", "annotation", "selection")


def save_prediction(folder: Path, name: str, labels: np.ndarray) -> Path:
    """DAVIS result layout `folder/<name>/00000.png` (palette), or `folder/<name>.tif` past 255 ids.
    An earlier run's prediction of the sequence (either form) is removed first: its extra frames, or
    a PNG folder that `score` would read before a new TIFF, must not mix with this one."""
    import shutil

    from napari_vos.data.writers import write_png_labels, write_tiff_labels

    parts = name.replace(os.altsep or os.sep, os.sep).split(os.sep)  # "sub/seq": a collection's sequence
    if not name or Path(name).is_absolute() or any(part in ("", ".", "..") for part in parts):  # its folder or above
        raise ValueError(f"the sequence name {name!r} cannot name a prediction inside {folder}")
    if (folder / name).is_dir():
        shutil.rmtree(folder / name)
    (folder / f"{name}.tif").unlink(missing_ok=True)
    if int(labels.max(initial=0)) <= 255:
        write_png_labels(folder / name, labels)
        return folder / name
    return write_tiff_labels(folder / f"{name}.tif", labels)


def check_prediction_names(names: list[str]) -> None:
    """Refuse two sequences whose predictions would be one folder on a disk that ignores case or
    Unicode form (NTFS, exFAT, SMB, macOS): saving the second deleted the first's (`save_prediction`)."""
    seen: dict[str, str] = {}
    for name in names:
        key = name_key(name).casefold()
        if key in seen:
            raise ValueError(f"sequences {seen[key]!r} and {name!r} would share one prediction folder on a disk that "
                             "ignores case: save their predictions in two runs (--sequences, another --out each)")
        seen[key] = name


def resolve_annotation(method: str, annotation: str = "auto", options: dict[str, Any] | None = None) -> str:
    """"first" (the first GT frame is given) or "none" (zero-shot); "auto": "none" exactly when
    the method needs no annotation."""
    from napari_vos.methods import registry

    if annotation not in ANNOTATION_MODES:
        raise ValueError(f"annotation must be one of {ANNOTATION_MODES}, got {annotation!r}")
    if annotation == "auto":
        return "first" if registry.needs_annotation(method, **(options or {})) else "none"
    if annotation == "first" and not registry.accepts_annotation(method):
        raise ValueError(f"method {method!r} takes no annotation; evaluate it with annotation 'none'")
    if annotation == "none" and registry.needs_annotation(method, **(options or {})):
        raise ValueError(f"method {method!r} needs an annotation; evaluate it with annotation 'first'")
    return annotation


def _as_json(value: Any) -> Any:
    """``value`` as a summary.json holds it (tuples as lists), for comparing with one read back."""
    return json.loads(json.dumps(value, default=str))


def _same_value(field: str, earlier: Any, now: Any) -> bool:
    """Whether a field of two evaluations agrees; a dataset also where both paths name one folder."""
    if _as_json(earlier) == _as_json(now):
        return True
    if field == "selection" and isinstance(earlier, list) and isinstance(now, list):
        return sorted(earlier) == sorted(now)  # the same sequences in another order
    if field == "dataset" and earlier and now:
        return Path(str(earlier)).resolve() == Path(str(now)).resolve()
    return False


def _refuse_another(where: str, differ: list[str]) -> None:
    """A ValueError saying the earlier run is another evaluation, in which fields, when any differ."""
    if differ:
        raise ValueError(f"{where} is another evaluation ({'; '.join(differ)}), so it cannot be resumed: give "
                         "the same settings, or run without --resume (this --out starts afresh, another keeps it)")


def _compared(key: str, earlier: dict[str, Any], header: dict[str, Any]) -> tuple[Any, Any]:
    """The earlier and present values of a `SAME_EVALUATION` field; the dataset as the folder each run
    resolved (``dataset_path``) where both record it, so a relative --data is the folder it named
    from where its run started, not its spelling (the same folder from elsewhere, or another one)."""
    if key == "dataset" and earlier.get("dataset_path") and header.get("dataset_path"):
        return earlier["dataset_path"], header["dataset_path"]
    return earlier[key], header.get(key)


def _differences(earlier: dict[str, Any], header: dict[str, Any], where: str) -> dict[str, str]:
    """The `SAME_EVALUATION` fields in which ``earlier`` (a summary) and ``header`` differ, each said
    with its earlier and present value. A field an older summary does not record is not compared, but
    one without a method is no eval's (`napari-vos score` writes such a summary, of predictions made
    by anything) and is refused."""
    if "method" not in earlier:
        raise ValueError(f"{where}: its summary records no method, so it is not an eval's (napari-vos score "
                         "writes such a summary) and cannot be resumed; run without --resume, or into another --out")
    differ = {}
    for key in SAME_EVALUATION:
        if key in earlier:
            before, now = _compared(key, earlier, header)
            if not _same_value(key, before, now):
                differ[key] = f"{key}: earlier {before!r}, now {now!r}"
    return differ


def check_same_evaluation(earlier: dict[str, Any], header: dict[str, Any], where: str) -> None:
    """Refuse to resume ``earlier`` (a summary) as the evaluation ``header`` describes when a field
    of `SAME_EVALUATION` differs (`_differences`): its scores would mix two evaluations. The dataset
    is compared by its folder here; `evaluate_method` also accepts the same files elsewhere."""
    _refuse_another(where, list(_differences(earlier, header, where).values()))


def check_same_resolution(earlier: dict[str, Any], result: Any, where: str) -> None:
    """Refuse a resumed run whose method resolved another checkpoint (or file of it) or precision than
    the earlier run's, once its first sequence has run (before anything is written)."""
    now = {"checkpoint": result.checkpoint, "checkpoint_sha256": result.checkpoint_sha256,
           "precision": result.options.get("precision")}
    differ = [f"{key}: earlier {earlier[key]!r}, now {value!r}" for key, value in now.items()
              if key in earlier and _as_json(earlier[key]) != _as_json(value)]
    _refuse_another(where, differ)
    if earlier.get("device") and earlier["device"] != result.device:  # the scores agree; the speeds do not
        import warnings

        warnings.warn(f"{where} ran on {earlier['device']}, this resume on {result.device}: the scores go on, but "
                      "the overall fps mixes the two devices' seconds (each sequence's own fps says which)",
                      stacklevel=2)


def _earlier_run(report: Report, seqs: list[Any], where: str,
                 say: Callable[[str], None] | None = None) -> EarlierRun | None:
    """The earlier run in the report's --out, checked to be this evaluation of sequences still in the
    dataset, read from the same files (their fingerprints, where the summary records them); None
    where there is none (everything is run). ``say``: told when the dataset is the same files elsewhere."""
    earlier = read_earlier_run(report.out_dir or ".", report.json_path)
    if earlier is None:
        return None
    differ = _differences(earlier.summary, report.header, where)
    if set(differ) - {"dataset"}:
        _refuse_another(where, list(differ.values()))
    recorded = {kept.result.name: kept.files_sha256 for kept in earlier.sequences}
    current = _fingerprints_now(recorded, seqs)
    changed = [name for name, digest in current.items() if digest != recorded[name]]
    if "dataset" in differ:
        _check_moved(recorded, current, changed, differ["dataset"], where, say)
    names = {seq.name for seq in seqs}
    gone = [name for name in recorded if name not in names]
    if gone:
        raise ValueError(f"{where} holds scores of sequences the dataset no longer has ({', '.join(gone)}), so it "
                         "cannot be resumed; run without --resume to start afresh")
    if changed:
        raise ValueError(f"{where} scored {', '.join(changed)} from files that have changed since (the sha256 of "
                         "the sequence's frame and annotation files differs: one was replaced, added or removed), so "
                         "its scores are not of this dataset and it cannot be resumed; run without --resume to start "
                         "afresh")
    return earlier


def _fingerprints_now(recorded: dict[str, str | None], seqs: list[Any]) -> dict[str, str | None]:
    """The present fingerprint of each kept sequence whose earlier one is recorded (an older summary
    records none: those are taken as they are) and that the dataset still has; each file read once."""
    return {seq.name: sequence_fingerprint(seq) for seq in seqs if recorded.get(seq.name) is not None}


def _check_moved(recorded: dict[str, str | None], current: dict[str, str | None], changed: list[str], said: str,
                 where: str, say: Callable[[str], None] | None) -> None:
    """Accept a dataset at another folder (cloned or copied elsewhere) where every kept sequence is
    there with the files it was scored from (none ``changed``), saying so; else refuse it as another
    dataset, as the folder's path alone does for a summary without fingerprints (or with no sequence
    to compare)."""
    if not recorded or any(digest is None for digest in recorded.values()) or set(current) != set(recorded):
        _refuse_another(where, [said])
    if changed:
        _refuse_another(where, [f"{said}, where the files of {', '.join(changed)} differ from those it scored"])
    if say is not None:
        say(f"--resume: the dataset is at another folder than the earlier run's ({said}), but the files of its "
            f"{len(recorded)} scored sequence(s) are the same (sha256): going on")


def _has_prediction(folder: Path, name: str) -> bool:
    """Whether ``folder`` holds a saved prediction of sequence ``name`` (either form `save_prediction` writes)."""
    return (folder / name).is_dir() or (folder / f"{name}.tif").is_file()


def _warn_predictions_differ(earlier: EarlierRun, out: Path, save_predictions: bool, todo: list[str]) -> None:
    """Say (a warning) where a resumed run's OUT/predictions will lack sequences: kept ones the earlier
    run saved none of (--save-predictions now only), or the ones run now (--save-predictions before
    only). `napari-vos score` on that folder would miss them; the scores themselves are whole."""
    import warnings

    folder = out / "predictions"
    kept = [k.result.name for k in earlier.sequences]
    if save_predictions:
        missing = [name for name in kept if not _has_prediction(folder, name)]
        if missing:
            them = "it" if len(missing) == 1 else "them"
            warnings.warn(f"{', '.join(missing)}: kept from the earlier run in {out}, which saved no prediction of "
                          f"{them}, so {folder} will lack {them} (napari-vos score needs every sequence's); to have "
                          f"{them}, run {them} alone with --sequences {','.join(missing)} --save-predictions and "
                          "another --out", stacklevel=3)
    elif todo:
        saved = [name for name in kept if _has_prediction(folder, name)]
        if saved:
            warnings.warn(f"{folder} holds the earlier run's predictions of {', '.join(saved)}, but this run is "
                          f"without --save-predictions: it saves none of {', '.join(todo)}, which napari-vos score "
                          "on that folder would miss; add --save-predictions to save them", stacklevel=3)


def _resume_line(earlier: EarlierRun | None, out_dir: Any, finished: bool) -> str:
    """What a resumed run says of the earlier run in ``out_dir``: none, complete with nothing left, or how
    many sequences it scored (``finished``: none of the dataset's is left to run)."""
    if earlier is None:
        return f"--resume: no earlier run in {out_dir}: evaluating every sequence"
    if not earlier.sequences:  # stopped in its first sequence: its summary lists none
        return f"--resume: the earlier run in {out_dir} scored no sequence: evaluating every sequence"
    if earlier.summary.get("complete") and finished:
        return f"--resume: the run in {out_dir} is complete, nothing is left to evaluate"
    return f"--resume: the earlier run in {out_dir} scored {len(earlier.sequences)} sequence(s); evaluating the rest"


def _resumed_header(report: Report, earlier: EarlierRun) -> None:
    """Carry what the earlier run resolved (checkpoint, device, precision) into this run's summary,
    and note when it was resumed, which code had run before and, where the dataset was elsewhere
    (the same files, `_check_moved`), its folder then."""
    for key in ("checkpoint", "checkpoint_sha256", "device", "precision"):
        if key in earlier.summary:
            report.header[key] = earlier.summary[key]
    resumed: dict[str, Any] = {"at": now_with_zone(), "kept": len(earlier.sequences),
                               "code_before": earlier.summary.get("code")}
    before = earlier.summary.get("dataset_path")
    if before and before != report.header.get("dataset_path"):
        resumed["dataset_path_before"] = before
    report.header["resumed"] = [*(earlier.summary.get("resumed") or []), resumed]


def evaluate_method(
    method: str,
    data: str | Path,
    sequences: list[str] | None = None,
    device: str = "auto",
    max_side: int | None = None,
    checkpoint: str | None = None,
    json_path: str | Path | None = None,
    out_dir: str | Path | None = None,
    save_predictions: bool = False,
    plot: bool = True,
    progress: bool = True,
    method_options: dict[str, Any] | None = None,
    annotation: str = "auto",
    resume: bool = False,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Propagate `method` through each sequence of `data`, score it and write the report.

    annotation: "first" gives the method the first GT frame holding an object; "none" gives it
    nothing and scores its foreground against the union of the GT objects; "auto" is "none" for
    zero-shot methods and "first" for the others.

    Returns the JSON summary (also written to `json_path`, default `out_dir/summary.json`).
    A KeyboardInterrupt stops after the sequence in progress is dropped; the summary then says
    "complete": false and holds the finished sequences.

    resume: continue the earlier run whose files are in `out_dir` (required): its scored sequences
    are kept and the others run (all of them where it has no summary); a ValueError where it is
    another evaluation. An earlier run with nothing left is returned as it is, nothing rewritten.
    say: given a line saying what the earlier run holds, once it is read and checked (the CLI: stderr).
    """
    from napari_vos.session import propagate

    if resume and not out_dir:
        raise ValueError("resume continues the run whose files are in an --out folder: give that --out")
    mode = resolve_annotation(method, annotation, method_options)
    seqs = open_dataset(data, sequences)
    if not seqs:
        raise ValueError(f"{data}: no sequences to evaluate")
    if save_predictions and out_dir:
        check_prediction_names([seq.name for seq in seqs])
    header = {"method": method, "checkpoint": checkpoint, "dataset": str(data), "device": device,
              "max_side": max_side, "options": dict(method_options or {}), "annotation": mode,
              "checkpoint_requested": checkpoint, "selection": None if sequences is None else list(sequences),
              "dataset_path": str(Path(data).resolve())}  # what --resume compares: --data from any folder
    if mode == "none":
        header["scoring"] = FOREGROUND_SCORING
    # one evaluation writes into a folder at a time: a second one would truncate and interleave its CSVs
    held = None
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        held = hold_folder(Path(out_dir), "evaluation")
    try:
        report = Report(header, out_dir, json_path)
        where = f"the earlier run in {out_dir}"
        earlier = _earlier_run(report, seqs, where, say) if resume else None
        kept = set() if earlier is None else {k.result.name for k in earlier.sequences}
        todo = [seq for seq in seqs if seq.name not in kept]
        if resume and say is not None:
            say(_resume_line(earlier, out_dir, finished=not todo))
        if earlier is not None:
            _warn_predictions_differ(earlier, Path(str(out_dir)), save_predictions, [seq.name for seq in todo])
        if earlier is not None and not todo and earlier.summary.get("complete"):
            return earlier.summary  # nothing left: its files stay as they are
        if earlier is not None:
            report.keep(earlier)
            _resumed_header(report, earlier)
        out = Path(out_dir) if out_dir else None
        outer: Any = todo
        bar = None
        if progress:
            from tqdm import tqdm

            outer = tqdm(todo, desc=f"eval {method}", unit="seq", total=len(seqs), initial=len(seqs) - len(todo))
        complete = False
        try:
            for seq in outer:
                with seq:  # a TIFF stack's files close once it is scored
                    zero_shot = mode == "none"
                    annotated = None if zero_shot else first_annotation(seq)
                    first = None if annotated is None else seq.masks[annotated]
                    ids = [] if first is None else painted_ids(first)
                    options: dict[str, Any] = dict(method_options or {})
                    if max_side is not None:
                        options["max_side"] = max_side
                    if checkpoint is not None:
                        options["checkpoint"] = checkpoint
                    callback: Callable[[int, int], None] | None = None
                    if progress:
                        from tqdm import tqdm

                        bar = tqdm(total=len(seq), desc=seq.name, unit="frame", leave=False)

                        def advance(done: int, total: int, bar: Any = bar) -> None:
                            bar.update(done - bar.n)

                        callback = advance

                    files_sha256 = sequence_fingerprint(seq)  # what a resume compares (not timed)
                    tic = time.perf_counter()
                    result = propagate(seq.frames, first, method=method, frame=annotated, device=device,
                                       direction="both", progress=callback, **options)
                    wall = time.perf_counter() - tic
                    if bar is not None:
                        bar.close()
                        bar = None
                    if earlier is not None:
                        check_same_resolution(earlier.summary, result, where)
                    report.header["checkpoint"] = result.checkpoint
                    report.header["checkpoint_sha256"] = result.checkpoint_sha256
                    report.header["device"] = result.device
                    report.header["precision"] = result.options.get("precision")
                    if annotated is None:
                        scores = evaluate_foreground(seq.name, seq.masks, result.labels)
                    else:
                        scores = evaluate_sequence(seq.name, seq.masks, result.labels, annotated,
                                                   seg=len(ids) >= MANY_OBJECTS or seq.layout == "ctc")
                        warn_unscored_truth(scores, annotated, ctc=seq.layout == "ctc")
                    if out is not None and save_predictions:  # before the scores: a Ctrl-C in it runs it again
                        save_prediction(out / "predictions", seq.name, np.asarray(result.labels))
                    report.add(scores, len(seq), annotated, frames_done=result.frames_done, seconds=result.seconds,
                               start_seconds=result.start_seconds, wall_seconds=wall, files_sha256=files_sha256)
            complete = True
        except KeyboardInterrupt:
            if bar is not None:
                bar.close()
            report.header["not_evaluated"] = [seq.name for seq in seqs if seq.name not in report.rows]
        summary = report.finish(complete)
        if plot and out is not None and report.results:
            from napari_vos.evaluation.plots import plot_jf_over_time

            plot_jf_over_time(report.results, out / "jf_over_time.png", title=f"{method} on {Path(data).name}")
        elif out is not None and report.results:  # --no-plot: an earlier run's plot would not match this summary
            (out / "jf_over_time.png").unlink(missing_ok=True)
        return summary
    finally:
        if held is not None:
            held.close()
