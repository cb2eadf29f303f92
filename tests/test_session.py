"""The engine: bad input errors, object bookkeeping, directions, several references, cancel, maps."""
import numpy as np
import pytest

from napari_vos import Session, propagate


def test_shape_mismatch_is_a_clear_error(square_video, random_frtm_checkpoint):
    frames, truth = square_video
    s = Session(frames, checkpoint=random_frtm_checkpoint, device="cpu")
    with pytest.raises(ValueError, match="must match the image"):
        s.annotate(0, np.ones((10, 10), np.int32))
    with pytest.raises(ValueError, match="must match the image"):
        s.annotate_stack(np.zeros((3, 64, 96), np.int32))


def test_empty_labels_and_frames_outside(square_video, random_frtm_checkpoint):
    frames, _ = square_video
    s = Session(frames, checkpoint=random_frtm_checkpoint, device="cpu")
    with pytest.raises(ValueError, match="empty"):
        s.annotate(0, np.zeros(frames.shape[1:3], np.int32))
    with pytest.raises(ValueError, match="outside the stack"):
        s.annotate(6, np.ones(frames.shape[1:3], np.int32))
    with pytest.raises(ValueError, match="empty on every frame"):
        s.annotate_stack(np.zeros(frames.shape[:3], np.int32))
    with pytest.raises(ValueError, match="no annotation"):
        next(s.propagate())
    with pytest.raises(ValueError, match="non-integer"):
        s.annotate(0, np.full(frames.shape[1:3], 0.5))


def test_unknown_method_and_device():
    v = np.zeros((3, 8, 8), np.uint8)
    with pytest.raises(ValueError, match="unknown method"):
        Session(v, method="nope")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            Session(v, device="cuda", method="frtm")


def test_forward_backward_and_ids_are_kept(square_video, random_frtm_checkpoint):
    frames, truth = square_video
    lab = truth[2] * 7  # object id 7 on frame 2
    res = propagate(frames, lab, method="frtm", frame=2, device="cpu", checkpoint=random_frtm_checkpoint, maps=True)
    assert res.labels.shape == truth.shape
    assert set(np.unique(res.labels)) <= {0, 7}
    assert np.array_equal(res.labels[2], lab)
    assert res.frames_done == 5  # every frame but the annotated one, both directions
    assert res.maps["target_scores"].shape[:2] == (6, 1)
    assert res.provenance()["annotated_frames"] == [2]


def test_second_annotation_is_used_as_reference(square_video, random_frtm_checkpoint):
    frames, truth = square_video
    stack = np.zeros_like(truth)
    stack[0], stack[4] = truth[0], truth[4]
    res = propagate(frames, stack, method="frtm", device="cpu", checkpoint=random_frtm_checkpoint)
    assert res.annotated_frames == [0, 4]
    assert np.array_equal(res.labels[4], truth[4])


def test_new_object_on_later_frame_is_explained(square_video, random_frtm_checkpoint):
    frames, truth = square_video
    s = Session(frames, checkpoint=random_frtm_checkpoint, device="cpu")
    s.annotate(0, truth[0])
    s.annotate(3, truth[3] * 2)
    with pytest.raises(ValueError, match="not on the start frame"):
        list(s.propagate())


def test_cancel_stops_after_current_frame(random_frtm_checkpoint):
    from conftest import moving_square_video

    frames, truth = moving_square_video(n_frames=12)
    s = Session(frames, checkpoint=random_frtm_checkpoint, device="cpu")
    s.annotate(0, truth[0])
    seen = []
    for step in s.propagate("forward"):
        seen.append(step.index)
        if step.index == 2:
            s.cancel()
    assert seen == [0, 1, 2]


def test_working_resolution_and_output_size(square_video, random_frtm_checkpoint):
    frames, truth = square_video
    res = propagate(frames, truth[0], device="cpu", checkpoint=random_frtm_checkpoint, max_side=48)
    assert res.labels.shape == truth.shape
    assert res.options["work_size"] == [32, 48]


def test_out_array_streams_results(tmp_path, square_video, random_frtm_checkpoint):
    frames, truth = square_video
    out = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.int32, shape=truth.shape)
    s = Session(frames, checkpoint=random_frtm_checkpoint, device="cpu", out=out)
    s.annotate(0, truth[0])
    s.run()
    assert s.result().labels is out
    with pytest.raises(ValueError, match="out has shape"):
        Session(frames, checkpoint=random_frtm_checkpoint, out=np.zeros((2, 2, 2), np.int32))


