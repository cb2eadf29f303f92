"""A run making its partial labels file must not lose it to another run's look at whether the file
is in use: `locked` takes the lock for a moment to ask, and a maker whose lock attempt fell in that
moment failed with BlockingIOError and deleted its own new file (CI, session 38: the run that only
asked then made the file and won, and the maker got a raw [Errno 11])."""
import sys
import threading

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock locks: none on Windows")


def _held_for_a_moment(path, seconds=0.1):
    """Another handle holding ``path``'s lock for ``seconds``, as `locked`'s probe does (longer here,
    so the overlap is certain); returns once the lock is held."""
    import fcntl

    held = threading.Event()

    def hold():
        with open(path, "rb") as other:
            fcntl.flock(other.fileno(), fcntl.LOCK_EX)
            held.set()
            threading.Event().wait(seconds)
            fcntl.flock(other.fileno(), fcntl.LOCK_UN)

    threading.Thread(target=hold, daemon=True).start()
    assert held.wait(5)


def test_a_maker_waits_out_a_probe_and_holds_the_lock(tmp_path):
    from napari_vos.data.file_locks import lock_handle, locked

    path = tmp_path / "f"
    path.write_bytes(b"")
    _held_for_a_moment(path)
    with pytest.raises(BlockingIOError):  # no wait: the probe's moment is taken for another run
        lock_handle(open(path, "ab"))
    _held_for_a_moment(path)
    handle = lock_handle(open(path, "ab"), wait=2.0)
    assert handle is not None and locked(path)
    handle.close()


def test_a_partial_file_survives_a_probe_as_it_is_made(tmp_path, monkeypatch):
    import napari_vos.data.partial_labels as pl
    from napari_vos.data.calibration import Calibration

    real = pl.lock_handle

    def probed_first(handle, **kwargs):  # another run asks 'in use?' just as this one locks
        _held_for_a_moment(handle.name)
        return real(handle, **kwargs)

    monkeypatch.setattr(pl, "lock_handle", probed_first)
    out = tmp_path / "out.tif"
    partial = pl.PartialLabels(out, (3, 8, 8), 2, Calibration(), {"method": "flow"})
    assert pl.partial_path(out).exists()
    partial.remove()
