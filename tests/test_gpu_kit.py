"""The kit for training on a lent GPU machine: data packed small, the device runner's contract."""
import importlib.util
import os
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from napari_vos.data.readers import open_dataset

ROOT = Path(__file__).resolve().parents[1]


def _pack_module():
    spec = importlib.util.spec_from_file_location("pack_data", ROOT / "scripts" / "gpu" / "pack_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _davis(root: Path, names, size=(120, 80), frames=3):
    rng = np.random.default_rng(0)
    for name in names:
        (root / "JPEGImages" / name).mkdir(parents=True)
        (root / "Annotations" / name).mkdir(parents=True)
        for t in range(frames):
            Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
                root / "JPEGImages" / name / f"{t:05d}.jpg")
            labels = np.zeros((size[1], size[0]), np.uint8)
            labels[20:60, 10 + 10 * t:50 + 10 * t] = 1
            mask = Image.fromarray(labels, mode="P")
            mask.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)
            mask.save(root / "Annotations" / name / f"{t:05d}.png")
    (root / "SOURCE.md").write_text("test data")


def test_pack_shrinks_frames_keeps_labels_and_leaves_out_the_holdout(tmp_path):
    _davis(tmp_path / "src", ["boat", "bear"])
    pack = _pack_module()
    pack.pack_davis(tmp_path / "src", tmp_path / "packed", long_side=60, quality=70)
    seqs = open_dataset(tmp_path / "packed")
    assert [s.name for s in seqs] == ["boat"]  # "bear" is a hold-out sequence
    frame = np.asarray(seqs[0].frames[0])
    assert frame.shape == (40, 60, 3)
    mask = np.asarray(seqs[0].masks[2])
    assert set(np.unique(mask)) == {0, 1}
    assert mask[10:30, 20:25].all() and not mask[:, :10].any()  # the box moved with t, scaled by 0.5
    assert (tmp_path / "packed" / "SOURCE.md").read_text() == "test data"


def test_device_runner_collects_nothing_without_a_run_and_says_so(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OUT": str(out), "VOS_RUN": str(tmp_path / "run")}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu" / "device_train.sh"), "follow", "1"], env=env,
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and "no run in progress" in done.stdout
    assert not list(out.iterdir())
    usage = subprocess.run(["bash", str(ROOT / "scripts" / "gpu" / "device_train.sh")], env=env,
                           capture_output=True, text=True, cwd=ROOT)
    assert usage.returncode == 2 and "start SECONDS" in usage.stdout


def test_device_runner_starts_a_detached_run_returns_its_weights_in_parts_and_stops_it(tmp_path):
    import hashlib
    import sys
    import time

    out, run = tmp_path / "out", tmp_path / "run"
    out.mkdir()
    env = {**os.environ, "OUT": str(out), "VOS_RUN": str(run), "PYTHON": sys.executable}
    script = str(ROOT / "scripts" / "gpu" / "device_train.sh")
    started = subprocess.run(
        ["bash", script, "start", "1", "frtm", "--device", "cpu", "--size", "96x64", "--batch-size", "1",
         "--steps", "100000", "--train-backbone-from", "conv4", "--save-every", "1", "--log-every", "1",
         "--threads", "1"], env=env, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert started.returncode == 0 and "started run" in started.stdout, started.stdout + started.stderr
    pid = int((run / "pid").read_text())
    try:
        deadline = time.time() + 90
        while not (run / "weights.safetensors").exists() and time.time() < deadline:
            time.sleep(1)
        assert (run / "weights.safetensors").exists(), (run / "train.log").read_text()
        stopped = subprocess.run(["bash", script, "stop"], env=env, capture_output=True, text=True, cwd=ROOT,
                                 timeout=180)
        assert stopped.returncode == 0 and "no run in progress" in stopped.stdout, stopped.stdout
    finally:  # never leave a 100000-step run behind
        try:
            os.kill(pid, 9)
            killed = True
        except ProcessLookupError:
            killed = False
    assert not killed  # `stop` had ended it
    parts = sorted(out.glob("weights.part-*"))
    assert parts and all(p.stat().st_size <= 15 * 2**20 for p in parts)
    joined = b"".join(p.read_bytes() for p in parts)
    assert hashlib.sha256(joined).hexdigest() == (out / "weights.sha256").read_text().strip()
    assert (out / "log.jsonl").read_text().strip()
    assert "stopped;" in (run / "train.log").read_text()  # SIGTERM: saved and exported, then ended


def _park_module(root: Path):
    spec = importlib.util.spec_from_file_location("park", ROOT / "scripts" / "gpu" / "park.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.ROOT, module.CHECKPOINTS, module.PARKED = root, root / "ckpt", root / ".gpu-parked"
    return module


def test_park_moves_unneeded_checkpoints_out_of_what_travels_and_restore_checks_them(tmp_path):
    import hashlib
    import json

    import pytest

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    entries = []
    for name, n in (("a", 3000), ("b", 5000), ("c", 7000)):
        data = bytes(range(256)) * (n // 256)
        (ckpt / f"{name}.safetensors").write_bytes(data)
        entries.append({"name": name, "file": f"{name}.safetensors", "sha256": hashlib.sha256(data).hexdigest()})
    (ckpt / "registry.json").write_text(json.dumps(entries))
    (tmp_path / ".gitignore").write_text("/.gpu-parked/\n/.gpu/\n")
    (tmp_path / ".gpu").mkdir()
    (tmp_path / ".gpu" / "data.bin").write_bytes(b"x" * 1000)
    git = dict(cwd=tmp_path, check=True, capture_output=True)
    subprocess.run(["git", "init", "-q"], **git)
    subprocess.run(["git", "add", "-A"], **git)
    park = _park_module(tmp_path)
    before = park.travel_size([])
    assert park.travel_size([".gpu"]) == before + 1000  # carried paths count, ignored ones do not
    assert park.park(["b"]) == ["a", "c"]
    assert park.travel_size([]) == before - (len(bytes(range(256)) * 11) + len(bytes(range(256)) * 27))
    assert (ckpt / "b.safetensors").exists() and not (ckpt / "a.safetensors").exists()
    with pytest.raises(SystemExit, match="not a shipped checkpoint"):
        park.park(["nope"])
    (tmp_path / ".gpu-parked" / "c.safetensors").write_bytes(b"changed")
    with pytest.raises(SystemExit, match="sha256"):
        park.restore()  # the good file comes back; a changed one stays parked, with a clear message
    assert (ckpt / "a.safetensors").exists() and (tmp_path / ".gpu-parked" / "c.safetensors").exists()
    (tmp_path / ".gpu-parked" / "c.safetensors").unlink()
    subprocess.run(["git", "checkout", "--", "ckpt/c.safetensors"], **git)
    assert park.restore() == []
    assert park.travel_size([]) == before and not (tmp_path / ".gpu-parked").exists()