@pytest.mark.real_working_size
def test_frtm_enlarges_small_videos_to_the_papers_480p_unless_told_otherwise(square_video, random_frtm_checkpoint):
    frames, truth = square_video  # 64 x 96
    assert Session(frames, device="cpu", checkpoint=random_frtm_checkpoint).work_size == (480, 720)
    assert Session(frames, device="cpu", checkpoint=random_frtm_checkpoint, min_side=None).work_size == (64, 96)
    assert Session(frames, method="flow", device="cpu").work_size == (64, 96)  # flow has no preference
    res = propagate(frames[:2], truth[0], device="cpu", checkpoint=random_frtm_checkpoint, min_side=128)
    assert res.labels.shape == truth[:2].shape and res.options["work_size"] == [128, 192]
    with pytest.raises(ValueError, match="min_side"):
        Session(frames, device="cpu", min_side="big")


def test_labels_take_the_smallest_type_that_holds_the_ids_and_widen_when_needed():
    from napari_vos.session import Session

    video = np.zeros((4, 32, 32), np.uint8)
    labels = np.zeros((32, 32), np.int64)
    labels[4:9, 4:9] = 3
    s = Session(video, method="flow", device="cpu")
    s.annotate(0, labels)
    assert s.labels.dtype == np.uint8
    s.annotate(2, labels)
    labels[20:25, 20:25] = 300
    s.annotate(0, labels)  # an annotation with a larger id widens the stack, keeping frame 2
    assert s.labels.dtype == np.uint16 and s.labels[2, 5, 5] == 3 and s.labels[0, 22, 22] == 300
    result = s.run()
    assert result.labels.dtype == np.uint16 and set(np.unique(result.labels[3])) <= {0, 3, 300}


def test_a_callers_out_array_too_small_for_the_ids_is_a_clear_error():
    from napari_vos.session import Session

    video = np.zeros((3, 16, 16), np.uint8)
    labels = np.zeros((16, 16), np.int32)
    labels[2:6, 2:6] = 256
    s = Session(video, method="flow", device="cpu", out=np.zeros((3, 16, 16), np.uint8))
    with pytest.raises(ValueError, match="cannot hold object id 256"):
        s.annotate(0, labels)
    with pytest.raises(ValueError, match="integer labels array"):
        Session(video, method="flow", device="cpu", out=np.zeros((3, 16, 16), np.float32))
    labels = labels.astype(np.int64)
    labels[2:6, 2:6] = 2**40
    with pytest.raises(ValueError, match="relabel_sequential"):
        Session(video, method="flow", device="cpu").annotate(0, labels)


def test_maps_can_be_handed_out_without_being_kept(square_video):
    """keep_maps=False: every frame's maps are in its FrameResult only (the widget's layers store them)."""
    frames, truth = square_video
    kept, handed = Session(frames, method="flow", device="cpu", maps=True), \
        Session(frames, method="flow", device="cpu", maps=True, keep_maps=False)
    for s in (kept, handed):
        s.annotate(0, truth[0])
    for a, b in zip(kept.propagate("forward"), handed.propagate("forward")):
        assert a.maps.keys() == b.maps.keys()
        for name in a.maps:
            np.testing.assert_array_equal(a.maps[name], b.maps[name])
            np.testing.assert_array_equal(kept.maps[name][a.index], a.maps[name])
    assert kept.maps["flow_magnitude"].shape[0] == len(frames)
    assert handed.maps == {} and handed.result().maps == {}


def test_start_time_is_reported_apart_from_the_frames(square_video, monkeypatch):
    """The method's start on the annotated frame (FRTM's first fit, OSVOS-AT's fine-tuning) is timed
    as ``start_seconds``, once per pass, and kept out of the frames' seconds and fps."""
    import time

    from napari_vos.methods.flow import FlowMethod

    frames, truth = square_video
    original = FlowMethod.start

    def slow_start(self, image, objects):
        time.sleep(0.3)
        original(self, image, objects)

    monkeypatch.setattr(FlowMethod, "start", slow_start)
    res = propagate(frames, truth[2], method="flow", frame=2, device="cpu")  # forward and backward: two starts
    assert res.start_seconds >= 0.6
    assert res.seconds < res.start_seconds
    assert res.provenance()["start_seconds"] == round(res.start_seconds, 3)


