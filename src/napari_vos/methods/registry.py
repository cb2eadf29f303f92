"""Method registry: name -> implementing class (imported lazily), with a one-line description.

``create(name, device=..., checkpoint=..., **options)`` builds a ready method: classes with a
``build`` classmethod load their checkpoint through napari_vos.weights; weight-free ones are
constructed directly. ``TRAITS`` repeats the few class flags the widget and the CLI ask before
running anything (checkpoint, annotation, fine-tuning hooks), so that listing methods imports neither the method
modules nor torch (the dock widget opens without waiting for torch); tests/test_registry.py
checks the table against the classes.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
from dataclasses import dataclass
from typing import Any, Sequence

METHODS: dict[str, str] = {
    "frtm": "napari_vos.methods.frtm:FRTM",
    "flow": "napari_vos.methods.flow:FlowMethod",
    "agame": "napari_vos.methods.agame:AGAME",
    "rgmp": "napari_vos.methods.rgmp:RGMP",
    "s2s": "napari_vos.methods.s2s:S2S",
    "osvos_at": "napari_vos.methods.osvos_at:OSVOSAT",
    "rvos": "napari_vos.methods.rvos:RVOS",
    "cosnet": "napari_vos.methods.cosnet:COSNet",
}

DESCRIPTIONS: dict[str, str] = {
    "frtm": "FRTM: fast target model learned at test time (Gauss-Newton) + segmentation network",
    "flow": "Optical-flow warping of the annotated labels (weight-free baseline)",
    "agame": "A-GAME: generative appearance model (Gaussian mixture, running update) + mask propagation",
    "rgmp": "RGMP: Siamese reference + previous-mask encoder-decoder, multi-scale, no test-time learning; "
            "enlarges small objects (cells) to 64 px (one scale there), so slow there",
    "s2s": "S2S++: ConvLSTM sequence-to-sequence with skip-memory and border-distance classes",
    "osvos_at": "OSVOS-AT: network fine-tuned on the annotated frame, its attention maps transferred to other frames",
    "rvos": "RVOS: ConvLSTM decoder recurrent over objects and frames; one-shot, or zero-shot (zero_shot=True)",
    "cosnet": "COSNet: zero-shot primary object (no annotation), co-attention with N frames sampled from the video",
}

# What the widget's "more options" field shows for each method (typed as name=value pairs); the
# names are real options of the method (tests/test_registry.py builds each method with them).
EXAMPLE_OPTIONS: dict[str, str] = {
    "frtm": 'update_interval=4, n_augmented=10, n_cg_update=10, decode_window="objects"',  # more accurate, slower
    "flow": 'flow_side=128, flow="ilk"',
    "agame": "update_rate=0.0",  # no appearance update: better for objects that keep their look (benchmarks)
    "rgmp": 'window="objects", scales=(1.0,), online_finetune=True',  # windows: many small objects (cells)
    "s2s": "object_chunk=4",
    "osvos_at": "finetune_iterations=400",  # half the fine-tuning time: hold-out 65.4 against 68.0 (benchmarks, session 30)
    "rvos": "zero_shot=True",
    "cosnet": "n_references=5",
}


def example_options(name: str) -> str:
    """A sample of method ``name``'s options as typed in the widget ("" for an unknown method)."""
    return EXAMPLE_OPTIONS.get(name, "")


@dataclass(frozen=True)
class MethodTraits:
    """A method class's flags, known without importing it."""

    needs_checkpoint: bool = True  # runs only with trained weights (class flag ``needs_checkpoint``)
    uses_checkpoint: bool = True  # has a ``build`` that loads weights
    needs_annotation: bool = True  # False: zero-shot (class flag ``needs_annotation``)
    accepts_annotation: bool = True  # class flag ``accepts_annotation``
    zero_shot_option: str | None = None  # an option that, set true, makes it zero-shot (``annotation_needed``)
    reports_finetune: bool = False  # start() takes on_finetune/cancel_event hooks (class flag ``reports_finetune``)


TRAITS: dict[str, MethodTraits] = {
    "frtm": MethodTraits(),
    "flow": MethodTraits(needs_checkpoint=False, uses_checkpoint=False),
    "agame": MethodTraits(),
    "rgmp": MethodTraits(reports_finetune=True),
    "s2s": MethodTraits(),
    "osvos_at": MethodTraits(reports_finetune=True),
    "rvos": MethodTraits(zero_shot_option="zero_shot"),
    "cosnet": MethodTraits(needs_annotation=False, accepts_annotation=False),
}


