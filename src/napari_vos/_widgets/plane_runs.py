"""Runs through several Z planes of a (T, Z, Y, X) image into one output layer, one plane after another.

The methods are 2-D: each plane's painted objects are followed through time on that plane, by a run of
its own (its own annotations, start frame, test-time learning). The first run adds the output layer of
the image's shape, each later one fills its plane of it (`LayerJob(into=...)`). Every plane's layers
are checked before the first runs, so a plane the runs cannot take is refused before anything is
computed. The console's ``propagate_layers(plane="painted")`` and the widget's "every painted Z plane"
share it. No Qt here.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_vos.checks import frame_ranges
from napari_vos.data.label_types import painted_planes
from napari_vos.plane_records import PAINTED, planes_run_record
from napari_vos.plane_resume import check_same_run, planes_and_left, resumable_runs
from napari_vos._widgets.frame_edits import CHECKSUMS, planes_record

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.layers import Image, Labels

    from napari_vos._widgets.layer_job import LayerJob
    from napari_vos.session import Result

__all__ = ["PAINTED", "PlaneRuns", "several_planes"]


def several_planes(plane: Any) -> bool:
    """Whether ``plane=`` asks for runs through several Z planes (``"painted"`` or a list of planes),
    not one plane (an int) or the one on screen (None)."""
    return isinstance(plane, str) or (isinstance(plane, Sequence) and not isinstance(plane, (bytes, bytearray))) \
        or (isinstance(plane, np.ndarray) and plane.ndim == 1)


def _painted_volume(labels: "Labels") -> Any:
    """The array of a (T, Z, Y, X) labels layer; a ValueError where the layer is not one."""
    data = labels.data
    if labels.multiscale or np.ndim(data) != 4:
        raise ValueError(f"'every painted Z plane' reads the planes of a (T, Z, Y, X) labels layer of the image's "
                         f"shape; {labels.name!r} has shape {tuple(np.shape(data[0] if labels.multiscale else data))}")
    return data


def _asked_planes(plane: Any, labels: "Labels | None") -> tuple[list[int], int]:
    """The planes ``plane=`` names (the painted ones for ``"painted"``, else the list's, each once in order)
    and the largest id the labels hold on them (0 where the labels are no (T, Z, Y, X) layer: one (Y, X)
    frame, whose ids the run reads itself), each plane read once."""
    if isinstance(plane, str):
        if plane != PAINTED:
            raise ValueError(f"plane must be a Z plane (an int), a list of them, {PAINTED!r} or None, got {plane!r}")
        if labels is None:
            raise ValueError(f"'every painted Z plane' (plane={PAINTED!r}) runs through the Z planes painted in the "
                             "labels layer: pick one")
        found, top = painted_planes(_painted_volume(labels))
        if not found:
            raise ValueError(f"the labels layer {labels.name!r} is empty on every Z plane: paint at least one object")
        return found, top
    planes = list(plane)
    if not planes or not all(isinstance(z, (int, np.integer)) and not isinstance(z, bool) for z in planes):
        raise ValueError(f"plane as a list names one or more Z planes (ints), got {plane!r}")
    planes = sorted({int(z) for z in planes})
    if labels is None or labels.multiscale or np.ndim(labels.data) != 4:
        return planes, 0
    return planes, painted_planes(labels.data, [z for z in planes if z < int(labels.data.shape[1])])[1]


class PlaneRuns:
    """One `LayerJob` per Z plane, all filling one output layer; the record of them all when they end."""

    def __init__(self, viewer: "napari.Viewer", image: "str | Image", labels: "str | Labels | None", method: str,
                 plane: Any, name: str | None = None, resume: "str | Labels | None" = None,
                 **job_options: Any) -> None:
        """The runs of ``method`` through the Z planes ``plane`` names (`several_planes`) of ``image``, each a
        `LayerJob` of ``job_options`` (frame, direction, maps...), the output named ``name`` or after the
        labels layer and the planes. ``resume``: the output of such runs that stopped, whose finished planes
        are kept (`plane_resume.resumable_runs`) and the others run into it (a plane stopped part-way from its start)."""
        from napari_vos._widgets.layer_job import LayerJob, default_output_name, get_layer

        image = get_layer(viewer, image, "image")
        labels = get_layer(viewer, labels, "labels") if labels is not None else None
        # the output's type holds every plane's ids (the first run makes it)
        asked, top = _asked_planes(plane, labels)
        into = get_layer(viewer, resume, "labels") if resume is not None else None
        self.records: dict[int, dict[str, Any]] = _kept_planes(into, method) if into is not None else {}
        self.planes, left = planes_and_left(asked, self.records, repr(into.name) if into is not None else "")
        self.latest: int | None = None  # the plane whose run ended last

        def make_job(**more: Any) -> LayerJob:
            return LayerJob(viewer, image, labels, method, **job_options, **more)

        run = f"{method}, Z planes {frame_ranges(self.planes)}"
        first = make_job(plane=left[0], ids_up_to=top, name_maps_by_plane=True, **(
            {"into": into} if into is not None else {"name": name or default_output_name(viewer, image, labels, run)}))
        self.jobs = [first]
        try:
            for z in left[1:]:
                self.jobs.append(make_job(plane=z, into=first.output, ids_up_to=top))
        except Exception as err:
            first.discard()
            if isinstance(err, ValueError):  # which plane's layers are refused
                raise ValueError(f"Z plane {z}: {err}") from err
            raise
        self.checksums: list[dict[str, Any]] = []
        if into is not None:  # from here the output is being filled (no record): the kept planes' go to `finish`
            first.check_session = lambda session: check_same_run(self.records, session.result().provenance(),
                                                                 first.direction, repr(into.name))
            self.kept = sorted(self.records)
            self.checksums = _kept_checksums(into.metadata.pop(CHECKSUMS, None), self.kept)
            self.resumed_record: dict[str, Any] | None = into.metadata.pop("napari_vos")
        else:
            self.kept, self.resumed_record = [], None

    @property
    def output(self) -> "Labels":
        return self.jobs[0].output

    def next_job(self, job: "LayerJob") -> "LayerJob | None":
        """The run after ``job`` (None after the last)."""
        at = self.jobs.index(job)
        return self.jobs[at + 1] if at + 1 < len(self.jobs) else None

    def job_ended(self, job: "LayerJob", result: "Result | None") -> None:
        """Keep the record ``job.finish()`` stored (it is replaced by the runs' together in `finish`), so a tool
        reading the output between two planes sees a run still going on, not a finished one."""
        if result is None:
            return
        self.records[int(job.plane)] = self.output.metadata.pop("napari_vos")
        self.checksums.append(self.output.metadata.pop(CHECKSUMS))
        self.latest = int(job.plane)

    def finish(self) -> dict[str, Any] | None:
        """Store the record of the planes run (`planes_run_record`) in the output's metadata, and return it
        (None where none ran; a resumed output then gets its record back, so it can be resumed again)."""
        from napari_vos._widgets.layer_job import MAP_MARKER

        if not self.records:  # a resumed output whose planes all stopped part-way again: its record as it was
            if self.resumed_record is not None:
                self.output.metadata["napari_vos"] = self.resumed_record
            return None
        record = planes_run_record(self.records, self.planes, self.latest)
        if self.kept:
            record["resumed_from"] = {"z_planes_kept": self.kept}
        self.output.metadata["napari_vos"] = record
        if self.checksums:
            self.output.metadata[CHECKSUMS] = planes_record(self.checksums)
        for job in self.jobs:  # each plane's maps carry the runs' record, with their own map entry and plane
            for layer in job.maps_in_viewer():
                layer.metadata["napari_vos"] = {**record, **layer.metadata.get(MAP_MARKER, {}), "z_plane": job.plane}
        return record


def _kept_planes(output: "Labels", method: str) -> dict[int, dict[str, Any]]:
    """The finished planes' records of ``output``, the output of runs through several Z planes of ``method``
    that stopped (`resumable_runs`); a ValueError naming the problem where it is no such output."""
    record = output.metadata.get("napari_vos")
    if "napari_vos_output" in output.metadata and record is None:
        raise ValueError(f"{output.name!r} is still being filled by a run: resume it once the run has stopped")
    return resumable_runs(record, method, repr(output.name))[0]


def _kept_checksums(stored: Any, planes: list[int]) -> list[dict[str, Any]]:
    """The kept ``planes``' entries of the output's stored checksums (`planes_record`'s), as `checksum_record`
    gives them, so a correction painted on a kept plane is still found; none where none were stored (an
    output opened from a file)."""
    if not isinstance(stored, dict) or not isinstance(stored.get("planes"), dict):
        return []
    return [{"dtype": stored["dtype"], "crc": crc, "plane": z} for z in planes
            if (crc := stored["planes"].get(str(z))) is not None]
