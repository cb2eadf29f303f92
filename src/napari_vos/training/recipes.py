"""Recipe lookup for `napari-vos train METHOD`: builds a method's recipe from command-line options."""
from __future__ import annotations

from typing import Any


TRAINABLE = ("frtm", "rgmp", "agame", "s2s", "osvos_at", "rvos", "cosnet")

#: the recipe field that --clip-frames sets, for the methods trained on clips of a fixed length
CLIP_FIELDS = {"agame": "n_frames", "rvos": "clip_length"}


def make_recipe(method: str, size: tuple[int, int] | None = None, real_dirs: list[str] | None = None,
                synthetic_fraction: float = 0.5, batch_size: int | None = None, config: str | None = None,
                backbone_weights: str | None = None, init_checkpoint: str | None = None,
                train_backbone_from: str | None = None, clip_frames: int | None = None,
                synthetic_cells: float = 0.0, photometric: float = 0.0) -> Any:
    """The training recipe of one method, with the given data and sizes (None keeps its defaults).

    ``clip_frames``: frames per training clip, for the methods trained on fixed-length clips
    (A-GAME: the paper's 8, later 14; RVOS: 5); an error for the others. ``synthetic_cells``: the
    share of the synthetic videos that are microscopy time-lapses (`clips.SyntheticCellSource`).
    ``photometric``: the chance that a training video's intensities are changed
    (`photometric.photometric_change`).
    """
    recipe = _recipe(method, size, real_dirs, synthetic_fraction, batch_size, config, backbone_weights,
                     init_checkpoint, train_backbone_from, clip_frames)
    recipe.synthetic_cells = synthetic_cells  # checked by VideoMix's setter
    recipe.photometric = photometric  # the same
    return recipe


def _recipe(method: str, size: tuple[int, int] | None, real_dirs: list[str] | None, synthetic_fraction: float,
            batch_size: int | None, config: str | None, backbone_weights: str | None, init_checkpoint: str | None,
            train_backbone_from: str | None, clip_frames: int | None) -> Any:
    """The recipe dataclass of one method, built from the options every recipe shares."""
    kwargs: dict[str, Any] = {"real_dirs": list(real_dirs or []), "synthetic_fraction": synthetic_fraction,
                              "backbone_weights": backbone_weights, "init_checkpoint": init_checkpoint}
    if clip_frames is not None:
        if method not in CLIP_FIELDS:
            raise ValueError(f"--clip-frames applies to {' and '.join(CLIP_FIELDS)} (trained on fixed-length clips), "
                             f"not to {method!r}")
        kwargs[CLIP_FIELDS[method]] = int(clip_frames)
    if size is not None:
        kwargs["size"] = size
    if batch_size is not None:
        kwargs["batch_size"] = batch_size
    if config is not None:
        kwargs["config"] = config
    if method == "frtm":
        from napari_vos.training.frtm_recipe import FRTMRecipe

        if train_backbone_from is not None:
            kwargs["train_backbone_from"] = None if train_backbone_from == "none" else train_backbone_from
        return FRTMRecipe(**kwargs)
    if method == "rgmp":
        from napari_vos.training.rgmp_recipe import RGMPRecipe

        return RGMPRecipe.from_options(train_backbone_from=train_backbone_from, **kwargs)
    if method == "agame":
        from napari_vos.training.agame_recipe import AGAMERecipe

        if train_backbone_from is not None:
            kwargs["train_backbone_from"] = None if train_backbone_from == "none" else train_backbone_from
        return AGAMERecipe(**kwargs)
    if method == "s2s":
        from napari_vos.training.s2s_recipe import S2SRecipe

        if train_backbone_from is not None:
            raise ValueError("s2s trains its encoder and initializer end to end; --train-backbone-from does not apply")
        return S2SRecipe(**kwargs)
    if method == "osvos_at":
        from napari_vos.training.osvos_at_recipe import OSVOSATRecipe

        return OSVOSATRecipe(train_backbone_from=train_backbone_from, **kwargs)
    if method == "rvos":
        from napari_vos.training.rvos_recipe import RVOSRecipe

        return RVOSRecipe.from_options(train_backbone_from=train_backbone_from, **kwargs)
    if method == "cosnet":
        from napari_vos.training.cosnet_recipe import COSNetRecipe

        if train_backbone_from is not None:
            kwargs["train_backbone_from"] = None if train_backbone_from == "none" else train_backbone_from
        return COSNetRecipe(**kwargs)
    raise ValueError(f"no training recipe for method {method!r} (trainable: {', '.join(TRAINABLE)})")
