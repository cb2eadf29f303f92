"""`import napari_vos` must stay light: no torch, napari or Qt."""
import subprocess
import sys


def test_import_does_not_pull_heavy_modules():
    code = ("import sys, napari_vos; heavy = [m for m in ('torch', 'napari', 'qtpy', 'PyQt5', 'torchvision') "
            "if m in sys.modules]; print(heavy); assert heavy == [], heavy")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_lazy_public_names_resolve():
    import napari_vos

    assert callable(napari_vos.propagate)
    assert napari_vos.Session.__name__ == "Session"
