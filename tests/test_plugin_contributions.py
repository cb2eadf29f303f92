"""The napari.yaml contributions as a user meets them: the writer through napari's save dialog, a
multiscale labels layer, the PNG-folder output opened in napari, and the Plugins-menu path the
docs give."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from _layers import first_frame_only, sliding_square

pytest.importorskip("napari")
from napari.components import ViewerModel  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs" / "user-guide.md"
README = Path(__file__).resolve().parents[1] / "README.md"


def _save_with_dialog_filter(layer, path):
    """What File > Save Selected Layers does once the user picked the napari-vos file type and typed
    ``path``: napari hands the writer the path as typed (qt_viewer._save_layers_dialog)."""
    try:  # napari's own (private) steps of the dialog: skipped where a napari version moved them
        from napari._qt.qt_viewer import _npe2_decode_selected_filter
        from napari.plugins import _npe2
    except ImportError as err:
        pytest.skip(f"napari's save-dialog helpers are not where this napari keeps them: {err}")

    ext_str, writers = _npe2.file_extensions_string_for_layers([layer])
    ours = next(f for f in ext_str.split(";;") if f.startswith("napari-vos"))
    writer = _npe2_decode_selected_filter(ext_str, ours, writers)
    return _npe2.write_layers(os.fspath(path), [layer], writer=writer)[0]


def test_the_save_dialogs_proposed_name_gets_the_tif_extension(tmp_path):
    """napari's dialog proposes the layer's name without an extension; napari's own writer adds
    .tif, the napari-vos one wrote a file named 'painted' that File > Open then cannot read."""
    import npe2

    npe2.PluginManager.instance().discover()
    v = ViewerModel()
    frames, truth = sliding_square(3, (32, 32))
    layer = v.add_labels(first_frame_only(truth), name="painted")
    written = _save_with_dialog_filter(layer, tmp_path / "painted")
    assert written == [str(tmp_path / "painted.tif")]
    assert [type(x).__name__ for x in v.open(written[0])] == ["Image"]  # napari can open it again


def test_the_writer_never_writes_a_tiff_under_another_extension(tmp_path):
    import npe2

    npe2.PluginManager.instance().discover()
    v = ViewerModel()
    frames, truth = sliding_square(3, (32, 32))
    layer = v.add_labels(first_frame_only(truth), name="painted")
    from napari_vos._widgets.labels_writer import LabelsNotWritten

    try:
        written = _save_with_dialog_filter(layer, tmp_path / "painted.png")
    except LabelsNotWritten:
        written = []
    assert not (tmp_path / "painted.png").exists() or written == []


def test_a_multiscale_labels_layer_is_written_at_full_resolution_with_its_pixel_size(tmp_path):
    """np.asarray of napari's MultiScaleData is its coarsest level: the writer wrote that level
    with the full-resolution level's pixel size."""
    import tifffile

    from napari_vos._widgets.labels_writer import write_labels_tiff
    from napari_vos.data.calibration import read_tiff_calibration

    v = ViewerModel()
    full = np.zeros((3, 32, 32), np.uint8)
    full[0, 4:12, 4:12] = 1
    layer = v.add_labels([full, full[:, ::2, ::2]], name="pyramid", multiscale=True, scale=(1.0, 0.5, 0.5),
                         units=("s", "um", "um"))
    try:
        path = write_labels_tiff(str(tmp_path / "p.tif"), *layer.as_layer_data_tuple()[:2])[0]
    except Exception as refused:  # refusing it by name is fine too  # noqa: BLE001
        assert type(refused).__name__ == "LabelsNotWritten"
        return
    assert tifffile.imread(path).shape == (3, 32, 32)
    assert read_tiff_calibration(path).pixel_size == (0.5, 0.5)


def test_the_png_folder_output_opens_in_napari_with_one_frame_per_png(tmp_path):
    """File > Open on `napari-vos propagate ... -o folder`: napari's folder reader stacks every
    '*.*' file: a visible napari_vos.json was a last frame that failed to load."""
    import tifffile

    from napari_vos.cli import main

    frames, truth = sliding_square(4, (32, 32))
    tifffile.imwrite(tmp_path / "video.tif", frames, photometric="minisblack")
    tifffile.imwrite(tmp_path / "labels.tif", first_frame_only(truth)[:1].astype(np.uint8),
                     photometric="minisblack")
    out = tmp_path / "results"
    assert main(["propagate", str(tmp_path / "video.tif"), str(tmp_path / "labels.tif"), "-o", str(out),
                 "--method", "flow", "--device", "cpu", "--frame", "0"]) == 0
    layer = ViewerModel().open(str(out))[0]
    assert layer.data.shape[0] == 4
    np.asarray(layer.data[-1])  # every frame loads


def test_the_docs_menu_path_is_the_one_napari_shows():
    """napari lists a plugin's only widget as 'Propagate (napari-vos)' directly under Plugins
    (no napari-vos submenu): the docs' 'Plugins → napari-vos → Propagate' is not there."""
    import npe2
    try:
        from napari._qt._qplugins._qnpe2 import _build_widgets_submenu_actions
    except ImportError as err:
        pytest.skip(f"napari's plugin-menu builder is not where this napari keeps it: {err}")

    pm = npe2.PluginManager.instance()
    pm.discover()
    submenu, actions = _build_widgets_submenu_actions(pm.get_manifest("napari-vos"))
    assert submenu == [] and [a.title for a in actions] == ["Propagate (napari-vos)"]
    for doc in (DOCS, README):
        text = doc.read_text(encoding="utf-8")
        assert "Plugins → napari-vos → Propagate" not in text, doc.name


def test_an_output_folder_with_the_records_earlier_name_is_still_an_earlier_output(tmp_path):
    """Folders written before the record was hidden keep being recognised (and replaced) as outputs."""
    import json

    from napari_vos.cli_inputs import check_png_folder
    from napari_vos.data.writers import png_record, write_png_labels

    write_png_labels(tmp_path, np.zeros((2, 8, 8), np.uint8))
    (tmp_path / "napari_vos.json").write_text(json.dumps({"method": "flow"}))
    assert len(check_png_folder(tmp_path)) == 2 and png_record(tmp_path).name == "napari_vos.json"


def test_from_the_console_the_labels_writers_refusal_says_why(tmp_path):
    """napari's layer.save(..., plugin=) drops a writer's ValueError for a bare 'not a valid writer'
    warning: the refusal reaches the user as its own message."""
    import npe2

    from napari_vos._widgets.labels_writer import LabelsNotWritten

    npe2.PluginManager.instance().discover()
    v = ViewerModel()
    layer = v.add_labels(-np.ones((2, 8, 8), np.int32), name="negative")
    with pytest.raises(LabelsNotWritten, match=r"the labels layer 'negative' holds negative ids"):
        layer.save(str(tmp_path / "n.tif"), plugin="napari-vos")
    assert not list(tmp_path.iterdir())