def test_provenance_is_json_even_with_hooks_among_the_options():
    import json
    import threading

    from napari_vos.session import Result

    result = Result(labels=np.zeros((2, 4, 4), np.uint8), maps={}, method="osvos_at", checkpoint=None,
                    checkpoint_sha256=None, annotated_frames=[0], object_ids=[1],
                    options={"on_finetune": lambda *a: None, "cancel_event": threading.Event(), "crf": False,
                             "scales": (1.0, 0.5), "work_size": [np.int64(4), 4], "max_side": np.int64(100)},
                    fps=1.0, seconds=1.0, frames_done=1, device="cpu")
    record = json.loads(json.dumps(result.provenance()))
    assert record["options"] == {"crf": False, "scales": [1.0, 0.5], "work_size": [4, 4], "max_side": 100}


def test_bad_sizes_frame_numbers_out_arrays_and_frame_types_are_clear_errors(square_video):
    import torch

    frames, truth = square_video
    for value in (-5, 1, "10", True, 2.5):
        with pytest.raises(ValueError, match="max_side must be a whole number of pixels >= 8"):
            propagate(frames, truth[0], method="flow", device="cpu", max_side=value)
    with pytest.raises(ValueError, match="min_side must be a whole number of pixels >= 8, or None or 'auto'"):
        propagate(frames, truth[0], method="flow", device="cpu", min_side=3)
    with pytest.raises(ValueError, match="flow_side must be a whole number of pixels >= 8"):
        propagate(frames, truth[0], method="flow", device="cpu", flow_side=0)
    assert propagate(frames[:3], truth[0], method="flow", device="cpu", max_side=0).options["max_side"] is None
    s = Session(frames, method="flow", device="cpu")
    for frame in (2.0, "1", True):
        with pytest.raises(ValueError, match="annotated frame must be a whole frame number"):
            s.annotate(frame, truth[0])
    s.annotate(np.int64(0), truth[0])
    with pytest.raises(ValueError, match="start frame must be a whole frame number"):
        next(s.propagate(start=0.0))
    with pytest.raises(ValueError, match="out must be a writable"):
        Session(frames, method="flow", device="cpu", out=[[0]])
    for odd in (frames.astype(np.complex64), frames.astype(object)):
        with pytest.raises(ValueError, match="are not images"):
            Session(odd, method="flow", device="cpu")
    # a torch tensor and big-endian data are read as the numpy frames they hold
    plain = propagate(frames, truth[0], method="flow", device="cpu").labels
    as_tensor = propagate(torch.from_numpy(np.ascontiguousarray(frames)), truth[0], method="flow", device="cpu").labels
    big_endian = propagate(frames.astype(frames.dtype.newbyteorder(">")), truth[0], method="flow", device="cpu").labels
    np.testing.assert_array_equal(as_tensor, plain)
    np.testing.assert_array_equal(big_endian, plain)


def test_a_rerun_reports_its_own_counts_and_an_empty_pass_builds_no_method(square_video, monkeypatch):
    from napari_vos.methods import registry

    frames, truth = square_video
    s = Session(frames, method="flow", device="cpu")
    s.annotate(0, truth[0])
    first = s.run("forward")
    s.annotate(3, truth[3])
    again = s.run("forward")
    assert first.frames_done == len(frames) - 1 and again.frames_done == len(frames) - 1  # not added up
    built = []
    real_create = registry.create
    monkeypatch.setattr(registry, "create", lambda *a, **k: built.append(a) or real_create(*a, **k))
    s = Session(frames, method="flow", device="cpu")
    s.annotate(len(frames) - 1, truth[-1])
    s.run("both")  # the forward pass from the last frame has nothing to do
    assert len(built) == 1


def _full_stack_masks(labels, ids, size):
    """The reference: every object's full-frame one-hot, bilinearly resized, thresholded at 0.5."""
    import torch
    import torch.nn.functional as F

    onehot = torch.from_numpy(np.stack([labels == i for i in ids]).astype(np.float32))
    if tuple(onehot.shape[-2:]) == tuple(size):
        return onehot
    return (F.interpolate(onehot[None], size=size, mode="bilinear", align_corners=False)[0] > 0.5).float()


@pytest.mark.parametrize("size", [(45, 60), (33, 23), (153, 204), (90, 120), (64, 64)])
def test_annotation_masks_are_each_objects_thresholded_bilinear_resize(size):
    import torch

    from napari_vos.nn.aggregation import object_masks

    rng = np.random.default_rng(4)
    labels = np.zeros((90, 120), np.int32)
    yy, xx = np.ogrid[:90, :120]
    ids = [3, 12, 70000]
    for i, (y, x, r) in zip(ids, [(10, 10, 9), (50, 70, 20), (88, 118, 6)]):  # one at the corner
        labels[(yy - y) ** 2 + (xx - x) ** 2 < r * r] = i
    labels[40:42, 0:3] = 12  # a sliver far from the rest of its object
    labels[rng.random(labels.shape) < 0.002] = 3
    masks = object_masks(labels, ids + [999], size)  # 999: an id with no pixel gets an empty mask
    assert masks.shape == (4, *size) and masks.dtype == torch.float32
    assert torch.equal(masks[:3], _full_stack_masks(labels, ids, size)) and not masks[3].any()


