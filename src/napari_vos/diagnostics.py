"""What this installation is and can do (`napari-vos info`): versions, devices, optional parts,
shipped checkpoints and scratch room, in one report to paste into a bug report.

Each probe stands alone and reports what went wrong instead of raising, so a broken part (a
torch that does not import, a Qt binding missing) shows up as a line of the report rather than
a traceback that hides the rest.
"""
from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
from importlib import metadata
from typing import Any, Callable

__all__ = ["environment_report", "format_report"]

#: distributions whose versions the report lists: what napari-vos needs, then its optional extras
#: (PyAV for movies: [video]; torchvision for ImageNet backbones: [imagenet])
LIBRARIES = ("numpy", "scipy", "scikit-image", "tifffile", "imagecodecs", "zarr", "dask", "pillow", "safetensors",
             "pooch", "napari", "magicgui", "npe2", "qtpy", "psutil")
OPTIONAL = {"av": "video", "torchvision": "imagenet"}


def environment_report(verify_checkpoints: bool = True) -> dict[str, Any]:
    """The report as a dict of sections; ``verify_checkpoints`` hashes each shipped checkpoint file
    (about a second for all of them)."""
    probes: dict[str, Callable[[], Any]] = {
        "napari-vos": _package,
        "python": _python,
        "machine": _machine,
        "torch": _torch,
        "qt": _qt,
        "movies": _movies,
        "libraries": _libraries,
        "checkpoints": lambda: _checkpoints(verify_checkpoints),
        "scratch": _scratch,
    }
    report: dict[str, Any] = {}
    for name, probe in probes.items():
        try:
            report[name] = probe()
        except Exception as err:  # noqa: BLE001 - the report says what failed and goes on
            report[name] = {"error": f"{type(err).__name__}: {err}"}
    return report


def format_report(report: dict[str, Any]) -> str:
    """The report as indented ``key: value`` lines, one section after another."""
    lines: list[str] = []

    def add(value: Any, indent: int) -> None:
        for key, item in value.items():
            if isinstance(item, dict):
                lines.append(f"{' ' * indent}{key}:")
                add(item, indent + 2)
            elif isinstance(item, list):
                lines.append(f"{' ' * indent}{key}: {', '.join(str(v) for v in item) or 'none'}")
            else:
                lines.append(f"{' ' * indent}{key}: {item}")

    add(report, 0)
    return "\n".join(lines)


def _package() -> dict[str, Any]:
    from napari_vos.evaluation.scoring import code_version

    return {"version": code_version(), "location": os.path.dirname(os.path.abspath(__file__))}


def _python() -> dict[str, Any]:
    return {"version": platform.python_version(), "executable": sys.executable, "platform": platform.platform()}


def _machine() -> dict[str, Any]:
    import psutil

    memory = psutil.virtual_memory()
    return {"cpu cores": os.cpu_count(), "memory": f"{memory.total / 2**30:.1f} GiB, "
                                                  f"{memory.available / 2**30:.1f} GiB free"}


def _torch() -> dict[str, Any]:
    import torch

    from napari_vos.session import resolve_device

    cuda = torch.cuda.is_available()
    gpus = [f"cuda:{i} {torch.cuda.get_device_name(i)} "
            f"({torch.cuda.get_device_properties(i).total_memory / 2**30:.0f} GiB)"
            for i in range(torch.cuda.device_count())] if cuda else []
    mps = getattr(torch.backends, "mps", None)
    return {"version": torch.__version__, "built for CUDA": torch.version.cuda or "no (CPU or other build)",
            "CUDA GPUs": gpus, "MPS (Apple GPU)": bool(mps is not None and mps.is_available()),
            "CPU threads": torch.get_num_threads(), "device 'auto' picks": str(resolve_device("auto"))}


def _qt() -> dict[str, Any]:
    import qtpy  # the binding's name and Qt's version; no application is made

    return {"binding": f"{qtpy.API_NAME} {qtpy.PYQT_VERSION or qtpy.PYSIDE_VERSION}", "Qt": qtpy.QT_VERSION,
            "display": os.environ.get("WAYLAND_DISPLAY") or os.environ.get("DISPLAY") or
            ("the system's" if sys.platform in ("win32", "darwin") else "none set (napari needs one; xvfb-run -a)")}


def _movies() -> dict[str, Any]:
    try:
        import av
    except ImportError:
        return {"PyAV": "not installed: movie files cannot be read or written (pip install \"napari-vos[video]\"); "
                        "TIFF stacks, frame folders and animated GIFs can"}
    return {"PyAV": av.__version__, "H.264 encoder (overlay)": "libx264" if "libx264" in av.codecs_available
            else "no libx264 (overlays as MPEG-4 part 2)"}


def _libraries() -> dict[str, Any]:
    found = {}
    for name in (*LIBRARIES, *OPTIONAL):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = (f"not installed (optional: pip install \"napari-vos[{OPTIONAL[name]}]\")" if name in OPTIONAL
                           else "NOT INSTALLED (napari-vos needs it: reinstall napari-vos)")
    return found


def _checkpoints(verify: bool) -> dict[str, Any]:
    from napari_vos.weights import _registered_file, list_checkpoints, sha256_of

    states = {}
    for info in list_checkpoints():
        path, looked = _registered_file(info)
        try:
            if path is None:
                state = (f"missing: {info.file} is in none of {', '.join(str(p.parent) for p in looked)}"
                         + (" (downloadable)" if info.url else ": reinstall napari-vos"))
            elif not verify:
                state = f"present ({path.stat().st_size / 2**20:.0f} MiB, not verified)"
            else:
                state = "ok" if sha256_of(path) == info.sha256 else f"CORRUPT (sha256 differs: {path}): reinstall napari-vos"
        except OSError as err:  # one unreadable file (its permissions, a folder) hid every other state
            state = (f"UNREADABLE ({type(err).__name__}: {err.strerror or err}: {path}): check its permissions, or "
                     "reinstall napari-vos")
        states[f"{info.name} ({info.method}{', default' if info.default else ''})"] = state
    return states


def _scratch() -> dict[str, Any]:
    folder = tempfile.gettempdir()
    return {"TMPDIR (movies decode here)": folder, "free": f"{shutil.disk_usage(folder).free / 2**30:.1f} GiB"}
