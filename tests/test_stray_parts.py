"""Stray parts dropped (`napari_vos.stray_parts`, the Session's ``stray_parts="drop"``): each object keeps
the parts of its mask that follow its mask on the frame before, never losing the object."""
from __future__ import annotations

import numpy as np
import pytest
from _layers import first_frame_only, sliding_square

from napari_vos.stray_parts import drop_stray_parts


def _frame_with_a_stray() -> tuple[np.ndarray, np.ndarray]:
    previous = np.zeros((40, 50), np.uint8)
    previous[10:20, 10:20] = 1
    previous[25:30, 30:35] = 2
    labels = previous.copy()
    labels[10:20, 12:22] = 1  # moved 2 px right
    labels[30:36, 40:46] = 1  # a look-alike far away: stray
    labels[5:8, 40:43] = 2  # 2's stray, and 2 itself moved
    return previous, labels


def test_a_part_far_from_the_objects_previous_mask_is_dropped_and_the_rest_kept():
    previous, labels = _frame_with_a_stray()
    out = drop_stray_parts(labels, previous)
    assert out[33, 43] == 0 and out[6, 41] == 0  # the strays
    assert (out[10:20, 12:22] == 1).all() and (out[25:30, 30:35] == 2).all()
    assert labels[33, 43] == 1  # the input is left as it was


def test_a_part_within_reach_follows_and_an_object_with_no_part_near_keeps_its_largest():
    previous = np.zeros((40, 60), np.uint8)
    previous[10:20, 10:20] = 1
    labels = np.zeros_like(previous)
    labels[10:20, 22:30] = 1  # 3 px from the previous mask's edge (column 19 -> 22): follows
    labels[30:32, 50:52] = 1  # small and far: stray
    out = drop_stray_parts(labels, previous)
    assert (out[10:20, 22:30] == 1).all() and out[31, 51] == 0
    jumped = np.zeros_like(previous)
    jumped[2:12, 40:50] = 1  # moved far: no part near, the largest kept
    jumped[30:32, 50:52] = 1
    out = drop_stray_parts(jumped, previous)
    assert (out[2:12, 40:50] == 1).all() and out[31, 51] == 0


def test_the_session_drops_stray_parts_only_when_asked_and_records_it():
    from napari_vos import propagate

    frames, truth = sliding_square(5, (64, 64))
    kept = propagate(frames, truth[0], method="flow", device="cpu")
    dropped = propagate(frames, truth[0], method="flow", device="cpu", stray_parts="drop")
    assert "stray_parts" not in kept.options and dropped.options["stray_parts"] == "drop"
    assert dropped.provenance()["options"]["stray_parts"] == "drop"
    np.testing.assert_array_equal(dropped.labels[0], truth[0])  # the annotation as painted
    with pytest.raises(ValueError, match="stray_parts must be 'keep'"):
        propagate(frames, truth[0], method="flow", device="cpu", stray_parts="yes")


def test_a_method_whose_output_flares_elsewhere_loses_the_flare(monkeypatch):
    """The Session drops a part the method put far from the object (a look-alike) on every frame."""
    from napari_vos import Session
    from napari_vos.methods.flow import FlowMethod

    frames, truth = sliding_square(5, (64, 64))
    original = FlowMethod.step

    def flaring(self, image):
        step = original(self, image)
        step.probs[:, 2:6, 2:6] = 1.0  # a confident blob in the corner, far from the square
        return step

    monkeypatch.setattr(FlowMethod, "step", flaring)
    for stray_parts, corner in (("keep", 1), ("drop", 0)):
        session = Session(frames, method="flow", device="cpu", stray_parts=stray_parts)
        session.annotate(0, truth[0])
        labels = session.run("forward").labels
        assert all(labels[t, 3, 3] == corner for t in range(1, 5)), stray_parts
        assert all((labels[t] == 1).sum() >= (truth[t] == 1).sum() * 0.8 for t in range(1, 5))


def test_the_option_reaches_the_session_from_the_command_line(tmp_path):
    import tifffile

    from napari_vos.cli import main
    from napari_vos.data.writers import read_tiff_provenance

    frames, truth = sliding_square(4, (48, 48))
    tifffile.imwrite(tmp_path / "v.tif", frames)
    tifffile.imwrite(tmp_path / "first.tif", first_frame_only(truth)[0])
    assert main(["propagate", str(tmp_path / "v.tif"), str(tmp_path / "first.tif"), "-o", str(tmp_path / "o.tif"),
                 "--method", "flow", "--device", "cpu", "--option", "stray_parts=drop"]) == 0
    assert read_tiff_provenance(tmp_path / "o.tif")["options"]["stray_parts"] == "drop"
