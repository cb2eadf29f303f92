"""HDR movies (PQ, HLG) are tone-mapped to the sRGB picture a player shows: codes made here from an
sRGB picture (BT.2408's placement of SDR white at 203 nits) come back as that picture, highlights
roll off below white, and a movie read as stored (tone_map=False) stays as dark as its codes."""
import warnings
from fractions import Fraction

import numpy as np
import pytest

from conftest import moving_square_video
from napari_vos.data.hdr import ToneMapper

#: BT.709 to BT.2020 primaries in linear light (ITU-R BT.2087), the inverse of the reader's matrix
TO_BT2020 = np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]])
PQ, HLG = 16, 18


def linear(srgb8):
    v = np.asarray(srgb8, dtype=np.float64) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def pq_codes(nits):
    m1, m2, c1, c2, c3 = 0.1593017578125, 78.84375, 0.8359375, 18.8515625, 18.6875
    y = (np.clip(nits, 0, 10000) / 10000.0) ** m1
    return ((c1 + c2 * y) / (1 + c3 * y)) ** m2


def hlg_codes(display_nits):
    """BT.2100's inverse OOTF for a 1000-nit display (gamma 1.2), then ARIB STD-B67's OETF."""
    display = np.asarray(display_nits) / 1000.0
    luma = np.maximum(display @ np.array([0.2627, 0.6780, 0.0593]), 1e-12)
    scene = display / luma[..., None] ** (0.2 / 1.2)
    a, b, c = 0.17883277, 0.28466892, 0.55991073
    return np.where(scene <= 1 / 12, np.sqrt(3 * scene), a * np.log(np.maximum(12 * scene - b, 1e-12)) + c)


def hdr_codes(srgb8, transfer):
    """The 16-bit codes of an HDR recording showing ``srgb8`` with its white at the reference white."""
    nits = 203.0 * (linear(srgb8) @ TO_BT2020.T)
    code = pq_codes(nits) if transfer == PQ else hlg_codes(nits)
    return np.round(np.clip(code, 0, 1) * 65535).astype(np.uint16)


def test_the_codes_of_an_srgb_picture_come_back_as_that_picture():
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (40, 50, 3)).astype(np.uint8)
    for transfer in (PQ, HLG):
        shown = ToneMapper(transfer)(hdr_codes(picture, transfer))
        assert shown.dtype == np.uint8 and shown.shape == picture.shape
        below_knee = linear(picture).max(axis=-1) < 0.74  # light kept as it is up to 0.75 of white
        assert below_knee.sum() > 1000
        diff = np.abs(shown.astype(int) - picture)
        assert diff[below_knee].max() <= 1, transfer
        # above the knee the brightest component is rolled off: never brighter, at most a few codes darker
        assert np.all(shown.astype(int).max(-1)[~below_knee] <= picture.astype(int).max(-1)[~below_knee] + 1)
        assert diff[~below_knee].max() <= 16


def test_highlights_brighter_than_white_roll_off_in_order_below_255():
    nits = np.array([50.0, 100.0, 203.0, 406.0, 800.0, 1000.0, 4000.0])
    grey = np.round(pq_codes(nits) * 65535).astype(np.uint16)[:, None].repeat(3, axis=1)
    shown = ToneMapper(PQ)(grey)[:, 0].astype(int)
    assert np.all(np.diff(shown[:-1]) > 0), shown  # up to the 1000-nit peak each highlight brighter than the last
    assert shown[2] >= 240 and shown[-2] == shown[-1] == 255  # reference white near sRGB white, the peak at it
    assert abs(shown[1] - 255 * ((100 / 203) ** (1 / 2.4) * 1.055 - 0.055)) <= 1  # below the knee: as it was
    # a hue kept: a bright saturated red stays red, its green and blue scaled by the same factor
    red = np.round(pq_codes(np.array([[2000.0, 200.0, 100.0]]) @ TO_BT2020.T) * 65535).astype(np.uint16)
    r, g, b = ToneMapper(PQ)(red)[0].astype(int)
    assert r > g > b


