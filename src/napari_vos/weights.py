"""Checkpoint registry: which trained weights exist, where they are, and that they are intact.

Each entry (checkpoints/registry.json, shipped in the package) records the name, method,
backbone, file, sha256, what it was trained on and its measured scores, like torchvision's
weight enums. Files are safetensors (no pickle). A checkpoint is looked up as: an explicit path;
the package's own checkpoints folder; $NAPARI_VOS_HOME (default ~/.cache/napari-vos), where a
registry entry with a URL is downloaded by pooch on machines with internet. A missing or
corrupt file raises CheckpointError saying which file, where it looked and what to do.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).parent / "checkpoints"
REGISTRY_FILE = PACKAGE_DIR / "registry.json"


class CheckpointError(RuntimeError):
    """A checkpoint could not be found, verified or read."""


class NotDownloaded(CheckpointError):
    """A registered checkpoint with a download address whose file is not fetched yet (listing only)."""


#: where each front end takes a checkpoint file, for messages all three show
GIVE_CHECKPOINT = "the widget's Method options -> checkpoint, checkpoint=PATH in Python, --checkpoint PATH on the command line"


@dataclass
class CheckpointInfo:
    """One registry entry: a checkpoint file, what it is for, how it was trained and what it scored."""

    name: str
    method: str
    backbone: str
    file: str
    sha256: str
    config: str = ""
    url: str | None = None
    training: str = ""
    scores: dict[str, Any] = field(default_factory=dict)
    default: bool = False
    preprocessing: dict[str, Any] = field(default_factory=dict)  # how frames are prepared for it (`preprocessing`)


def preprocessing(method: str) -> dict[str, Any]:
    """How the engine prepares frames for ``method``'s network, as a checkpoint records it (like a
    torchvision weight enum's transforms): colour, intensity scaling, the network's input
    normalisation and the method's working-size preferences."""
    from napari_vos.data.frames import DARK_8BIT_TOP, PERCENTILES
    from napari_vos.methods import registry
    from napari_vos.nn.backbones import IMAGENET_MEAN, IMAGENET_STD

    cls = registry.method_class(method)
    return {
        "channels": "RGB: grey repeated, 2 channels as R and G, alpha dropped",
        "intensity": "uint8 / 255; other types: each channel's percentile range over the stack to [0, 1]",
        # since session 31 (records before it lack the field, and are not compared on it)
        "intensity_exceptions": f"bool as 0 and 1; uint8 whose brightest channel's {PERCENTILES[1]:g}th percentile "
                                f"is below {DARK_8BIT_TOP} as other types",
        "percentiles": list(PERCENTILES),
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        # read as the engine reads them: a method of the protocol alone (no MethodBase) has neither
        "min_side": getattr(cls, "min_working_side", None),
        "min_object_side": getattr(cls, "min_object_side", None),
        "resize": "bilinear, antialiased",
    }


#: the fields of `preprocessing` that set what the network's input values are (the working-size
#: preferences are defaults a user may change: not compared)
INPUT_FIELDS = ("channels", "intensity", "intensity_exceptions", "percentiles", "mean", "std", "resize")


def preprocessing_differences(method: str, recorded: dict[str, Any]) -> list[str]:
    """The input fields of a checkpoint's recorded preprocessing that this version does otherwise."""
    now = preprocessing(method)
    return [f"{k}: {recorded[k]!r} there, {now[k]!r} here" for k in INPUT_FIELDS if k in recorded and recorded[k] != now[k]]


def cache_dir() -> Path:
    """Where downloaded checkpoints are kept: $NAPARI_VOS_HOME (``~`` expanded; set but empty counts
    as unset, not as the current folder), else ~/.cache/napari-vos."""
    home = os.environ.get("NAPARI_VOS_HOME", "")
    return Path(home).expanduser() if home.strip() else Path.home() / ".cache" / "napari-vos"


def _read_registry() -> dict[str, CheckpointInfo]:
    if not REGISTRY_FILE.exists():
        return {}
    entries = json.loads(REGISTRY_FILE.read_text())
    return {e["name"]: CheckpointInfo(**e) for e in entries}


def list_checkpoints(method: str | None = None) -> list[CheckpointInfo]:
    """The registered checkpoints, of one method or of all."""
    return [c for c in _read_registry().values() if method is None or c.method == method]


def default_checkpoint(method: str) -> CheckpointInfo:
    """The checkpoint a method loads when none is named: its entry marked default, else its first."""
    entries = list_checkpoints(method)
    if not entries:
        raise CheckpointError(f"no checkpoint for method {method!r} is registered in {REGISTRY_FILE}; train one "
                              f"with `napari-vos train {method}` and give its file: {GIVE_CHECKPOINT}")
    defaults = [e for e in entries if e.default]
    return (defaults or entries)[0]


