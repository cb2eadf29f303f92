"""What a user gets from the sdist or an installed package (session-32 audit): the suite passes
against an installed copy, the sdist carries what its docs name, and a source tree inside another
git repository reports no commit of that repository."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]  # tests/ -> the checkout, or an unpacked sdist


def _installed_copy(tmp_path: Path) -> Path:
    """src/napari_vos copied into a site-packages-like folder (as pip / tox install it: no src/ and no
    pyproject.toml above it), without the checkpoints (the tests below never load one)."""
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    shutil.copytree(REPO / "src" / "napari_vos", site / "napari_vos",
                    ignore=shutil.ignore_patterns("*.safetensors", "__pycache__"))
    return site


# -- finding 1: two tests pass only when napari_vos is imported from the checkout's src/ ------------
@pytest.mark.parametrize("node", [
    "tests/test_eval_cli.py::test_code_version_names_a_commit_only_for_a_checkout",
    "tests/test_training_audit.py::test_park_keep_brings_back_or_refuses_a_checkpoint_parked_earlier",
])
def test_1_the_suite_passes_against_an_installed_package(tmp_path, node):
    """tox (tox.ini: the package built and installed, not editable) and an unpacked sdist tested
    against `pip install .` import napari_vos from site-packages: test_eval_cli asserts the package
    is a checkout, and test_training_audit finds scripts/gpu/park.py from napari_vos.__file__
    (site-packages/../.. -> lib/python3.X/scripts/gpu/park.py, no such file)."""
    site = _installed_copy(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore", node],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert str(site) in subprocess.run(
        [sys.executable, "-c", "import napari_vos; print(napari_vos.__file__)"], env=env, cwd=tmp_path,
        capture_output=True, text=True).stdout  # the copy is the one imported
    assert done.returncode == 0, done.stdout[-3000:]


# -- finding 2: the sdist lacks the apt package list its README and user guide tell you to use ----
def test_2_the_sdist_carries_the_apt_package_list_the_docs_name():
    """README.md and docs/user-guide.md tell a source install to run
    `apt-get install $(grep -v '^#' .ci/apt-packages.txt)`: MANIFEST.in must put it in the sdist."""
    if not (REPO / "MANIFEST.in").is_file():
        pytest.skip("run from the checkout")
    assert ".ci/apt-packages.txt" in (REPO / "README.md").read_text()
    rules = [line.split() for line in (REPO / "MANIFEST.in").read_text().splitlines() if line.strip()]
    assert ["include", ".ci/apt-packages.txt"] in rules or ["graft", ".ci"] in rules


# -- finding 3: a source tree without its own .git inside another repository reports that repo's commit
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_3_code_version_of_a_source_tree_inside_another_repository_names_no_commit(tmp_path):
    """An unpacked sdist (src/napari_vos beside pyproject.toml, no .git of its own) used in place
    (`pip install -e .`, or PYTHONPATH=src) inside some other git repository: `git -C root rev-parse`
    walks up to that outer repository, so every eval/score/bench result file says
    "code": "0.1.0 (<outer commit>+dirty)", a commit that has nothing to do with this code."""
    outer = tmp_path / "analysis"
    outer.mkdir()
    git = dict(cwd=outer, check=True, capture_output=True)
    subprocess.run(["git", "init", "-q"], **git)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"],
                   **git)
    tree = outer / "napari_vos-0.1.0"
    shutil.copytree(REPO / "src" / "napari_vos", tree / "src" / "napari_vos",
                    ignore=shutil.ignore_patterns("*.safetensors", "__pycache__"))
    (tree / "pyproject.toml").write_text("[project]\nname = 'napari-vos'\n")
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    done = subprocess.run([sys.executable, "-c", "import napari_vos; from napari_vos.evaluation.scoring import "
                           "code_version; print(napari_vos.__file__); print(code_version())"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    where, code = done.stdout.strip().splitlines()[-2:]
    assert where.startswith(str(tree)), done.stderr[-2000:]
    import napari_vos

    assert code == napari_vos.__version__, f"the outer repository's commit was reported: {code!r}"
