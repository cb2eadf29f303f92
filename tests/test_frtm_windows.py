"""FRTM's per-object decoder windows: geometry, and the same masks as whole-frame decoding at a fraction of the pixels."""
import numpy as np
import pytest
import torch
from conftest import mean_object_iou, phase_cells_video

from napari_vos.methods.frtm_windows import (ALIGN, Window, common_windows, object_windows, peak_box,
                                             window_around)


def test_window_is_widened_snapped_to_the_stride_and_kept_inside_the_frame():
    w = window_around((100, 120, 40, 50), (480, 640), margin=16)
    assert w == Window(64, 160, 0, 96)
    assert all(v % ALIGN == 0 for v in (w.y0, w.y1, w.x0, w.x1))
    assert window_around((460, 480, 600, 640), (480, 640), margin=64) == Window(384, 480, 512, 640)
    assert window_around(None, (480, 640), margin=16) == Window(0, 480, 0, 640)


def test_common_windows_share_one_size_and_still_hold_each_original():
    frame = (480, 640)
    wins = [Window(0, 64, 0, 64), Window(192, 320, 320, 416), Window(416, 480, 576, 640)]
    grown = common_windows(wins, frame)
    assert len({g.size for g in grown}) == 1 and grown[0].size == (128, 96)
    for g, w in zip(grown, wins):
        assert g.y0 <= w.y0 and g.y1 >= w.y1 and g.x0 <= w.x0 and g.x1 >= w.x1
        assert 0 <= g.y0 and g.y1 <= frame[0] and 0 <= g.x0 and g.x1 <= frame[1]


def test_peak_box_keeps_the_strongest_region_not_every_look_alike():
    scores = torch.zeros(30, 40)
    scores[5:8, 5:8] = 1.0      # the target
    scores[20:22, 30:33] = 0.8  # a look-alike far away
    assert peak_box(scores, scale=16) == (80, 128, 80, 128)
    assert peak_box(torch.full((30, 40), 0.1), scale=16) is None  # nothing confident


def test_object_windows_fall_back_to_the_frame_for_large_or_unknown_objects():
    frame = (480, 640)
    scores = torch.zeros(3, 30, 40)
    scores[0, 10:12, 10:12] = 1.0  # small object
    scores[1] = 1.0                # covers the frame
    wins = object_windows(scores, frame, 16, margin=32, previous_boxes=[(150, 190, 150, 190), None, None])
    assert wins[0].size[0] * wins[0].size[1] < 0.1 * frame[0] * frame[1]
    assert wins[1] == wins[2] == Window(0, 480, 0, 640)


def _cells_video(n_frames=5, size=(320, 320), n_cells=12, seed=3):
    """Twelve phase-contrast cells (radius 8-14 px) in a 320 px field, the case windows are for: many small
    objects, each window a fraction of the frame; frames (T, H, W) uint16, labels (T, H, W)."""
    return phase_cells_video(n_frames, size, n_cells, seed)


def test_windowed_decoding_tracks_as_well_on_fewer_pixels_and_is_opt_in(monkeypatch):
    from napari_vos import propagate
    from napari_vos.methods.frtm_segnet import SegmentationNetwork

    frames, labels = _cells_video()
    k = len(np.unique(labels[0])) - 1
    decoded = []
    original = SegmentationNetwork.forward

    def spy(self, features, scores, out_size):
        decoded.append(scores.shape[0] * out_size[0] * out_size[1])
        return original(self, features, scores, out_size)

    monkeypatch.setattr(SegmentationNetwork, "forward", spy)
    kw = dict(method="frtm", frame=0, device="cpu", direction="forward", min_side=None)
    default = propagate(frames, labels[0], **kw)
    default_pixels, decoded[:] = sum(decoded), []
    assert default_pixels == k * 320 * 320 * (len(frames) - 1)  # the paper's S: every object, whole frame
    windowed = propagate(frames, labels[0], decode_window="objects", **kw)
    assert sum(decoded) < 0.6 * default_pixels  # measured: 0.52 (windows of 160-320 px around 20 px cells)
    # a window changes S's channel attention (global pooling), so the masks differ slightly (measured
    # with the shipped v3: mean IoU 0.84 whole-frame, 0.83 windowed), but the cells are still followed
    assert mean_object_iou(windowed.labels, labels) > mean_object_iou(default.labels, labels) - 0.1
    assert mean_object_iou(windowed.labels, labels) > 0.6


def test_decode_window_options_are_checked():
    from napari_vos.methods.frtm import CONFIGS, FRTM, FRTMNetwork

    with pytest.raises(ValueError, match="decode_window"):
        FRTM(FRTMNetwork(CONFIGS["fast"]), decode_window="crop")
    with pytest.raises(ValueError, match="decode_margin"):
        FRTM(FRTMNetwork(CONFIGS["fast"]), decode_margin=-1)