def test_tone_mapper_refuses_what_it_cannot_map():
    with pytest.raises(ValueError, match="not an HDR transfer"):
        ToneMapper(1)
    with pytest.raises(ValueError, match="uint16 RGB"):
        ToneMapper(PQ)(np.zeros((4, 4, 3), np.uint8))


av = pytest.importorskip("av")

from test_video_files import write_movie  # noqa: E402


def write_hdr_movie(path, frames, transfer):
    """A lossless 10-bit movie of ``frames`` (sRGB uint8) as an HDR recording with ``transfer``, declared
    as phones declare it (BT.2020 primaries and matrix, limited range)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=Fraction(5))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv444p10le"
        context = stream.codec_context
        context.color_trc, context.colorspace, context.color_primaries, context.color_range = transfer, 9, 9, 1
        for pixels in frames:
            frame = av.VideoFrame.from_ndarray(hdr_codes(pixels, transfer), format="rgb48le")
            for packet in stream.encode(frame.reformat(format="yuv444p10le", dst_colorspace="BT2020")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize("transfer, name", [(PQ, "PQ (HDR10)"), (HLG, "HLG")])
def test_an_hdr_movie_reads_as_the_picture_a_player_shows(tmp_path, transfer, name):
    from napari_vos.data.video_files import HighDynamicRangeMovie, read_video_file

    frames, _ = moving_square_video(n_frames=3, size=(48, 64))
    frames = (frames // 2 + 110).astype(np.uint8)  # a bright scene, whose HDR codes sit well below its sRGB
    movie = write_hdr_movie(tmp_path / "phone.mkv", frames, transfer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shown = np.asarray(read_video_file(movie))
        stored = np.asarray(read_video_file(movie, tone_map=False))
    notes = [str(w.message) for w in caught if issubclass(w.category, HighDynamicRangeMovie)]
    assert shown.dtype == stored.dtype == np.uint8 and shown.shape == stored.shape == frames.shape
    assert np.abs(shown.astype(int) - frames).mean() < 1.5  # the 10-bit codes' rounding, the knee
    assert np.abs(stored.astype(int) - frames).mean() > 8  # as stored: white at about 58 % of the PQ range, 75 % of HLG's
    assert len(notes) == 2 and all(f"HDR video ({name} transfer" in n for n in notes)
    assert "tone-mapped to standard-range sRGB" in notes[0] and "tone_map=False" in notes[0]
    assert "read as stored" in notes[1] and "tonemap=hable" in notes[1]


def test_the_widget_notes_an_hdr_movie_napari_shows_as_stored(tmp_path):
    """napari's own reader opens an HDR movie's codes as they are stored; the widget's movie note says so
    and gives the console line that opens it tone-mapped, which that line does."""
    pytest.importorskip("napari")
    import npe2
    from napari.components import ViewerModel

    from napari_vos._widgets.layer_job import movie_file_note

    npe2.PluginManager.instance().discover()
    frames, _ = moving_square_video(n_frames=3, size=(48, 64))
    movie = write_movie(tmp_path / "phone.mp4", frames, codec="libx265", pix_fmt="yuv420p10le", rate=1,
                        options={"x265-params": "log-level=error"}, transfer=HLG)
    viewer = ViewerModel()
    layer = viewer.open(str(movie), plugin="napari")[0]
    note = movie_file_note(layer)
    assert "the movie phone.mp4 is HDR video (HLG transfer): napari's reader shows its frames as stored" in note
    line = note[note.index("from napari_vos.data.video_files"):]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(line, {"viewer": viewer})  # noqa: S102 - the line the note gives, as a user pastes it
    assert viewer.layers["phone"].data.shape == frames.shape and viewer.layers["phone"].data.dtype == np.uint8


def test_a_standard_movie_gets_no_hdr_note(tmp_path):
    from napari_vos.data.video_files import hdr_transfer_name

    frames, _ = moving_square_video(n_frames=2, size=(48, 64))
    movie = write_hdr_movie(tmp_path / "pq.mkv", frames, PQ)
    assert hdr_transfer_name(movie) == "PQ (HDR10)"
    assert hdr_transfer_name(write_movie(tmp_path / "sdr.mkv", frames)) is None
