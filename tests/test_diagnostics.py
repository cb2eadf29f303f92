"""`napari-vos info`: one report of versions, devices, optional parts, checkpoints and scratch room
for a bug report; a probe that fails says so in its section and the rest is still reported."""
import json
import sys

import pytest

from napari_vos import diagnostics
from napari_vos.cli import main
from napari_vos.weights import list_checkpoints

SECTIONS = ["napari-vos", "python", "machine", "torch", "qt", "movies", "libraries", "checkpoints", "scratch"]


def test_the_report_has_every_section_and_verifies_the_shipped_checkpoints():
    report = diagnostics.environment_report()
    assert list(report) == SECTIONS
    assert report["torch"]["device 'auto' picks"] in ("cpu", "cuda", "mps")
    assert set(report["checkpoints"].values()) == {"ok"}
    assert len(report["checkpoints"]) == len(list_checkpoints())
    assert any(key.startswith("frtm-resnet18-vos (frtm, default)") for key in report["checkpoints"])
    assert report["libraries"]["numpy"][0].isdigit()
    text = diagnostics.format_report(report)
    assert text.splitlines()[0] == "napari-vos:" and "\n  version: " in text and "scratch:\n" in text


def test_a_corrupt_checkpoint_and_a_failing_probe_are_reported_and_the_rest_goes_on(monkeypatch):
    import napari_vos.weights as weights

    monkeypatch.setattr(weights, "sha256_of", lambda path: "0" * 64)

    def broken():
        raise OSError("libtorch_cpu.so: cannot open shared object file")

    monkeypatch.setattr(diagnostics, "_torch", broken)
    report = diagnostics.environment_report()
    assert all(state.startswith("CORRUPT (sha256 differs: ") and state.endswith(".safetensors): reinstall napari-vos")
               for state in report["checkpoints"].values())
    assert report["torch"] == {"error": "OSError: libtorch_cpu.so: cannot open shared object file"}
    assert list(report) == SECTIONS and "version" in report["python"]


def test_missing_optional_and_required_parts_say_what_to_install(monkeypatch):
    from importlib import metadata

    real = metadata.version

    def version(name):
        if name in ("av", "tifffile"):
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "version", version)
    monkeypatch.setitem(sys.modules, "av", None)
    report = diagnostics.environment_report(verify_checkpoints=False)
    assert report["libraries"]["av"] == 'not installed (optional: pip install "napari-vos[video]")'
    assert report["libraries"]["tifffile"].startswith("NOT INSTALLED (napari-vos needs it")
    assert report["movies"]["PyAV"].startswith("not installed: movie files cannot be read or written")
    assert all(state.startswith("present (") and state.endswith("MiB, not verified)")
               for state in report["checkpoints"].values())


def test_the_command_prints_the_report_as_text_or_json(capsys):
    assert main(["info", "--no-verify"]) == 0
    text = capsys.readouterr().out
    assert "torch:\n  version: " in text and "checkpoints:\n" in text
    assert main(["info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report) == SECTIONS and set(report["checkpoints"].values()) == {"ok"}


def test_importing_the_module_loads_no_torch_napari_or_qt():
    import subprocess

    code = ("import sys, napari_vos.diagnostics; "
            "print([m for m in ('torch', 'napari', 'qtpy', 'PyQt5', 'av') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("section", ["qt", "movies"])
def test_each_probe_returns_a_section(section):
    assert isinstance(getattr(diagnostics, f"_{section}")(), dict)


def test_a_missing_checkpoint_says_which_file_and_where_it_was_looked_for(monkeypatch, tmp_path):
    import napari_vos.weights as weights

    monkeypatch.setattr(weights, "_registered_file", lambda info: (None, [tmp_path / "pkg" / info.file,
                                                                         tmp_path / "cache" / info.file]))
    states = diagnostics.environment_report()["checkpoints"]
    frtm = next(state for key, state in states.items() if key.startswith("frtm-resnet18-vos"))
    assert frtm == (f"missing: frtm-resnet18-vos.safetensors is in none of {tmp_path / 'pkg'}, {tmp_path / 'cache'}: "
                    "reinstall napari-vos")
