"""Pixel size, unit and frame interval of a TIFF, so a labels stack written for it keeps them.

A microscope's TIFF says how large a pixel is in one of three places: OME-XML (``PhysicalSizeX``,
``PhysicalSizeZ``, ``TimeIncrement``), ImageJ's description (``unit``, ``spacing``, ``finterval``,
with the pixel size in the resolution tags) or the baseline resolution tags alone (pixels per inch/cm).
The Z step between planes is read for a 3D + time stack opened whole (``scale_from_calibration(cal, 4)``)
and written with (T, Z, Y, X) labels (ImageJ's ``spacing``); a labels TIFF of one plane keeps only the
pixel size and frame interval. ``read_tiff_calibration``
reads whichever is there; ``tiff_calibration_kwargs`` turns it back into ``tifffile.imwrite``
arguments, so Fiji and napari readers show the propagated labels at the image's scale.
tifffile parses the three sources but has no unit-aware summary of them, hence this module.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = ["Calibration", "calibration_from_scale", "scale_from_calibration", "read_tiff_calibration", "tiff_calibration",
           "storable_calibration", "tiff_calibration_kwargs", "length_in"]

# spellings of the micrometre found in ImageJ and OME files
_MICRON = {"micron", "microns", "um", "µm", "μm", "\\u00b5m", "micrometer", "micrometre"}
#: napari's (pint's) long names of the other metric lengths, as this module spells them
_LONG_LENGTHS = {"picometer": "pm", "angstrom": "Å", "nanometer": "nm", "millimeter": "mm", "centimeter": "cm",
                 "meter": "m", "kilometer": "km"}
# baseline TIFF resolution units tifffile writes (its RESUNIT names)
_TIFF_UNITS = {"inch": "INCH", "cm": "CENTIMETER", "mm": "MILLIMETER", "µm": "MICROMETER"}
# metric lengths in metres: a pixel size in one is converted to another the TIFF form can store
_METRES = {"pm": 1e-12, "Å": 1e-10, "nm": 1e-9, "µm": 1e-6, "mm": 1e-3, "cm": 1e-2, "m": 1.0, "km": 1e3}
# TIFF resolutions are rationals of 32-bit integers: pixels per unit from 1 / (2**32 - 1) to 2**32 - 1
_RATIONAL_MAX = 2**32 - 1
#: significant digits a pixel size read back from the resolution tags keeps: 1 / (1 / 0.65) is
#: 0.6499999999999999 in floating point, and no microscope knows its pixel to 12 digits
_SIZE_DIGITS = 12


#: seconds in each time unit a frame interval may be given in (ImageJ's and pint's spellings)
SECONDS_PER_TIME_UNIT = {name: seconds for names, seconds in (
    (("s", "sec", "secs", "second", "seconds"), 1.0), (("ms", "msec", "millisecond", "milliseconds"), 1e-3),
    (("us", "µs", "μs", "microsecond", "microseconds"), 1e-6), (("ns", "nanosecond", "nanoseconds"), 1e-9),
    (("min", "mins", "minute", "minutes"), 60.0), (("h", "hr", "hrs", "hour", "hours"), 3600.0),
    (("d", "day", "days"), 86400.0)) for name in names}
_TIME_UNITS = frozenset(SECONDS_PER_TIME_UNIT)


def ascii_unit(unit: str) -> str:
    """A unit as ImageJ metadata can hold it (tifffile writes that text as ASCII): µ as u, other
    non-ASCII characters as ImageJ's \\uXXXX escapes, which `_unit` reads back."""
    text = unit.replace("µ", "u").replace("μ", "u")
    return "".join(c if ord(c) < 128 else f"\\u{ord(c):04x}" for c in text)


def _unit(name: Any) -> str | None:
    """A unit name as this module spells it: µm for every micrometre spelling; None for none/pixel;
    ImageJ's \\uXXXX escapes decoded."""
    if name is None:
        return None
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), str(name).strip())
    if text.lower() in _MICRON:
        return "µm"
    short = _LONG_LENGTHS.get(text.lower().replace("metre", "meter"))
    if short is not None:  # napari writes "nanometer" where ImageJ writes "nm"
        return short
    if text.lower() in ("", "pixel", "pixels", "none"):
        return None
    return text


