"""Keep what travels to a lent GPU machine under the device tool's 64 MiB.

The device tool copies the working tree (tracked files, untracked files git does not ignore,
and the ignored paths named in ``carry``), 64 MiB in all. The shipped checkpoints alone are
~123 MiB, so a training call cannot travel with all of them beside the packed data. ``park``
moves every shipped checkpoint but the ones a run needs (``--keep``) into ``.gpu-parked/``,
which git ignores and no call carries; ``restore`` moves them back and checks each against its
registered sha256; ``size`` prints what would travel. Standard library only.

    python3 scripts/gpu/park.py size --carry .gpu                 # bytes that would travel
    python3 scripts/gpu/park.py park --keep frtm-resnet18-vos      # before the device calls
    python3 scripts/gpu/park.py restore                            # after them
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINTS = ROOT / "src" / "napari_vos" / "checkpoints"
PARKED = ROOT / ".gpu-parked"
LIMIT = 64 * 2**20


def _registry() -> list[dict]:
    return json.loads((CHECKPOINTS / "registry.json").read_text())


def _git_files(*args: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z", *args], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / p for p in out.decode().split("\0") if p]


def travel_size(carry: list[str]) -> int:
    """Bytes of the tracked files present, the untracked files git does not ignore, a shared/ folder in the
    checkout (the device tool sends it, ignored or not) and the carried paths."""
    files = set(_git_files("--cached")) | set(_git_files("--others", "--exclude-standard"))
    for c in ["shared", *carry]:
        p = ROOT / c
        files |= {f for f in p.rglob("*")} if p.is_dir() else ({p} if p.exists() else set())
    return sum(f.stat().st_size for f in files if f.is_file() and not f.is_symlink())


def park(keep: list[str]) -> list[str]:
    """Move the shipped checkpoints not named in ``keep`` into .gpu-parked/; returns the names moved.

    A kept checkpoint an earlier ``park`` left in .gpu-parked/ comes back first (its sha256 checked):
    the run needs it in the tree that travels. One found in neither place ends the call."""
    entries = _registry()
    names = {e["name"] for e in entries}
    unknown = sorted(set(keep) - names)
    if unknown:
        raise SystemExit(f"not a shipped checkpoint: {', '.join(unknown)} (shipped: {', '.join(sorted(names))})")
    PARKED.mkdir(exist_ok=True)
    for entry in entries:
        src, parked = CHECKPOINTS / entry["file"], PARKED / entry["file"]
        if entry["name"] not in keep or src.exists():
            continue
        if not parked.exists():
            raise SystemExit(f"{entry['name']} is needed but is in neither {src.parent} nor {PARKED} "
                             "(restore it with git checkout)")
        digest = hashlib.sha256(parked.read_bytes()).hexdigest()
        if digest != entry["sha256"]:
            raise SystemExit(f"{parked}: sha256 {digest} is not the registered {entry['sha256']} "
                             "(restore it with git checkout)")
        shutil.move(str(parked), str(src))
    moved = []
    for entry in entries:
        src = CHECKPOINTS / entry["file"]
        if entry["name"] not in keep and src.exists():
            shutil.move(str(src), str(PARKED / entry["file"]))
            moved.append(entry["name"])
    return moved


def restore() -> list[str]:
    """Move parked checkpoints back, each only if its sha256 is the registered one; returns the names.

    A file whose digest differs stays parked, and the call ends with a message naming it.
    """
    back, bad = [], []
    for entry in _registry():
        src = PARKED / entry["file"]
        if not src.exists():
            continue
        digest = hashlib.sha256(src.read_bytes()).hexdigest()
        if digest != entry["sha256"]:
            bad.append(f"{src}: sha256 {digest} is not the registered {entry['sha256']}")
            continue
        shutil.move(str(src), str(CHECKPOINTS / entry["file"]))
        back.append(entry["name"])
    if bad:
        raise SystemExit("left parked (restore them with git checkout): " + "; ".join(bad))
    if PARKED.exists() and not any(PARKED.iterdir()):
        PARKED.rmdir()
    return back


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("size", help="print the bytes that would travel")
    s.add_argument("--carry", action="append", default=[], help="an ignored path the call carries (repeatable)")
    p = sub.add_parser("park", help="move the checkpoints a run does not need out of the travelling tree")
    p.add_argument("--keep", action="append", default=[], help="a shipped checkpoint the run needs (repeatable)")
    p.add_argument("--carry", action="append", default=[], help="an ignored path the call carries (repeatable)")
    sub.add_parser("restore", help="move the parked checkpoints back, checking their sha256")
    args = ap.parse_args(argv)
    if args.cmd == "park":
        moved = park(args.keep)
        print(f"parked {len(moved)} checkpoint(s) in {PARKED.relative_to(ROOT)}: {', '.join(moved) or 'none'}")
    elif args.cmd == "restore":
        back = restore()
        print(f"restored {len(back)} checkpoint(s): {', '.join(back) or 'none'}")
        return 0
    size = travel_size(args.carry)
    fits = "fits under" if size <= LIMIT else "is OVER"
    print(f"{size / 2**20:.1f} MiB would travel ({fits} the 64 MiB limit)")
    return 0 if size <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