def traits(name: str) -> MethodTraits:
    """The flags of method ``name``: from ``TRAITS``, or read off the class for a method registered
    without an entry there (which imports it). ValueError for an unknown name."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; registered: {', '.join(METHODS)}")
    if name in TRAITS:
        return TRAITS[name]
    cls = method_class(name)
    return MethodTraits(needs_checkpoint=bool(getattr(cls, "needs_checkpoint", False)),
                        uses_checkpoint=hasattr(cls, "build"),
                        needs_annotation=bool(getattr(cls, "needs_annotation", True)),
                        accepts_annotation=bool(getattr(cls, "accepts_annotation", True)),
                        reports_finetune=bool(getattr(cls, "reports_finetune", False)))


def available_methods(include_untrained: bool = False) -> list[str]:
    """Methods a user can run now: importable, and with a registered checkpoint when they need one.

    Methods whose networks are implemented but not trained and shipped yet are left out unless
    ``include_untrained`` (they still run with an explicit ``checkpoint=PATH``).
    """
    from napari_vos import weights

    names = []
    for name, target in METHODS.items():
        module = target.split(":")[0]
        try:  # a dotted module of a package that is not installed raises rather than answering None
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            continue
        if not include_untrained and traits(name).needs_checkpoint and not weights.list_checkpoints(name):
            continue
        names.append(name)
    return names


def method_class(name: str) -> type:
    """The class that implements method ``name``, imported now (with torch): its class attributes,
    such as ``map_grids`` and ``min_working_side``, say how a run of it works before one is built.
    A ValueError names the registered methods for an unknown ``name``."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; registered: {', '.join(METHODS)}")
    module_name, cls_name = METHODS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise ValueError(f"method {name!r} is registered but its module {module_name} is missing: {err}") from err
    return getattr(module, cls_name)


def needs_annotation(name: str, **options: Any) -> bool:
    """Whether method ``name`` with these options needs an annotated frame (False for zero-shot
    methods, e.g. COSNet, or RVOS with ``zero_shot=True``)."""
    if name in TRAITS:
        t = TRAITS[name]
        return t.needs_annotation and not (t.zero_shot_option is not None and options.get(t.zero_shot_option))
    cls = method_class(name)
    ask = getattr(cls, "annotation_needed", None)
    return bool(ask(options)) if callable(ask) else bool(getattr(cls, "needs_annotation", True))


def zero_shot_hint(name: str) -> str:
    """The words to add where method ``name`` is refused for want of labels: its zero-shot option,
    if it has one (RVOS's ``zero_shot=True``, ``--zero-shot``), else nothing."""
    option = traits(name).zero_shot_option
    if option is None:
        return ""
    return (f"; or pass {option}=True (--{option.replace('_', '-')} on the command line, '{option}=True' under "
            "more options) for its zero-shot configuration, which needs a zero-shot checkpoint and follows no "
            "painted object")


def accepts_annotation(name: str) -> bool:
    """Whether method ``name`` takes annotated frames at all (a zero-shot method may refuse them)."""
    return traits(name).accepts_annotation


_NOT_OPTIONS = frozenset({"self", "cls", "network", "config", "device", "checkpoint"})


def option_names(name: str) -> set[str]:
    """The keyword options method ``name`` takes: the keywords of its ``__init__`` and ``build``,
    plus those it reads from ``**options`` (class attribute ``extra_options``)."""
    cls = method_class(name)
    names = set(getattr(cls, "extra_options", ()))
    for fn in (cls.__init__, getattr(cls, "build", None)):
        if fn is None:
            continue
        for p in inspect.signature(fn).parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in _NOT_OPTIONS:
                names.add(p.name)
    return names


def check_options(name: str, options: dict[str, Any], also: Sequence[str] = ()) -> None:
    """ValueError naming any option method ``name`` does not take (a typo would otherwise be ignored),
    with the closest valid name; ``also``: the caller's own keywords (a Session's max_side, ...),
    which a typo may have meant. Then each value against its keyword's type (methods.option_types)
    and the method's own check of the values, if it has one (``check_option_values``), so a bad
    value fails here and not at the first frame."""
    import difflib

    from napari_vos.methods.option_types import check_option_types

    valid = option_names(name)
    unknown = sorted(set(options) - valid)
    if unknown:
        known = sorted(valid | set(also))
        guesses = [f"{u} (did you mean {close[0]}?)" if (close := difflib.get_close_matches(u, known, n=1)) else u
                   for u in unknown]
        ours = f"; the session's own: {', '.join(also)}" if also else ""
        takes = f"takes {', '.join(sorted(valid))}" if valid else "takes no options"
        raise ValueError(f"unknown option(s) {', '.join(guesses)}; {name} {takes}{ours}")
    check_option_types(method_class(name), options)  # a word for an on/off option, a number for a list
    check_values = getattr(method_class(name), "check_option_values", None)
    if check_values is not None:
        check_values(options)


def create(name: str, device: Any = "cpu", checkpoint: str | None = None, **options: Any) -> Any:
    """Instantiate a method, loading its checkpoint (the registry default when None); a ValueError
    names options the method does not take."""
    cls = method_class(name)
    check_options(name, options)
    if hasattr(cls, "build"):
        return cls.build(device=device, checkpoint=checkpoint, **options)
    if checkpoint is not None:
        raise ValueError(f"method {name!r} uses no checkpoint, but checkpoint={checkpoint!r} was given")
    return cls(device=device, **options)