@dataclass(frozen=True)
class Calibration:
    """A stack's physical scale: (Y, X) pixel size in ``unit``, time between frames and, for a 3D + time
    stack, the Z step between planes in ``z_unit``. The Z step comes last, so that positional callers are
    unchanged, and is left out of ``==``: calibrations are compared as what a (T, Y, X) labels file keeps
    (`storable_calibration`), which has no Z step to keep."""

    pixel_size: tuple[float, float] | None = None
    unit: str | None = None
    frame_interval: float | None = None
    time_unit: str | None = None
    z_size: float | None = field(default=None, compare=False)
    z_unit: str | None = field(default=None, compare=False)

    @property
    def empty(self) -> bool:
        """No pixel size and no frame interval (what a (T, Y, X) labels file keeps; the Z step is not
        counted, since such a file cannot hold it)."""
        return self.pixel_size is None and self.frame_interval is None

    def describe(self) -> str:
        """A short phrase for messages, e.g. '0.65 x 0.65 µm pixels, 5 s between frames'."""
        parts = []
        if self.pixel_size is not None:
            y, x = self.pixel_size
            parts.append(f"{y:g} x {x:g} {self.unit or 'unit'} pixels")
        if self.frame_interval is not None:
            parts.append(f"{self.frame_interval:g} {self.time_unit or 's'} between frames")
        return ", ".join(parts) if parts else "no calibration"


def calibration_from_scale(scale: Any, units: Any = None) -> Calibration:
    """A napari layer's (T, Y, X) or (Y, X) scale and units as a Calibration: the pixel size when it
    is not 1 or has a unit, the frame interval when the time step is not 1 or has a unit; a (T, Z, Y,
    X) layer's with its Z step too (`_volume_calibration`)."""
    scale = [float(v) for v in (scale if scale is not None else ())]
    units = [str(u) for u in (units if units is not None else ())]
    if len(scale) == 4:
        return _volume_calibration(scale, units or None)
    if len(scale) < 2:
        return Calibration()
    space_unit = _unit(units[-1]) if units else None
    pixel_size = (scale[-2], scale[-1]) if space_unit or scale[-2:] != [1.0, 1.0] else None
    time_unit = _unit(units[0]) if len(units) == 3 else None
    if time_unit is not None and time_unit.lower() not in _TIME_UNITS:  # a Z step (µm) is no frame interval
        return Calibration(pixel_size, space_unit if pixel_size else None)
    timed = len(scale) == 3 and (scale[0] != 1.0 or time_unit is not None)
    return Calibration(pixel_size, space_unit if pixel_size else None, scale[0] if timed else None,
                       time_unit if timed else None)


def _volume_calibration(scale: list[float], units: list[str] | None) -> Calibration:
    """A (T, Z, Y, X) layer's scale and units as a Calibration with its Z step (``z_size`` in ``z_unit``,
    the Z axis read as a length as Y and X are): the frame interval and pixel size as for its (T, Y, X)
    axes; where only the Z step is set (Y and X at 1, no unit), a pixel size of 1 beside it, so that
    the Z step has a pixel to be measured against (ImageJ's ``spacing`` is in the pixel size's unit)."""
    flat = calibration_from_scale([scale[0], *scale[2:]], [units[0], *units[2:]] if units else None)
    z_axis = calibration_from_scale([scale[1]] * 2, [units[1]] * 2 if units else None)
    pixel_size = flat.pixel_size
    if pixel_size is None and z_axis.pixel_size is not None:
        pixel_size = (scale[2], scale[3])
    if pixel_size is None:
        return flat
    return replace(flat, pixel_size=pixel_size, z_size=abs(scale[1]), z_unit=z_axis.unit)


def scale_from_calibration(calibration: Calibration, ndim: int) -> tuple[list[float], list[str]]:
    """The other way round: a (T, Y, X), (Y, X) or (T, Z, Y, X) layer's scale and units for
    ``calibration`` (1 and "pixel" where it says nothing), so a labels file opens where its image
    lies and a 3D + time stack shows its planes at their Z step."""
    if ndim not in (2, 3, 4):
        raise ValueError(f"a calibration places (T, Y, X), (Y, X) or (T, Z, Y, X) data, not {ndim} axes")
    pixel = calibration.pixel_size if calibration.pixel_size is not None else (1.0, 1.0)
    space = calibration.unit or "pixel"
    scale, units = [float(pixel[0]), float(pixel[1])], [space, space]
    if ndim == 4:
        stepped = calibration.z_size is not None
        scale.insert(0, float(calibration.z_size) if stepped else 1.0)  # type: ignore[arg-type]
        units.insert(0, (calibration.z_unit or "pixel") if stepped else "pixel")
    if ndim >= 3:
        timed = calibration.frame_interval is not None
        scale.insert(0, float(calibration.frame_interval) if timed else 1.0)
        units.insert(0, (calibration.time_unit or "s") if timed else "pixel")
    return scale, units


