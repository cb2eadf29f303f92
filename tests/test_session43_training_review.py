"""Session 43's rehearsal of docs/training-on-gpu.md on the CPU: what would have cost GPU time.

The device tool returns at most 8 files from $OUT, each at most 16 MiB, 64 MiB together
(/work/.library/device/README.md). S2S's light export is 63.0 MiB of fp16 weights (two ResNet-18
encoders and the ConvLSTM memory): five 15 MiB parts, and with weights.sha256, log.jsonl,
train.log and gpu.csv nine files, so one of them (a part, perhaps) would not have come back.
"""
import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu" / "device_train.sh"
MiB = 2**20
S2S_EXPORT_BYTES = 66_102_482  # s2s --config light, as exported in session 43


def _fake_run(tmp_path: Path, weights_bytes: int, log_lines: int = 100) -> tuple[Path, Path, dict]:
    """A finished run folder as device_train.sh leaves it, an empty $OUT, and an nvidia-smi on PATH."""
    run, out, bin_ = tmp_path / "run", tmp_path / "out", tmp_path / "bin"
    for d in (run, out, bin_):
        d.mkdir()
    block = os.urandom(MiB)
    with open(run / "weights.safetensors", "wb") as f:
        for i in range(weights_bytes // MiB):
            f.write(block[i % 7:] + block[:i % 7])
        f.write(block[:weights_bytes % MiB])
    with open(run / "log.jsonl", "w") as f:
        for step in range(1, log_lines + 1):
            f.write(json.dumps({"step": step, "minutes": step / 60, "lr": 1e-4, "loss": 0.123456, "iou": 0.5}) + "\n")
    (run / "train.log").write_text("step=1 loss=0.1\n" * 50000)  # ~800 kB: collect keeps its tail
    smi = bin_ / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'name, memory.used [MiB], utilization.gpu [%]'\necho 'NVIDIA H100 80GB HBM3, 40000 MiB, 97 %'\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "OUT": str(out), "VOS_RUN": str(run), "PATH": f"{bin_}:{os.environ['PATH']}"}
    return run, out, env


def _collect(env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run(["bash", str(SCRIPT), "follow", "0"], env=env, capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _within_the_tools_limits(out: Path) -> None:
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8, sorted(p.name for p in files)
    assert all(p.stat().st_size <= 16 * MiB for p in files), {p.name: p.stat().st_size for p in files}
    assert sum(p.stat().st_size for p in files) <= 64 * MiB


def _weights_rejoin(out: Path, run: Path) -> None:
    joined = b"".join(p.read_bytes() for p in sorted(out.glob("weights.part-*")))
    assert joined == (run / "weights.safetensors").read_bytes()
    assert hashlib.sha256(joined).hexdigest() == (out / "weights.sha256").read_text().strip()


def test_collect_returns_s2s_sized_weights_within_eight_files(tmp_path):
    run, out, env = _fake_run(tmp_path, S2S_EXPORT_BYTES)
    done = _collect(env)
    _within_the_tools_limits(out)
    _weights_rejoin(out, run)
    assert (out / "log.jsonl").read_text() == (run / "log.jsonl").read_text()
    assert (out / "train.log").exists()
    assert "NVIDIA H100" in done.stdout  # gpu.csv did not fit among the 8 files: its line is printed instead


def test_collect_keeps_gpu_csv_when_it_fits(tmp_path):
    run, out, env = _fake_run(tmp_path, 24_726_466)  # FRTM: two parts
    _collect(env)
    _within_the_tools_limits(out)
    _weights_rejoin(out, run)
    assert "NVIDIA H100" in (out / "gpu.csv").read_text()


def test_collect_trims_the_oldest_log_lines_to_keep_the_weights_within_64_mib(tmp_path):
    run, out, env = _fake_run(tmp_path, S2S_EXPORT_BYTES, log_lines=20000)  # ~2 MB of log.jsonl: over 64 MiB
    _collect(env)
    _within_the_tools_limits(out)
    _weights_rejoin(out, run)
    lines = (out / "log.jsonl").read_text().splitlines()
    assert lines and [json.loads(line)["step"] for line in lines] == list(range(20001 - len(lines), 20001))


def test_collect_says_when_the_weights_cannot_come_back(tmp_path):
    run, out, env = _fake_run(tmp_path, 70 * MiB)
    done = _collect(env)
    assert "cannot come back" in done.stdout
    _within_the_tools_limits(out)


def test_travel_size_counts_a_shared_folder_inside_the_checkout_as_the_device_tool_does(tmp_path):
    # /work/.library/device/README.md: what travels is "tracked and untracked-not-ignored files, shared/,
    # carried paths": a shared/ folder inside the checkout goes along even where git ignores it
    (tmp_path / ".gitignore").write_text("/shared/\n/.gpu/\n")
    (tmp_path / "a.txt").write_bytes(b"a" * 100)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "v.bin").write_bytes(b"v" * 5000)
    (tmp_path / ".gpu").mkdir()
    (tmp_path / ".gpu" / "d.bin").write_bytes(b"d" * 700)
    git = dict(cwd=tmp_path, check=True, capture_output=True)
    subprocess.run(["git", "init", "-q"], **git)
    subprocess.run(["git", "add", "a.txt", ".gitignore"], **git)
    from test_gpu_kit import _park_module

    park = _park_module(tmp_path)
    base = 100 + len("/shared/\n/.gpu/\n")
    assert park.travel_size([]) == base + 5000
    assert park.travel_size([".gpu"]) == base + 5000 + 700
    assert park.travel_size(["shared"]) == base + 5000  # named twice, counted once


def test_follow_cut_off_by_the_calls_limit_still_leaves_the_latest_weights_in_out(tmp_path):
    # the device tool kills a call at its limit (timeout_s, or less where less device time is left) and
    # returns what $OUT holds then: `follow` collected only at its end, so a last call sized past the
    # session's device time came back empty and lost everything since the previous call
    import signal
    import time

    run, out, env = _fake_run(tmp_path, 24_726_466)
    fake = subprocess.Popen(["sleep", "60"])  # stands for the training process
    try:
        (run / "pid").write_text(str(fake.pid))
        follow = subprocess.Popen(["bash", str(SCRIPT), "follow", "300"], env={**env, "VOS_COLLECT_EVERY": "1"},
                                  cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        time.sleep(8)
        os.killpg(follow.pid, signal.SIGKILL)  # as the tool ends a call past its limit
        follow.wait(timeout=10)
    finally:
        fake.kill()
        fake.wait()
    _within_the_tools_limits(out)
    _weights_rejoin(out, run)
    assert (out / "log.jsonl").exists()


def test_collect_rewrites_the_parts_only_when_the_export_changed(tmp_path):
    # follow collects every minute: rewriting unchanged parts would open, each minute, a window in which a
    # call cut off at its limit leaves half-written parts (the sha256 check catches it, the weights are lost)
    import time

    run, out, env = _fake_run(tmp_path, 24_726_466)
    _collect(env)
    first = {p.name: p.stat().st_mtime_ns for p in out.glob("weights.*")}
    time.sleep(0.05)
    _collect(env)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("weights.*")} == first
    data = bytearray((run / "weights.safetensors").read_bytes())
    data[:4] = b"next"
    (run / "weights.safetensors").write_bytes(bytes(data))  # the next save's export
    _collect(env)
    _weights_rejoin(out, run)