def test_the_method_starts_from_the_objects_at_the_working_size(monkeypatch):
    import torch

    from napari_vos.methods import registry

    frames = np.zeros((3, 64, 64), np.uint8)
    labels = np.zeros((64, 64), np.int32)
    labels[11:21, 31:41] = 1  # 10 x 10 at odd offsets: 4 x 4 at 32 px; the half-covered ring (0.5) is left out
    seen = {}
    flow = registry.method_class("flow")
    real = flow.start

    def spy(self, image, objects):
        seen["objects"] = objects.clone()
        return real(self, image, objects)

    monkeypatch.setattr(flow, "start", spy)
    s = Session(frames, method="flow", device="cpu", max_side=32, min_side=None, min_object_side=None)
    s.annotate(0, labels)
    list(s.propagate("forward"))
    assert seen["objects"].shape == (1, 32, 32) and int(seen["objects"].sum()) == 16
    assert torch.equal(seen["objects"], _full_stack_masks(labels, [1], (32, 32)))


def test_a_corrected_frame_is_a_new_reference_and_the_start_follows_the_direction(monkeypatch):
    # pins: an annotated frame met mid-pass goes to method.remember; the default start is the earliest
    # annotation for forward/both and the latest for backward; "both" ends with the backward pass
    from napari_vos.methods import registry

    frames = np.zeros((6, 32, 32), np.uint8)
    early, late = np.zeros((32, 32), np.int32), np.zeros((32, 32), np.int32)
    early[8:16, 8:16] = 1  # 64 pixels on frame 1
    late[8:14, 8:14] = 1  # 36 pixels on frame 4
    flow = registry.method_class("flow")
    real = flow.remember
    remembered = []

    def spy(self, image, objects):
        remembered.append(int(objects.sum()))
        return real(self, image, objects)

    monkeypatch.setattr(flow, "remember", spy)
    s = Session(frames, method="flow", device="cpu", min_side=None, min_object_side=None)
    s.annotate(1, early)
    s.annotate(4, late)
    expected = {"forward": ([1, 2, 3, 4, 5], [36]), "backward": ([4, 3, 2, 1, 0], [64]),
                "both": ([1, 2, 3, 4, 5, 0], [36])}
    for direction, (order, refs) in expected.items():
        remembered.clear()
        steps = list(s.propagate(direction))
        assert [r.index for r in steps] == order, direction
        assert remembered == refs, direction
        assert all(r.annotated == (r.index in (1, 4)) for r in steps)


def test_object_ids_3_and_70000_come_back_as_themselves():
    # pins: the lookup table from the method's channels to the annotated ids holds ids past 65535
    frames = np.zeros((4, 32, 32), np.uint8)
    frames[:, 4:12, 4:12], frames[:, 20:28, 18:28] = 200, 120
    labels = np.zeros((32, 32), np.int32)
    labels[4:12, 4:12], labels[20:28, 18:28] = 3, 70000
    result = propagate(frames, labels, method="flow", device="cpu", direction="forward")
    assert result.labels.dtype == np.int32 and result.object_ids == [3, 70000]
    for t in range(4):  # a still video: every frame keeps the annotation, ids and all
        np.testing.assert_array_equal(result.labels[t], labels)


def test_the_labels_widen_exactly_past_255_and_65535():
    # pins: uint8 holds id 255, uint16 holds 65535; one more widens (label_dtype_for and the session's stack)
    from napari_vos.data.label_types import label_dtype_for

    assert [label_dtype_for(i) for i in (1, 255, 256, 65535, 65536)] == \
        [np.uint8, np.uint8, np.uint16, np.uint16, np.int32]
    video = np.zeros((2, 16, 16), np.uint8)
    labels = np.zeros((16, 16), np.int32)
    for top, dtype in ((255, np.uint8), (256, np.uint16), (65535, np.uint16), (65536, np.int32)):
        labels[2:6, 2:6] = top
        s = Session(video, method="flow", device="cpu")
        s.annotate(0, labels)
        assert s.labels.dtype == dtype and s.labels[0, 3, 3] == top, top
