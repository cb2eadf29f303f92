"""Recipe lookup for `napari-vos train METHOD`: builds a method's recipe from command-line options."""
from __future__ import annotations

import importlib
from typing import Any


#: each trainable method's recipe class ("module:Class", imported when used), as `registry.METHODS`
#: holds the methods: a new recipe is one entry here (a `clips.VideoMix` dataclass with the
#: `loop.Recipe` members; its ``from_options`` and ``clip_frames_field`` take the shared options)
RECIPES = {
    "frtm": "napari_vos.training.frtm_recipe:FRTMRecipe",
    "rgmp": "napari_vos.training.rgmp_recipe:RGMPRecipe",
    "agame": "napari_vos.training.agame_recipe:AGAMERecipe",
    "s2s": "napari_vos.training.s2s_recipe:S2SRecipe",
    "osvos_at": "napari_vos.training.osvos_at_recipe:OSVOSATRecipe",
    "rvos": "napari_vos.training.rvos_recipe:RVOSRecipe",
    "cosnet": "napari_vos.training.cosnet_recipe:COSNetRecipe",
}
TRAINABLE = tuple(RECIPES)


def recipe_class(method: str) -> Any:
    """The recipe class of a trainable method; a ValueError naming the trainable ones for another."""
    if method not in RECIPES:
        raise ValueError(f"no training recipe for method {method!r} (trainable: {', '.join(TRAINABLE)})")
    module, _, name = RECIPES[method].partition(":")
    return getattr(importlib.import_module(module), name)


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
    from napari_vos.training.clips import VideoMix

    if (synthetic_cells or photometric) and not isinstance(recipe, VideoMix):  # it would ignore them, recorded as used
        raise ValueError(f"the {method} recipe draws no VideoMix videos: --synthetic-cells and --photometric do not "
                         "apply to it")
    recipe.synthetic_cells = synthetic_cells  # checked by VideoMix's setter
    recipe.photometric = photometric  # the same
    return recipe


def _recipe(method: str, size: tuple[int, int] | None, real_dirs: list[str] | None, synthetic_fraction: float,
            batch_size: int | None, config: str | None, backbone_weights: str | None, init_checkpoint: str | None,
            train_backbone_from: str | None, clip_frames: int | None) -> Any:
    """The recipe dataclass of one method, built from the options every recipe shares."""
    cls = recipe_class(method)
    kwargs: dict[str, Any] = {"real_dirs": list(real_dirs or []), "synthetic_fraction": synthetic_fraction,
                              "backbone_weights": backbone_weights, "init_checkpoint": init_checkpoint}
    if clip_frames is not None:
        field = getattr(cls, "clip_frames_field", None)
        if field is None:
            clipped = [m for m in TRAINABLE if getattr(recipe_class(m), "clip_frames_field", None)]
            raise ValueError(f"--clip-frames applies to {' and '.join(clipped)} (trained on fixed-length clips), "
                             f"not to {method!r}")
        kwargs[field] = int(clip_frames)
    if size is not None:
        kwargs["size"] = size
    if batch_size is not None:
        kwargs["batch_size"] = batch_size
    if config is not None:
        kwargs["config"] = config
    return cls.from_options(train_backbone_from=train_backbone_from, **kwargs)