def _positive(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _from_ome(xml: str) -> Calibration | None:
    import tifffile

    pixels = tifffile.xml2dict(xml).get("OME", {}).get("Image", {})
    if isinstance(pixels, list):  # several images: the first series is the one read
        pixels = pixels[0] if pixels else {}
    pixels = pixels.get("Pixels", {})
    size_x, size_y = _positive(pixels.get("PhysicalSizeX")), _positive(pixels.get("PhysicalSizeY"))
    size_z = _positive(pixels.get("PhysicalSizeZ"))
    interval = _positive(pixels.get("TimeIncrement"))
    if size_x is None and interval is None and size_z is None:
        return None
    pixel_size = None
    unit = _unit(pixels.get("PhysicalSizeXUnit", "µm"))
    if size_x is not None:
        # Y may be stored in a unit of its own (X in µm, Y in nm): the pixel size has one unit, X's
        y_unit = _unit(pixels.get("PhysicalSizeYUnit", "µm"))
        in_x_unit = length_in(size_y, y_unit, unit) if size_y is not None else None
        pixel_size = (size_x if size_y is None else in_x_unit if in_x_unit is not None else size_y, size_x)
    return Calibration(pixel_size, unit if pixel_size else None,
                       interval, str(pixels.get("TimeIncrementUnit", "s")) if interval else None,
                       size_z, _unit(pixels.get("PhysicalSizeZUnit", "µm")) if size_z else None)


def _pixel_size_from_tags(page: Any, one_is_a_size: bool = False) -> tuple[float, float] | None:
    """1 / (pixels per unit) from the XResolution/YResolution tags; None when they are absent, or 1
    and ``one_is_a_size`` is not set (a writer's default; in ImageJ's description with a unit, 1 is
    a pixel of one unit, such as 1 µm)."""
    try:
        x_res, y_res = page.resolution
    except (AttributeError, TypeError, ValueError):
        return None
    x_res, y_res = _positive(x_res), _positive(y_res)
    if x_res is None or y_res is None or (x_res == 1 and y_res == 1 and not one_is_a_size):
        return None
    return (_size_from_resolution(y_res), _size_from_resolution(x_res))


def _size_from_resolution(pixels_per_unit: float) -> float:
    """The pixel size a resolution stores, to `_SIZE_DIGITS` significant digits, so that 0.65 written
    comes back as 0.65 rather than the 0.6499999999999999 its reciprocal's reciprocal gives."""
    return float(f"{1.0 / pixels_per_unit:.{_SIZE_DIGITS}g}")


def read_tiff_calibration(path: str | Path) -> Calibration:
    """The calibration of a TIFF's first series: OME first, then ImageJ, then the resolution tags."""
    import tifffile

    from napari_vos.data.damaged_files import reading

    with reading(path, "a TIFF"), tifffile.TiffFile(path) as tif:
        return tiff_calibration(tif)


def tiff_calibration(tif: Any) -> Calibration:
    """`read_tiff_calibration` of an open ``tifffile.TiffFile`` (for a reader that reads more of the file in
    the same opening)."""
    if tif.is_ome and tif.ome_metadata:
        found = _from_ome(tif.ome_metadata)
        if found is not None:
            return found
    page = tif.pages[0]
    if tif.is_imagej:
        meta = tif.imagej_metadata or {}
        unit = _unit(meta.get("unit"))
        # ImageJ's unit "pixel" with a resolution is a pixel size in no named unit (a napari layer
        # scaled without units, as the napari-vos writer saves it); no unit at all: no pixel size
        named = unit is not None or str(meta.get("unit", "")).strip().lower() in ("pixel", "pixels")
        pixel_size = _pixel_size_from_tags(page, one_is_a_size=unit is not None) if named else None
        interval = _positive(meta.get("finterval"))
        spacing = _positive(meta.get("spacing"))  # the Z step, in the unit of the pixel size
        return Calibration(pixel_size, unit if pixel_size else None, interval,
                           (_unit(meta.get("tunit", "s")) or "s") if interval else None,
                           spacing, unit if spacing else None)
    unit_name = getattr(page.resolutionunit, "name", "NONE")
    units = {value: key for key, value in _TIFF_UNITS.items()}
    if unit_name in units:  # 1 pixel per cm, mm or µm is a size (napari-vos writes 1 µm pixels so)
        pixel_size = _pixel_size_from_tags(page, one_is_a_size=unit_name != "INCH")
        # 72 (or 1) pixels per inch is a writer's default (MATLAB, Photoshop), not a pixel size:
        # ImageJ reads it as uncalibrated, and so does napari-vos
        placeholder = unit_name == "INCH" and pixel_size is not None and all(
            abs(v * 72 - 1) < 1e-6 or abs(v - 1) < 1e-9 for v in pixel_size)
        if pixel_size is not None and not placeholder:
            return Calibration(pixel_size, units[unit_name])
    return Calibration()


def _fits_a_rational(size: float) -> bool:
    return 1.0 / _RATIONAL_MAX <= size <= _RATIONAL_MAX


def storable_calibration(calibration: Calibration, imagej: bool, volume: bool = False) -> Calibration:
    """``calibration`` as a TIFF of that form can hold it (what `tiff_calibration_kwargs` writes).

    The ImageJ form holds any unit, the frame interval and, for a (T, Z, Y, X) stack (``volume``), the
    Z step; a baseline TIFF (ids above 65535, 4 GiB and more) holds the pixel size only, in inch, cm,
    mm or µm. A metric pixel size in another
    unit (nm, m, Å) is converted to one the form holds, also where its pixels per unit would not
    fit TIFF's 32-bit rationals (Å-scale pixels given in metres); what cannot be held is left out.
    """
    interval = (calibration.frame_interval, calibration.time_unit) if imagej else (None, None)
    if calibration.pixel_size is None:
        return Calibration(None, None, *interval)
    size, unit = calibration.pixel_size, calibration.unit
    holds = (lambda u: True) if imagej else (lambda u: u in _TIFF_UNITS)
    if holds(unit) and all(_fits_a_rational(v) for v in size):
        return _with_z_step(Calibration(size, unit, *interval), calibration, imagej and volume)
    metres = _METRES.get(unit or "")
    targets = [u for u in (_METRES if imagej else ("cm", "mm", "µm"))
               if metres is not None and all(_fits_a_rational(v * metres / _METRES[u]) for v in size)]
    if not targets:
        return Calibration(None, None, *interval)
    # the unit that gives numbers nearest 1 (0.08 µm rather than 8e-5 mm)
    import math

    best = min(targets, key=lambda u: abs(math.log10(size[1] * metres / _METRES[u])))
    factor = metres / _METRES[best]
    return _with_z_step(Calibration((size[0] * factor, size[1] * factor), best, *interval), calibration,
                        imagej and volume)


def _with_z_step(stored: Calibration, calibration: Calibration, kept: bool) -> Calibration:
    """``stored`` with ``calibration``'s Z step where it is ``kept`` (an ImageJ (T, Z, Y, X) stack's
    ``spacing``), in the unit of the stored pixel size (a metric Z step converted to it); none where the
    Z step's unit cannot be given in the pixel size's (a Z step in pixels beside µm pixels)."""
    if not kept or calibration.z_size is None:
        return stored
    z = length_in(calibration.z_size, calibration.z_unit, stored.unit)
    return stored if z is None else replace(stored, z_size=z, z_unit=stored.unit)


def length_in(value: float, unit: str | None, target: str | None) -> float | None:
    """A length of ``value`` ``unit`` in ``target``: as it is in the same unit (None for both: pixels),
    converted between metric units, None where it cannot be (pixels and µm)."""
    if unit == target:
        return float(value)
    if unit in _METRES and target in _METRES:
        return float(value) * _METRES[unit] / _METRES[target]  # type: ignore[index]
    return None


def tiff_calibration_kwargs(calibration: Calibration, imagej: bool, volume: bool = False) -> dict[str, Any]:
    """``tifffile.imwrite`` keywords that store ``calibration`` (ImageJ hyperstack or baseline TIFF; of a
    (T, Z, Y, X) stack: ``volume``), as `storable_calibration` says the form can hold it."""
    calibration = storable_calibration(calibration, imagej, volume)
    kwargs: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    if calibration.pixel_size is not None:
        y, x = calibration.pixel_size
        kwargs["resolution"] = (1.0 / x, 1.0 / y)
        if imagej:
            metadata["unit"] = "um" if calibration.unit == "µm" else ascii_unit(calibration.unit or "pixel")
        elif calibration.unit in _TIFF_UNITS:
            kwargs["resolutionunit"] = _TIFF_UNITS[calibration.unit]
        else:
            del kwargs["resolution"]  # a unit baseline TIFF cannot name: leave it out rather than mislabel
    if calibration.z_size is not None:  # an ImageJ (T, Z, Y, X) stack's Z step, in the pixel size's unit
        metadata["spacing"] = calibration.z_size
    if imagej and calibration.frame_interval is not None:
        metadata["finterval"] = calibration.frame_interval
        if calibration.time_unit and calibration.time_unit != "s":
            metadata["tunit"] = ascii_unit(calibration.time_unit)
    if metadata:
        kwargs["metadata"] = metadata
    return kwargs
