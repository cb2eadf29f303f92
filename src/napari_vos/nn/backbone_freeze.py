"""Leading backbone stages kept fixed in training (the recipes' ``train_backbone_from``).

A recipe names the first backbone stage that trains; the stages before it get no gradients
(``freeze_leading``). Whether a fixed stage also keeps its batch-norm statistics is each
method's choice (``keep_statistics``: A-GAME and OSVOS-AT do, FRTM and RGMP do not), and
``resnet_features`` runs a ResNet backbone with its fixed stages outside autograd (cheaper on CPU).
Here in nn/ rather than training/ because A-GAME's network applies it in its own ``train()``.
"""
from __future__ import annotations

from typing import Collection, Iterable, Mapping, Sequence

import torch
from torch import nn

RESNET_STAGES = ("stem", "conv2", "conv3", "conv4", "conv5")


def named_stages(backbone: nn.Module, names: Sequence[str] = RESNET_STAGES) -> dict[str, nn.Module]:
    """name -> stage module, in order, of a backbone holding its stages as attributes (``ResNetFeatures``)."""
    return {name: getattr(backbone, name) for name in names}


def leading_stages(names: Sequence[str], first: str | None) -> list[str]:
    """The stage names before ``first`` (None: all of them)."""
    names = list(names)
    if first is not None and first not in names:
        raise ValueError(f"backbone stage {first!r} is not one of {names}")
    return names if first is None else names[:names.index(first)]


def freeze(stages: Mapping[str, nn.Module], names: Iterable[str]) -> None:
    """Turn off the gradients of the named stages."""
    for name in names:
        stages[name].requires_grad_(False)


def freeze_leading(stages: Mapping[str, nn.Module], first: str | None) -> list[str]:
    """Turn off the gradients of the stages before ``first`` (None: all of them); returns their names."""
    frozen = leading_stages(list(stages), first)
    freeze(stages, frozen)
    return frozen


def keep_statistics(stages: Mapping[str, nn.Module], frozen: Iterable[str]) -> None:
    """Fixed stages keep their batch-norm statistics: eval mode, whatever mode the rest is in."""
    for name in frozen:
        stages[name].eval()


def resnet_features(backbone: nn.Module, images: torch.Tensor, frozen: Collection[str]) -> dict[str, torch.Tensor]:
    """``ResNetFeatures`` conv2..conv5 maps of images (N, 3, H, W) in [0, 1]; ``frozen`` stages run without autograd."""
    x = (images - backbone.mean) / backbone.std
    out: dict[str, torch.Tensor] = {}
    for name in RESNET_STAGES:
        with torch.set_grad_enabled(torch.is_grad_enabled() and name not in frozen):
            x = getattr(backbone, name)(x)
        if name != "stem":
            out[name] = x
    return out


class FrozenStagesKeepStatistics:
    """Mixin for a network (an ``nn.Module`` with ``backbone`` and ``config.deep_layer``) whose fixed
    leading backbone stages keep their batch-norm statistics while the rest trains (A-GAME, COSNet).

    conv5_x runs only when it is the (dilated) deep layer, so only then does it count as a stage.
    """

    _frozen: list[str]

    def backbone_stages(self) -> dict[str, nn.Module]:
        """The backbone stages that run, in order."""
        deep = getattr(self.config, "deep_layer", "conv5")  # type: ignore[attr-defined]
        return named_stages(self.backbone, RESNET_STAGES if deep == "conv5" else RESNET_STAGES[:4])  # type: ignore[attr-defined]

    def _make_stride16_backbone(self, config: object, weights: str | None) -> int:
        """Set ``self.backbone``: a ResNet whose deep features are at stride 16, conv5_x dilated when it
        is ``config.deep_layer``, dropped when conv4_x is; returns the deep features' channels."""
        from napari_vos.nn.backbones import ResNetFeatures, feature_channels

        deep = getattr(config, "deep_layer")
        if deep not in ("conv4", "conv5"):
            raise ValueError(f"deep_layer must be 'conv4' or 'conv5' (dilated), got {deep!r}")
        self._frozen = []
        dilate = deep == "conv5"
        self.backbone = ResNetFeatures(getattr(config, "backbone"), weights=weights, dilate_last=dilate)
        if not dilate:
            self.backbone.conv5 = nn.Identity()  # never run: conv4_x is already at stride 16
        _, _, c4, c5 = feature_channels(getattr(config, "backbone"))
        return c5 if dilate else c4

    def trainable_backbone(self, first: str | None, initialised: bool = False) -> list[str]:
        """Freeze the backbone stages before ``first`` (None: all; "auto": the deep stage trains when
        the backbone was ``initialised`` from weights, everything otherwise); returns the frozen names."""
        if first == "auto":
            first = getattr(self.config, "deep_layer") if initialised else "stem"  # type: ignore[attr-defined]
        self._frozen = freeze_leading(self.backbone_stages(), first)
        return self._frozen

    def train(self, mode: bool = True):  # noqa: ANN201 - returns self, as nn.Module.train
        """Frozen backbone stages keep their batch-norm statistics (eval mode) while the rest trains."""
        super().train(mode)  # type: ignore[misc]
        keep_statistics(self.backbone_stages(), getattr(self, "_frozen", []))
        return self


class FreezableBatchNorm:
    """Mixin for an ``nn.Module``: with ``freeze_batchnorm`` set, every batch-norm layer stays in eval
    mode (fixed statistics) when the network trains (S2S, RVOS: small batches of long clips)."""

    freeze_batchnorm: bool = False

    def train(self, mode: bool = True):  # noqa: ANN201 - returns self, as nn.Module.train
        """Like nn.Module.train, but batch-norm layers stay in eval mode when ``freeze_batchnorm`` is set."""
        super().train(mode)  # type: ignore[misc]
        if mode and self.freeze_batchnorm:
            for m in self.modules():  # type: ignore[attr-defined]
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self