def sha256_of(path: str | Path) -> str:
    """The file's SHA-256 as hex, read in 1 MiB chunks (checkpoints are verified against the registry)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _registered_file(info: CheckpointInfo) -> tuple[Path | None, list[Path]]:
    """Where a registered checkpoint's file lies (in the package or the cache), and where it was looked for."""
    looked = [PACKAGE_DIR / info.file, cache_dir() / info.file]
    return next((p for p in looked if p.exists()), None), looked


def registered_at(path: str | os.PathLike[str]) -> CheckpointInfo | None:
    """The registered checkpoint whose file ``path`` is (in the package or the cache), or None."""
    try:
        target = Path(path).resolve()
    except OSError:
        return None
    for info in _read_registry().values():
        if any(p.resolve() == target for p in _registered_file(info)[1]):
            return info
    return None


def _missing(info: CheckpointInfo, looked: list[Path]) -> CheckpointError:
    return CheckpointError(f"checkpoint {info.name!r} (file {info.file}) is missing; looked in "
                           f"{', '.join(str(p.parent) for p in looked)}. Reinstall napari-vos, copy the file "
                           f"into {cache_dir()}, or train it with `napari-vos train {info.method}`.")


def _lookup(name_or_path: str) -> tuple[CheckpointInfo | None, Path]:
    """The registered entry a name means (whatever its case, where no file has that name), or None
    and the file a path names; a CheckpointError for a folder, a missing file or an unknown name."""
    registry = _read_registry()
    name_or_path = os.fsdecode(name_or_path)  # a pathlib.Path or a bytes path too
    if not name_or_path.strip():  # Path("") is ".", the current folder: "is a folder" said nothing useful
        raise CheckpointError(f"checkpoint {name_or_path!r} is empty: give a registered name "
                              f"({', '.join(registry) or 'none registered'}) or a .safetensors file")
    candidate = Path(name_or_path).expanduser()
    if name_or_path not in registry and not candidate.exists():  # names are matched whatever their case
        name_or_path = next((n for n in registry if n.lower() == name_or_path.lower()), name_or_path)
    if name_or_path in registry:
        return registry[name_or_path], candidate
    if candidate.is_dir():
        raise CheckpointError(f"checkpoint {candidate} is a folder; give a .safetensors file inside it")
    if candidate.exists() and not candidate.is_file():  # a pipe would block the read for ever
        raise CheckpointError(f"checkpoint {candidate} is not a regular file (a pipe or a device); give a "
                              ".safetensors file")
    if candidate.suffix == ".safetensors" or candidate.exists():
        if not candidate.exists():
            raise CheckpointError(f"checkpoint file {candidate} does not exist; check the path, or use a "
                                  f"registered name: {', '.join(registry) or '(none registered)'}")
        return None, candidate
    raise CheckpointError(f"unknown checkpoint {name_or_path!r}: not a file and not a registered name "
                          f"({', '.join(registry) or 'none registered'})")


def check_present(name_or_path: str | None, method: str) -> None:
    """A CheckpointError now, without reading the file, if the checkpoint a run would load (``None``:
    the method's default) is not registered, not a file, or registered but its file is missing and
    has no download address; the same errors `resolve` gives when the method is built."""
    info = default_checkpoint(method) if name_or_path is None else _lookup(name_or_path)[0]
    if info is not None and info.method != method:  # the registry says whose it is: no need to read it
        raise wrong_method(info.name, info.method, method)
    if info is not None:
        path, looked = _registered_file(info)
        if path is None and not info.url:
            raise _missing(info, looked)


def wrong_method(checkpoint: str, owner: str | None, method: str) -> CheckpointError:
    """The error for checkpoint ``checkpoint``, made for method ``owner`` (None: it names none), given to ``method``."""
    instead = (f"leave the checkpoint empty for {method}'s shipped one" if list_checkpoints(method)
               else f"train one for {method} (`napari-vos train {method}`) and give its file: {method} ships none")
    remedy = (f"choose method {owner!r} for it" if owner else "it names no method in its metadata, so it is "
              "no napari-vos export") + f", or {instead}"
    return CheckpointError(f"checkpoint {checkpoint} is for method {owner!r}, not '{method}': {remedy}")


