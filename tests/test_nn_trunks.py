"""The torch-only trunks (nn.resnet, nn.vgg), the augmentation warps (nn.warp) and the ImageNet loader's errors."""
import sys

import pytest
import torch

from napari_vos.nn import warp
from napari_vos.nn.backbones import ResNetFeatures
from napari_vos.nn.resnet import ResNetTrunk
from napari_vos.nn.vgg import vgg16_features


@pytest.mark.parametrize("name,dilate,channels,stride", [
    ("resnet18", False, 512, 32), ("resnet34", False, 512, 32),
    ("resnet50", False, 2048, 32), ("resnet50", True, 2048, 16)])
def test_resnet_features_strides_and_channels(name, dilate, channels, stride):
    net = ResNetFeatures(name, dilate_last=dilate).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 64, 96))
    assert out["conv5"].shape == (1, channels, 64 // stride, 96 // stride)
    assert out["conv2"].shape[-2:] == (16, 24)


def test_basic_block_resnets_refuse_dilation_and_unknown_names_are_named():
    with pytest.raises(ValueError, match="resnet50 or resnet101"):
        ResNetTrunk("resnet18", dilate_last=True)
    with pytest.raises(ValueError, match="resnet18"):
        ResNetTrunk("resnet7")


def test_resnet_parameter_names_follow_torchvision_layout():
    keys = set(ResNetTrunk("resnet18").state_dict())
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.conv2.weight", "layer2.0.downsample.0.weight",
            "layer4.1.bn2.bias"} <= keys
    assert not any(k.startswith("layer1.0.downsample") for k in keys)  # identity shortcut there
    feats = vgg16_features()
    assert [i for i, m in enumerate(feats) if isinstance(m, torch.nn.MaxPool2d)] == [4, 9, 16, 23, 30]


def test_trunks_match_torchvision_when_it_is_installed():
    tvm = pytest.importorskip("torchvision.models", exc_type=ImportError)
    x = torch.rand(1, 3, 64, 64)
    for name, dilate in (("resnet18", False), ("resnet50", True)):
        ref = getattr(tvm, name)(replace_stride_with_dilation=[False, False, dilate]).eval()
        mine = ResNetTrunk(name, dilate_last=dilate).eval()
        mine.load_state_dict({k: v for k, v in ref.state_dict().items() if not k.startswith("fc.")})
        with torch.no_grad():
            a = ref.layer4(ref.layer3(ref.layer2(ref.layer1(ref.maxpool(ref.relu(ref.bn1(ref.conv1(x))))))))
            b = mine.layer4(mine.layer3(mine.layer2(mine.layer1(mine.maxpool(mine.relu(mine.bn1(mine.conv1(x))))))))
        assert torch.allclose(a, b)


def _dot(h=21, w=21, y=10, x=15):
    img = torch.zeros(1, h, w)
    img[0, y, x] = 1.0
    return img


def _where(img):
    """Pixels at (within float error of) the brightest value."""
    return [tuple(p) for p in (img[0] > img.max() - 1e-4).nonzero().tolist()]


def test_affine_translation_rotation_scale_move_pixels_where_expected():
    assert torch.equal(warp.affine(_dot(), 0.0, (0.0, 0.0), 1.0), _dot())
    assert _where(warp.affine(_dot(), 0.0, (3.0, -2.0), 1.0)) == [(8, 18)]  # x right 3, y up 2
    assert _where(warp.affine(_dot(), 90.0, (0.0, 0.0), 1.0)) == [(15, 10)]  # right of centre -> below: clockwise
    assert _where(warp.affine(_dot(x=12), 0.0, (0.0, 0.0), 2.0)) == [(10, 14)]  # twice as far from the centre
    assert _where(warp.affine(_dot(y=4, x=4), 180.0, (0.0, 0.0), 1.0, center=(4.0, 4.0))) == [(4, 4)]


def test_affine_keeps_leading_dims_and_dtype_and_fills_outside_with_zero():
    x = torch.ones(2, 3, 16, 16)
    out = warp.affine(x, 0.0, (8.0, 0.0), 1.0)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out[..., :, :7].abs().max()) == 0.0 and float(out[..., :, 9:].min()) == 1.0


def test_gaussian_blur_keeps_constants_and_mass():
    flat = torch.full((3, 12, 12), 0.4)
    assert torch.allclose(warp.gaussian_blur(flat, 1.5, 5), flat)
    spot = torch.zeros(1, 15, 15)
    spot[0, 7, 7] = 1.0
    blurred = warp.gaussian_blur(spot, 1.5, 5)
    assert abs(float(blurred.sum()) - 1.0) < 1e-5 and float(blurred.max()) < 0.2
    with pytest.raises(ValueError, match="odd"):
        warp.gaussian_blur(spot, 1.0, 4)


def test_imagenet_weights_without_torchvision_say_how_to_get_them(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    with pytest.raises(RuntimeError, match=r"napari-vos\[imagenet\]"):
        ResNetFeatures("resnet18", weights="imagenet")
