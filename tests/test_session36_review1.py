"""Session 36 review of the day's engine changes: masks kept at a method's input size, the zero-shot hint."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_vos.methods.rvos_network import RVOSConfig, RVOSNetwork, resize_masks
from napari_vos.nn.aggregation import masks_keeping_objects, object_masks

TINY = RVOSConfig(backbone="resnet18", hidden=(16, 8, 8, 8), skip=(16, 16, 8, 8), slots=4)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _touching_rectangles(h: int = 64, w: int = 64) -> tuple[np.ndarray, torch.Tensor]:
    """Two ordinary objects sharing an edge at an odd column (touching cells, a rider on a bike)."""
    labels = np.zeros((h, w), np.int64)
    labels[10:41, 10:31] = 1
    labels[10:41, 31:51] = 2
    objects = torch.stack([torch.from_numpy(labels == 1), torch.from_numpy(labels == 2)]).float()
    return labels, objects


# -- 1. masks_keeping_objects dilates every ordinary object and makes touching objects overlap ---------
def test_masks_keeping_objects_keeps_touching_objects_apart():
    """object_masks (whose rule masks_keeping_objects says it follows) gives a tie pixel claimed by two
    objects to neither; masks_keeping_objects keeps every value of 0.5 for both objects."""
    labels, objects = _touching_rectangles()
    kept = masks_keeping_objects(resize_masks(objects[None], (32, 32))[0])
    engine = object_masks(labels, [1, 2], (32, 32))
    assert int((engine[0] * engine[1]).sum()) == 0
    assert int((kept[0] * kept[1]).sum()) == 0, "the two objects' masks overlap at the network's input"


def test_masks_keeping_objects_does_not_grow_an_ordinary_object():
    """Ties are for objects the strict threshold would mostly drop (a 2-pixel line halved): a 31 x 21
    rectangle halved keeps the strict threshold's mask, as before session 36 and as object_masks does."""
    _, objects = _touching_rectangles()
    resized = resize_masks(objects[:1][None], (32, 32))[0]
    kept = masks_keeping_objects(resized)
    strict = (resized > 0.5).float()
    assert float(kept.sum()) == float(strict.sum()), (
        f"an ordinary object grew from {int(strict.sum())} to {int(kept.sum())} pixels")


def test_masks_keeping_objects_still_keeps_a_thin_line_and_a_spot():
    """What the session-36 change was for, kept by the fix: a 2-pixel line halved (every value 0.5)
    stays a line, a spot smaller than a pixel keeps its peak."""
    obj = torch.zeros(2, 64, 64)
    obj[0, 21:23, 5:60] = 1  # 2 px wide across rows 21-22: halved to rows 10 and 11, every value 0.5
    obj[1, 40, 40] = 1
    kept = masks_keeping_objects(resize_masks(obj[None], (32, 32))[0])
    assert int(kept[0].sum()) >= 20
    assert int(kept[1].sum()) >= 1


def test_rvos_start_masks_of_touching_objects_do_not_overlap():
    """Through the method: RVOS at its paper input (256 x 448) on a 512 x 896 working frame (an exact
    halving) is given overlapping S_(t-1) masks for two touching objects."""
    from napari_vos.methods.rvos import RVOS

    torch.manual_seed(0)
    method = RVOS(RVOSNetwork(TINY).eval(), input_size=(256, 448))
    obj = torch.zeros(2, 512, 896)
    obj[0, 101:181, 201:281] = 1
    obj[1, 101:181, 281:361] = 1
    method.start(torch.rand(3, 512, 896), obj)
    given = method.previous[0]
    assert int((given[0] * given[1]).sum()) == 0, f"{int((given[0] * given[1]).sum())} pixels given to both objects"
    assert float(given[0].sum()) <= 40 * 40 + 1, f"an 80 x 80 object reached the network as {int(given[0].sum())} px"


# -- 2. the zero-shot hint is given by Session.propagate only, not by propagate() / the CLI path --------
def test_propagate_without_labels_names_the_zero_shot_option(tmp_path):
    """docs/methods/rvos.md: a run without zero_shot=True and without an annotation 'is refused with a
    message naming the option'. napari_vos.propagate (and the CLI, through annotated_session) refuses
    it before Session.propagate with 'pick a zero-shot method', which names none."""
    from napari_vos import propagate, weights
    from napari_vos.training.rvos_recipe import RVOSRecipe

    tensors, meta = RVOSRecipe(stage="teacher").export_tensors(RVOSNetwork(TINY))
    weights.save_checkpoint(tmp_path / "rvos.safetensors", tensors, meta)
    with pytest.raises(ValueError, match="zero_shot"):
        propagate(np.zeros((3, 32, 32), np.uint8), None, method="rvos", device="cpu",
                  checkpoint=str(tmp_path / "rvos.safetensors"))