def resolve(name_or_path: str | os.PathLike[str], download: bool = True) -> tuple[Path, CheckpointInfo | None]:
    """Find a checkpoint file by registry name or path, verifying the sha256 of registered ones.

    A file given by path is not in the registry, so there is no sha256 to check it against: it is
    loaded as it is, and its sha256 goes into the run's provenance (`load_checkpoint`). A registered
    file not yet downloaded is fetched from its ``url`` (``download=False``: a NotDownloaded error)."""
    info, candidate = _lookup(name_or_path)
    if info is None:
        return candidate, None
    path, looked = _registered_file(info)
    if path is None and info.url and not download:
        raise NotDownloaded(f"not downloaded yet: fetched from {info.url} into {cache_dir()} on first use")
    if path is None and info.url:
        path = _download(info)
    if path is None:
        raise _missing(info, looked)
    digest = sha256_of(path)
    if digest != info.sha256:
        raise CheckpointError(f"checkpoint file {path} is corrupt or changed: sha256 {digest} does not match the "
                              f"registered {info.sha256}. Delete it and reinstall napari-vos or re-download it.")
    return path, info


def _download(info: CheckpointInfo) -> Path:
    """The registered file fetched from its url into `cache_dir` (pooch checks its sha256); any
    failure (offline, a refused folder) is a CheckpointError saying what was fetched and the way round."""
    import pooch

    try:
        return Path(pooch.retrieve(info.url, known_hash=f"sha256:{info.sha256}", fname=info.file, path=cache_dir()))
    except Exception as err:  # noqa: BLE001 - requests', OSError's and pooch's own errors alike
        raise CheckpointError(f"checkpoint {info.name!r} could not be downloaded from {info.url} into {cache_dir()} "
                              f"({type(err).__name__}: {err}); download {info.file} by other means and copy it "
                              "into that folder (or set NAPARI_VOS_HOME to the folder holding it)") from err


def load_checkpoint(name_or_path: str) -> tuple[dict[str, Any], dict[str, str], str, str]:
    """Load tensors (float32) and metadata; returns (state_dict, metadata, name, sha256)."""
    from safetensors import safe_open

    path, info = resolve(name_or_path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises several error types for a bad header
        hint = ""
        if _is_torch_pickle(path):
            hint = (" (it is a PyTorch file written by torch.save, not safetensors: napari-vos reads the safetensors "
                    "files its training exports, `napari-vos train ... --export`)")
        raise CheckpointError(f"checkpoint file {path} could not be read as safetensors: {err}{hint}") from err
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return state, meta, (info.name if info else str(path)), (info.sha256 if info else sha256_of(path))


def _is_torch_pickle(path: Path) -> bool:
    """torch.save's zip archive (or an old-style pickle) by its first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError:
        return False
    return head == b"PK" or head[:1] == b"\x80"


def load_state_dict_file(name_or_path: str) -> dict[str, Any]:
    """The tensors of a checkpoint (registered name or safetensors path), without its metadata."""
    return load_checkpoint(name_or_path)[0]


def _umask() -> int:
    """The process's file-creation mask, read without changing it (os.umask can only set it, which
    would briefly change it for every thread); 0o022 where /proc does not say."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def _sorted_header(blob: bytes) -> bytes:
    """The safetensors bytes with their JSON header's keys sorted, so equal tensors and metadata give
    an equal file (and sha256).

    safetensors' Rust writer keeps the metadata in a randomly seeded hash map, so its order (and the
    file's hash) changes from one write to the next. The header is 8 bytes of length then JSON padded
    with spaces to a multiple of 8; the tensors' byte offsets are relative to the end of the header,
    so reordering its keys leaves the data untouched.
    """
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + blob[8 + n:]


def save_checkpoint(path: str | Path, tensors: dict[str, Any], metadata: dict[str, str]) -> str:
    """Write a safetensors file (atomically: a reader never sees half a file); returns its sha256.

    The same tensors and metadata always give the same bytes (`_sorted_header`)."""
    from safetensors.torch import save

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    blob = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=metadata)
    tmp.write_bytes(_sorted_header(blob))
    os.chmod(tmp, 0o666 & ~_umask())  # safetensors writes owner-only files; a checkpoint is meant to be shared
    tmp.replace(path)
    return sha256_of(path)


def register(info: CheckpointInfo) -> None:
    """Add or replace a registry entry (used when a trained checkpoint is shipped); an entry without
    a preprocessing record gets this version's (`preprocessing`)."""
    if not info.preprocessing:
        info.preprocessing = preprocessing(info.method)
    registry = _read_registry()
    if info.default:
        for other in registry.values():
            if other.method == info.method:
                other.default = False
    registry[info.name] = info
    PACKAGE_DIR.mkdir(parents=True, exist_ok=True)
    REGISTRY_FILE.write_text(json.dumps([asdict(e) for e in registry.values()], indent=2) + "\n")
