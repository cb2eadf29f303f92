"""Object ids and annotated frames (session-32 audit): a one-way run ignores objects on frames it
never reaches, NaN/inf float labels get the labels message, a run reaching only annotated frames
says it has nothing to do, and the Result lists the objects the run followed."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile

pytest.importorskip("torch")

from napari_vos import Session, propagate  # noqa: E402


def _video(n=6, size=48):
    yy, xx = np.mgrid[:size, :size]
    frames = np.full((n, size, size, 3), 40, np.uint8)
    labels = np.zeros((n, size, size), np.int32)
    for t in range(n):
        for oid, cy, cx, vx in ((3, 14, 10, 2), (17, 34, 34, -2), (250, 12, 36, 0)):
            m = (yy - cy) ** 2 + (xx - cx - vx * t) ** 2 <= 25
            frames[t][m] = (60 + oid % 190, 200, 90)
            labels[t][m] = oid
    return frames, labels


# 1. NaN / inf in a float labels stack: the engine's own message, not "cannot convert float NaN to integer"
#    (ValueError) or an OverflowError (a traceback and exit 1 from the command line)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_float_labels_stack_is_refused_with_the_labels_message(bad):
    frames, labels = _video()
    stack = np.zeros(labels.shape, np.float32)
    stack[0] = labels[0]
    stack[0, 0, 0] = bad
    with pytest.raises(ValueError, match="integer object ids"):
        propagate(frames, stack, method="flow", device="cpu")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_cli_non_finite_float_labels_is_a_mistake_not_a_bug(tmp_path, bad, capsys):
    from napari_vos.cli import main

    frames, labels = _video()
    tifffile.imwrite(tmp_path / "video.tif", frames, photometric="rgb")
    one = labels[0].astype(np.float32)
    one[0, 0] = bad
    tifffile.imwrite(tmp_path / "labels.tif", one)
    code = main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o",
                 str(tmp_path / "out.tif"), "--method", "flow", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert "integer object ids" in err


# 2. a one-way run is refused for objects painted only on annotated frames it never reaches
def test_forward_run_from_a_correction_ignores_objects_on_frames_it_does_not_reach():
    frames, labels = _video()
    correction = np.where(labels[4] == 250, 0, labels[4])  # object 250 has left by frame 4
    s = Session(frames, method="flow", device="cpu")
    s.annotate(0, labels[0])
    s.run("both")
    s.annotate(4, correction)
    result = s.run("forward", start=4)  # frame 0 (holding 250) is not reached by this run
    assert np.array_equal(result.labels[4], correction)
    assert 250 not in np.unique(result.labels[5])


def test_cli_forward_from_a_later_painted_frame_ignores_earlier_frames_objects(tmp_path):
    from napari_vos.cli import main

    frames, labels = _video()
    stack = np.zeros(labels.shape, np.uint16)
    stack[0] = labels[0]
    stack[4] = np.where(labels[4] == 250, 0, labels[4])
    tifffile.imwrite(tmp_path / "video.tif", frames, photometric="rgb")
    tifffile.imwrite(tmp_path / "labels.tif", stack)
    code = main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o",
                 str(tmp_path / "out.tif"), "--method", "flow", "--device", "cpu", "--frame", "4",
                 "--direction", "forward"])
    assert code == 0


def test_a_both_way_run_still_refuses_objects_missing_at_start():
    # the design rule stays where the run reaches the other annotation (guard for the fix above)
    frames, labels = _video()
    s = Session(frames, method="flow", device="cpu")
    s.annotate(0, labels[0])
    s.annotate(4, np.where(labels[4] == 250, 0, labels[4]))
    with pytest.raises(ValueError, match="not on the start frame 4"):
        s.run("both", start=4)


# 3. every frame the run reaches is an annotation: nothing is segmented, yet no NothingToPropagate
#    (the widget refuses this case; the engine and the CLI build and fit the method, then report
#    "propagated" with an fps)
def test_every_reached_frame_annotated_is_nothing_to_propagate():
    from napari_vos.session import NothingToPropagate

    frames, labels = _video()
    s = Session(frames, method="flow", device="cpu")
    for t in range(2, 6):
        s.annotate(t, labels[t])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        list(s.propagate("forward", start=2))
    said = [str(w.message) for w in caught if issubclass(w.category, NothingToPropagate)]
    assert said and "reaches only annotated frames (2-5)" in said[0]


def test_the_result_lists_the_objects_the_run_followed_not_one_annotated_mid_run():
    """An id annotated while a run went on is noted (ObjectsNotFollowed) and not followed, but
    Result.object_ids listed it, so its per-object maps had fewer channels than ids."""
    from napari_vos.session import ObjectsNotFollowed

    frames, labels = _video()
    s = Session(frames, method="flow", device="cpu", maps=True)
    s.annotate(0, np.where(labels[0] == 17, 0, labels[0]))
    frames_run = s.propagate("forward")
    next(frames_run)
    s.annotate(3, labels[3])  # 17 is new here
    with pytest.warns(ObjectsNotFollowed):
        for _ in frames_run:
            pass
    result = s.result()
    assert result.object_ids == [3, 250] and s.object_ids == [3, 17, 250]
