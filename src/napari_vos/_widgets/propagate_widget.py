"""The "Propagate" dock widget: pick layers, frame, method and options; run, watch, cancel.

A thin Qt shell over `LayerJob` (layer checks, output layers, provenance) and the engine's
`Session.propagate()` generator. The work runs in a napari `thread_worker`; every yielded frame
is written into the output Labels layer in the GUI thread and advances the progress bar, so the
viewer stays responsive. Cancel asks the engine (`cancel()`) to stop, which happens before the
next frame; the worker's generator then ends by itself (a worker `quit()` would leave it suspended,
holding the run). Errors are shown (notification + status line), never
raised into Qt.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QEvent, Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from napari_vos._widgets import exit_guard
from napari_vos.gl_guard import guard_triton
from napari_vos._widgets.layer_job import (DIRECTIONS, LayerJob, current_frame, image_levels, is_map_layer,
                                           is_output, is_unfinished_output, labels_level, level_layer_shapes,
                                           level_volumes, video_problem)
from napari_vos._widgets.plane_runs import PAINTED, PlaneRuns
from napari_vos._widgets.options import parse_options
from napari_vos._widgets.redraw_pacer import RedrawPacer
from napari_vos.checks import frame_ranges
from napari_vos.memory_errors import out_of_memory_advice
from napari_vos.methods import registry
from napari_vos.nn.precision import PRECISIONS
from napari_vos.plane_resume import kept_runs

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["PropagateWidget", "available_devices", "NO_LABELS"]

NO_LABELS = "none (zero-shot methods)"  # the labels choice of a run without annotation
# the item data marking that entry: a labels layer may bear its text as its name
_NO_LABELS_ENTRY = "napari-vos: no labels layer"


def available_devices() -> list[str]:
    """'auto' plus every torch device usable on this machine."""
    import torch

    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def _iterate(job: LayerJob) -> Any:
    """The worker's generator: the engine's frames, one by one.

    Errors are kept on the job rather than raised: superqt's generator worker swallows a
    RuntimeError (CheckpointError is one) as "worker deleted" instead of emitting ``errored``.
    """
    try:
        yield from job.steps()
    except Exception as err:  # noqa: BLE001 - reported by the widget when the worker finishes
        job.error = err
    finally:
        exit_guard.untrack(job)  # its engine work is over (Python exiting now need not cancel it)


class DeviceCombo(QComboBox):
    """'auto' and 'cpu' at once; the accelerators (cuda, mps) are looked up when the list is first
    opened, or first stepped through by keys or the wheel, since that imports torch (seconds) and the
    dock should open without waiting for it."""

    def __init__(self) -> None:
        super().__init__()
        self.addItems(["auto", "cpu"])
        self._probed = False

    def probe(self) -> None:
        """Add the accelerators torch sees (once)."""
        if self._probed:
            return
        self._probed = True
        for name in available_devices():
            if self.findText(name) < 0:
                self.addItem(name)

    def showPopup(self) -> None:  # noqa: N802 - Qt's name
        self.probe()
        super().showPopup()

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name: arrow keys pick without a popup
        self.probe()
        super().keyPressEvent(event)

    def wheelEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        self.probe()
        super().wheelEvent(event)


def _connect(pairs: list[tuple[Any, Any]], on: bool) -> None:
    """Connect each (signal, slot) pair (on), or disconnect it."""
    for signal, slot in pairs:
        if on:
            signal.connect(slot)
        else:
            signal.disconnect(slot)


def _speed(fps: float) -> str:
    """Frames per second, or seconds per frame below one frame a second (0.1 frames/s says little)."""
    if fps >= 1 or fps <= 0:
        return f"{fps:.1f} frames/s"
    return f"{1 / fps:.1f} s/frame"


def _working_at(job: LayerJob) -> str:
    """", at 773x773 working size" when the method runs at another size than the image's (enlarged
    or reduced: see Session.work_size), so a slow enlarged run explains itself; ", on level 2
    (512x512)" when a multiscale image was read at one of its levels; else ""."""
    note = ""
    if job.image.multiscale:
        note = f", on level {job.level} ({job.frame_shape[1]}x{job.frame_shape[0]})"
    session = job.session
    if session is None or tuple(session.work_size) == tuple(job.frame_shape):
        return note
    h, w = session.work_size
    return f"{note}, at {w}x{h} working size"


#: said once, with the first finished run: where the objects' paths and numbers are (napari adds the plugin name)
WHAT_NEXT = ("; Layers > Track > Centroid tracks (napari-vos) draws each object's path, Layers > Measure > "
             "Object measurements (CSV)... writes their sizes, positions and intensities as CSV tables (also the "
             "save type napari-vos object measurements), and File > IO Utilities > Overlay movie... draws them "
             "over the video in a movie to show")


class PropagateWidget(QWidget):
    """Dock widget: propagate a painted Labels layer through an Image layer's frames."""

    def __init__(self, napari_viewer: "napari.Viewer") -> None:
        super().__init__()
        guard_triton()  # before anything imports torchvision: see gl_guard.py
        from napari_vos.data.frames import DEFAULT_MAX_SIDE

        self.viewer = napari_viewer
        self.job: LayerJob | None = None
        self.runs: PlaneRuns | None = None  # with 'every painted Z plane': the planes' runs, ``job`` the one going on
        # the output of stopped runs through the painted Z planes, and what they were run with, for Resume
        self._stopped_planes: tuple[Any, tuple[Any, ...]] | None = None
        self._plane_settings: tuple[Any, ...] = ()
        self.worker: Any = None
        self._error: BaseException | None = None
        # the layers the user picked, kept as layers so that a pick follows its layer when renamed;
        # "labels" may also be NO_LABELS when the user chose it (not when it was the only entry)
        self._picks: dict[str, Any] = {"image": None, "labels": None}
        self._ticked: list[Any] = []  # the ticked channel layers, likewise
        self._refreshing = False
        self._showing_mismatch = False  # the status line holds a layer-mismatch message
        # the image and its frame under the time slider when the annotated frame last followed them:
        # only a new image or another frame under the slider moves it (not a method change, a layer
        # event, another axis's slider or the end of a run), so a frame the user typed stays
        self._frame_image: Any = None
        self._slider_frame: int | None = None
        self._closed_mid_run = False  # the dock closed while a run went on (_stop_on_close)
        self._told_what_next = False  # the first finished run's notification names the tracks and measurements
        # what was typed in the checkpoint and options fields, per method (a method change swaps them)
        self._typed: dict[str, tuple[str, str]] = {}
        self._method_shown: str | None = None
        # polls the job's fine-tuning progress (OSVOS-AT's start), which no frame reports
        self._finetune_timer = QTimer(self)
        self._finetune_timer.setInterval(200)
        self._finetune_timer.timeout.connect(self._show_finetune)
        # adds the run's map layers one per event-loop turn (`_add_next_map_layer`); a child of the
        # widget, so it goes when the widget does
        self._map_timer = QTimer(self)
        self._map_timer.setSingleShot(True)
        self._map_timer.setInterval(0)
        self._map_timer.timeout.connect(self._add_next_map_layer)
        self._pacer = RedrawPacer()  # how often a run redraws its layers (spaced out in 3D view)
        # after a run that ended before its map layers were all added: one per turn, then the run's end
        self._tail_timer = QTimer(self)
        self._tail_timer.setSingleShot(True)
        self._tail_timer.setInterval(0)
        self._tail_timer.timeout.connect(self._add_map_layers_then_finish)

        self.image_combo = QComboBox()
        # further grey image layers of the image's shape, read with it as its channels 2 and 3 (napari
        # opens a multi-channel stack as one layer per channel); shown only when there is one to offer
        self.channels_list = QListWidget()
        self.channels_list.setToolTip(
            "Tick up to two more image layers (one channel each, e.g. a nuclear stain beside phase contrast) "
            "to read with the image as one multi-channel video")
        self.channels_list.setMaximumHeight(70)
        self.channels_label = QLabel("add channels")
        self.channels_label.setBuddy(self.channels_list)
        self.labels_combo = QComboBox()
        for combo in (self.image_combo, self.labels_combo):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(12)
        self.frame_spin = QSpinBox()
        self.frame_spin.setToolTip("Frame the propagation starts from (follows the time slider; a typed frame stays "
                                   "until the slider moves or another image is picked)")
        self.all_painted = QCheckBox("use every painted frame")
        self.all_painted.setChecked(True)
        self.all_painted.setToolTip("Ticked: every frame of the labels layer that holds paint is an annotation. "
                                    "Unticked: only the annotated frame above (to re-propagate an earlier output "
                                    "from one corrected frame: with direction 'forward', which keeps the frames "
                                    "before it)")
        self.all_planes = QCheckBox("every painted Z plane")
        self.all_planes.setToolTip("For a 3D + time image: ticked, each Z plane that holds paint in the labels "
                                   "layer is propagated through time, one plane after another, into one output; "
                                   "unticked, the plane under the Z slider only")
        self.all_planes.setVisible(False)  # shown for a (T, Z, Y, X) image
        self.method_combo = QComboBox()
        ready = registry.available_methods()
        # methods with no shipped checkpoint still run with a checkpoint file of your own: listed last
        untrained = [m for m in registry.available_methods(include_untrained=True) if m not in ready]
        for name in ready + untrained:
            label = name if name in ready else f"{name} (needs a checkpoint file)"
            self.method_combo.addItem(label, name)
            self.method_combo.setItemData(self.method_combo.count() - 1, registry.DESCRIPTIONS.get(name, ""),
                                          Qt.ItemDataRole.ToolTipRole)
        self.device_combo = DeviceCombo()
        self.direction_combo = QComboBox()
        self.direction_combo.addItems(list(DIRECTIONS))
        self.direction_combo.setToolTip("both: from the annotated frame to the last frame, then back to frame 0; "
                                        "forward or backward: one way only (the other frames are kept from a "
                                        "(T, Y, X) labels layer)")
        self.maps_checkbox = QCheckBox("show intermediate maps")
        self.maps_checkbox.setToolTip("Also add the method's maps (target scores, attention, posteriors) as image "
                                      "layers over the image")
        self.image_combo.setToolTip("The time-lapse: (T, Y, X), or (T, Y, X, 3) shown as RGB")
        self.labels_combo.setToolTip("The labels layer with the objects painted on the annotated frame "
                                     "(Layers > New Labels Layer)")

        self.max_side_spin = QSpinBox()
        self.max_side_spin.setRange(0, 16384)
        self.max_side_spin.setSingleStep(64)
        self.max_side_spin.setSpecialValueText("full resolution")
        self.max_side_spin.setSuffix(" px")
        self.max_side_spin.setValue(DEFAULT_MAX_SIDE)
        self.max_side_spin.setToolTip("Frames are scaled down so their longer side is at most this (0 = never); "
                                      "FRTM, A-GAME and OSVOS-AT also scale small videos up to a 480 px shorter "
                                      "side, RGMP until the objects are 64 px across")
        self.precision_combo = QComboBox()
        self.precision_combo.addItems(list(PRECISIONS))
        self.precision_combo.setToolTip(
            "Arithmetic of the network passes. auto: fp16 on a CUDA GPU; bf16 on a CPU with bfloat16 instructions "
            "(recent AMD and Intel chips: 1.3-4.6x faster than fp32 at the same accuracy here); fp32 elsewhere. "
            "The test-time learning always runs in fp32")
        self.checkpoint_edit = QLineEdit()
        self.checkpoint_edit.setPlaceholderText("shipped default")
        self.checkpoint_button = QPushButton("…")
        self.checkpoint_button.setToolTip("Choose a .safetensors checkpoint file")
        self.checkpoint_button.setAccessibleName("choose a checkpoint file")
        self.checkpoint_edit.setAccessibleName("checkpoint")
        self.checkpoint_edit.setToolTip("A .safetensors file or a registered checkpoint name; empty: the shipped default")
        self.checkpoint_button.setMaximumWidth(30)
        self.checkpoint_button.clicked.connect(self._pick_checkpoint)
        self.options_edit = QLineEdit()
        self.options_edit.setPlaceholderText("name=value, ...")  # replaced by the method's examples in _method_changed
        self.options_edit.setToolTip("More method options as name=value pairs")
        # an option may make the labels optional (RVOS's zero_shot=True): the layer check follows it
        self.options_edit.editingFinished.connect(self._refresh_layers)
        checkpoint_row = QHBoxLayout()
        checkpoint_row.addWidget(self.checkpoint_edit)
        checkpoint_row.addWidget(self.checkpoint_button)
        options = QWidget()
        options_form = QFormLayout(options)
        options_form.addRow("max working side", self.max_side_spin)
        options_form.addRow("precision", self.precision_combo)
        options_form.addRow("checkpoint", checkpoint_row)
        options_form.addRow("more options", self.options_edit)
        self.options_box = QCollapsible("Method options")
        self.options_box.addWidget(options)
        # collapsed, QCollapsible only squeezes its content to 0 px: keep those controls out of the Tab chain
        self._folded_focus = {w: w.focusPolicy() for w in options.findChildren(QWidget)}
        self.options_box.toggled.connect(self._options_folded)
        self._options_folded(False)

        self.propagate_button = QPushButton("Propagate")
        self.propagate_button.setToolTip("Segment every frame into a new labels layer, filled in as frames finish")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the current frame; the frames done are kept")
        self.cancel_button.setEnabled(False)
        self.propagate_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setValue(0)
        self.status = QLabel("")
        # plain text: a message names layers, and a name such as '<cells> & 1h' is no markup (Qt's guess
        # took it for rich text and dropped '<cells>' as an unknown tag)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByKeyboard
                                            | Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setFocusPolicy(Qt.FocusPolicy.TabFocus)  # a keyboard or screen-reader user can read it
        # shown with a tip (napari_vos.advice): one click picks the method and checkpoint it names
        self.advice_button = QPushButton()
        self.advice_button.setVisible(False)
        # shown once runs through the painted Z planes stopped: they go on into the same output
        self.resume_button = QPushButton("Resume planes left")  # its tip names the output (_show_resume)
        self.resume_button.setVisible(False)
        self.resume_button.clicked.connect(self.resume)
        self.advice_button.clicked.connect(self._take_advice)
        self._advice: Any = None

        form = QFormLayout()
        form.addRow("image", self.image_combo)
        form.addRow(self.channels_label, self.channels_list)
        form.addRow("labels", self.labels_combo)
        form.addRow("annotated frame", self.frame_spin)
        form.addRow("", self.all_painted)
        form.addRow("", self.all_planes)
        form.addRow("method", self.method_combo)
        form.addRow("device", self.device_combo)
        form.addRow("direction", self.direction_combo)
        form.addRow("", self.maps_checkbox)
        buttons = QHBoxLayout()
        buttons.addWidget(self.propagate_button)
        buttons.addWidget(self.cancel_button)
        # the choices, in one widget so a run can lock them all and give each its own state back
        self.inputs = QWidget()
        inputs = QVBoxLayout(self.inputs)
        inputs.setContentsMargins(0, 0, 0, 0)
        inputs.addLayout(form)
        inputs.addWidget(self.options_box)
        layout = QVBoxLayout(self)
        layout.addWidget(self.inputs)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.advice_button)
        layout.addWidget(self.resume_button)
        layout.addStretch(1)

        self.method_combo.currentIndexChanged.connect(self._method_index_changed)
        self.image_combo.currentTextChanged.connect(self._image_picked)
        # by index: a labels layer named like the no-labels entry has the same text
        self.labels_combo.currentIndexChanged.connect(self._labels_picked)
        self.channels_list.itemChanged.connect(self._channel_ticked)
        self._listening = False
        self._listen_to_viewer(True)
        exit_guard.track_widget(self)
        self.destroyed.connect(lambda *_: self._stop_on_close())  # the viewer closed (the dock: see event)
        self._refresh_layers()
        self._method_changed(self.method)

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        """A key none of the panel's controls used stops here: napari's window would otherwise run its
        shortcut (P: paint mode, V: hide the layer, Right: next frame, Ctrl+Delete: delete the layer).
        Enter on a focused button presses it, as Space does (Qt leaves Enter to dialogs' default buttons);
        not its auto-repeat, which would press Cancel, focused once the run starts."""
        if event.isAutoRepeat():
            event.accept()
            return
        plain = event.modifiers() in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.KeypadModifier)
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and plain:
            focused = self.focusWidget()
            if isinstance(focused, QPushButton) and focused.isEnabled() and focused.isVisible():
                focused.click()
        event.accept()

    def keyReleaseEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        """A key's release stops here too: napari undoes a held key's mode on release (P pressed in the
        canvas, later released in the panel, dropped paint mode)."""
        event.accept()

    def _options_folded(self, expanded: bool) -> None:
        for widget, policy in self._folded_focus.items():
            widget.setFocusPolicy(policy if expanded else Qt.FocusPolicy.NoFocus)

    # -- choices ---------------------------------------------------------------------------
    @property
    def method(self) -> str:
        """The registry name of the chosen method."""
        return self.method_combo.currentData() or ""

    def select_method(self, name: str) -> None:
        """Choose a method by registry name (ValueError if it is not offered)."""
        index = self.method_combo.findData(name)
        if index < 0:
            offered = [self.method_combo.itemData(i) for i in range(self.method_combo.count())]
            raise ValueError(f"method {name!r} is not offered here; available: {offered}")
        self.method_combo.setCurrentIndex(index)

    def _listen_to_viewer(self, on: bool) -> None:
        """Follow the viewer's layers, their names and the time slider (on), or stop (a closed dock:
        a widget a script still holds, rebuilding its lists on every layer event while out of any
        window, left PyQt a dangling item to clean up when Python exited: a segfault)."""
        if on == self._listening:
            return
        self._listening = on
        events = self.viewer.layers.events
        pairs = [(events.inserted, self._refresh_layers), (events.removed, self._refresh_layers),
                 (events.moved, self._refresh_layers), (events.inserted, self._watch_layer),
                 (self.viewer.dims.events.current_step, self._follow_slider)]
        pairs += [(layer.events.name, self._refresh_layers) for layer in self.viewer.layers]
        pairs += [(layer.events.data, self._layer_data_changed) for layer in self.viewer.layers]
        _connect(pairs, on)

    def _watch_layer(self, event: Any) -> None:
        """Follow a new layer's name and its array (`layer.data = ...`, as a reader does on a scene switch)."""
        event.value.events.name.connect(self._refresh_layers)
        event.value.events.data.connect(self._layer_data_changed)

    def _layer_data_changed(self, event: Any) -> None:
        """A layer's array was replaced: the annotated frame's range and the mismatch line follow the
        new data; for the picked image, the annotated frame follows the slider again, as for a new image.
        Other layers' data events (a Points or Shapes layer emits one at every drag) change nothing here."""
        if not isinstance(event.source, (Image, Labels)):
            return
        image = self._layer(self.image_combo, Image)
        if image is not None and image == event.source:  # (a proxy on the left: see _refresh_channels)
            self._frame_image = None
        self._selection_changed()

    def _refresh_layers(self, event: Any = None) -> None:
        """Refill the layer choices, keeping the user's picks (by layer, so a renamed layer stays
        picked); a labels layer is preferred to "none" unless the user chose "none"."""
        job = self.job
        if job is not None and self.worker is not None and not job.cancelled and job.output_removed:
            self.cancel()  # the output layer was deleted: stop now, not at the next frame (fine-tuning: minutes)
        # not napari-vos map layers: maps are not videos to propagate through
        images = [lyr.name for lyr in self.viewer.layers if isinstance(lyr, Image) and not is_map_layer(lyr)]
        labels = [lyr for lyr in self.viewer.layers if isinstance(lyr, Labels)]
        # painted inputs first, napari-vos outputs (finished or running) last
        label_names = [lyr.name for lyr in sorted(labels, key=is_output)]
        # a picked layer the user deleted is forgotten: holding it would keep its data in memory
        for kind, pick in self._picks.items():
            if pick is not None and pick != NO_LABELS and pick not in self.viewer.layers:
                self._picks[kind] = None
        self._ticked = [lyr for lyr in self._ticked if lyr in self.viewer.layers]
        if self._frame_image is not None and self._frame_image not in self.viewer.layers:
            self._frame_image = None
        picked_image = self._picks["image"]
        image_name = picked_image.name if picked_image is not None else self.image_combo.currentText()
        self._refreshing = True
        try:
            self.image_combo.blockSignals(True)
            self.image_combo.clear()
            self.image_combo.addItems(images)
            if image_name in images:
                self.image_combo.setCurrentText(image_name)
            self.image_combo.blockSignals(False)
            self.labels_combo.blockSignals(True)
            self.labels_combo.clear()
            self.labels_combo.addItems(label_names)
            self.labels_combo.addItem(NO_LABELS, _NO_LABELS_ENTRY)  # last: a painted layer stays the default choice
            self._set_labels_entry(self._labels_choice_for(label_names))
            self.labels_combo.blockSignals(False)
        finally:
            self._refreshing = False
        self._selection_changed()

    def _labels_choice_for(self, names: list[str]) -> str | None:
        """The labels entry to show, among the labels layers ``names``: the user's pick if its layer is
        still there; None ("none") for a method that takes no annotation, or when the user chose it and
        the method can run without; else the first painted layer."""
        method = self.method
        try:
            accepts = registry.accepts_annotation(method) if method else True
        except ValueError:
            accepts = True
        if not accepts:
            return None
        pick = self._picks["labels"]
        if isinstance(pick, Labels) and pick in self.viewer.layers:
            return pick.name
        if pick == NO_LABELS and not self._method_needs_annotation():
            return None
        # never a layer a run is still filling (another dock's output): it is no annotation yet
        real = [n for n in names if not (n in self.viewer.layers and is_unfinished_output(self.viewer.layers[n]))]
        return real[0] if real else None

    def _no_labels_entry(self) -> bool:
        """Whether the labels choice is the "none" entry (not a layer of that name)."""
        return self.labels_combo.currentData() == _NO_LABELS_ENTRY

    def _set_labels_entry(self, name: str | None) -> None:
        """Show the labels layer ``name`` in the labels choice (the first entry of that text: the layers
        come before "none"), or the "none" entry for None."""
        index = self.labels_combo.findData(_NO_LABELS_ENTRY) if name is None else self.labels_combo.findText(name)
        if index >= 0:
            self.labels_combo.setCurrentIndex(index)

    def _image_picked(self, *_: Any) -> None:
        if not self._refreshing:
            self._picks["image"] = self._layer(self.image_combo, Image)
        self._selection_changed()

    def _labels_picked(self, *_: Any) -> None:
        if not self._refreshing:
            self._picks["labels"] = NO_LABELS if self._no_labels_entry() else self._layer(self.labels_combo, Labels)
        self._selection_changed()

    def _channel_ticked(self, *_: Any) -> None:
        if not self._refreshing:
            self._ticked = [self.viewer.layers[name] for name in self.channel_choice if name in self.viewer.layers]

    def _selection_changed(self, *_: Any) -> None:
        """New image: frame range and slider position; say at once when the layers do not match."""
        self._follow_slider()
        image = self._layer(self.image_combo, Image)
        self._refresh_channels(image)
        self.all_planes.setVisible(image is not None and bool(level_volumes(image)))
        self._show_mismatch()

    def _show_mismatch(self) -> None:
        """Say at once when the picked layers do not fit; clear only a message of this kind, so a
        layer event does not wipe the last run's "done" line."""
        if self.job is not None:
            return
        message = self._mismatch()
        if message:
            self.status.setText(message)
            self._showing_mismatch = True
        elif self._showing_mismatch:
            self.status.setText("")
            self._showing_mismatch = False

    def _say(self, text: str) -> None:
        """Put a run's message in the status line."""
        self._showing_mismatch = False
        self.status.setText(text)

    def _refresh_channels(self, image: Any) -> None:
        """Offer the image layers that can be the image's further channels (plain grey stacks of its
        shape or of one of its levels, not napari-vos outputs), keeping the ticks by name."""
        ticked = {lyr.name for lyr in self._ticked if lyr in self.viewer.layers}
        # (T, Y, X) at one of its levels; a (T, Z, Y, X) image: layers of its whole shape (at one of its levels)
        shapes = set(level_layer_shapes(image)) if image is not None and not image.rgb else set()
        # != rather than "is not": docked through the manifest, the widget sees napari's proxies of the
        # layers, a new proxy object at every access (they compare equal to the layer they stand for)
        names = [lyr.name for lyr in self.viewer.layers
                 if isinstance(lyr, Image) and lyr != image and not lyr.multiscale and not lyr.rgb
                 and tuple(lyr.data.shape) in shapes
                 and "napari_vos" not in lyr.metadata and not is_map_layer(lyr)]
        self._refreshing = True
        try:
            self.channels_list.clear()
            for name in names:
                item = QListWidgetItem(name)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if name in ticked else Qt.CheckState.Unchecked)
                self.channels_list.addItem(item)
        finally:
            self._refreshing = False
        self.channels_list.setVisible(bool(names))
        self.channels_label.setVisible(bool(names))

    @property
    def channel_choice(self) -> list[str]:
        """The names of the ticked channel layers, in the list's order."""
        items = (self.channels_list.item(i) for i in range(self.channels_list.count()))
        return [item.text() for item in items if item.checkState() == Qt.CheckState.Checked]

    @property
    def labels_choice(self) -> str | None:
        """The chosen labels layer's name, or None for no labels (zero-shot)."""
        text = self.labels_combo.currentText()
        return None if text == "" or self._no_labels_entry() else text

    def _method_needs_annotation(self) -> bool:
        """Whether the method, with the options typed under more options (RVOS's zero_shot=True), needs labels."""
        try:
            options = parse_options(self.options_edit.text())
        except ValueError:  # the field's own message comes when Propagate is pressed
            options = {}
        try:
            return registry.needs_annotation(self.method, **options) if self.method else True
        except ValueError:
            return True

    def _mismatch(self) -> str:
        image, labels = self._layer(self.image_combo, Image), self._layer(self.labels_combo, Labels)
        shapes = image_levels(image)[1] if image is not None else []
        if shapes and all(s is None for s in shapes):  # the image itself is no video (at any level)
            return video_problem(image, shapes) or ""
        if self.labels_choice is None and not self._method_needs_annotation():
            return "" if image is not None else "add an image layer"
        if self.labels_choice is None and image is not None:
            return (f"{self.method} needs a labels layer with the objects painted on one frame; only zero-shot "
                    f"methods (e.g. cosnet) run with labels 'none'{registry.zero_shot_hint(self.method)}")
        if image is None or labels is None:
            return "add an image layer and a labels layer with the objects painted on one frame"
        try:
            labels_level(image, labels)
        except ValueError as err:
            if labels.multiscale:  # the reason is not the shape (level 0 may well fit): say it, with the recipe
                return str(err)
            # (T, Y, X) at one of its levels; painted over a (T, Z, Y, X) stack: its whole shape at one of them
            shapes = level_layer_shapes(image) or [tuple(image.data.shape)]
            return (f"labels {labels.name!r} {tuple(labels.data.shape)} do not match image {image.name!r} "
                    f"{' or '.join(str(s) for s in shapes)}")
        return ""

    def _follow_slider(self, event: Any = None) -> None:
        """The annotated frame's range is the picked image's frames, and the box shows the frame under
        the time slider when the slider or the image has changed (a typed frame stays otherwise)."""
        if self.worker is not None:  # locked with the other choices: it shows the frame the run started from
            return
        image = self._layer(self.image_combo, Image)
        if image is None or image.data.ndim < 3:
            return
        # set before the frame, from the array the layer holds now, so the box never clips the slider's frame
        self.frame_spin.setMaximum(int(image.data.shape[0]) - 1)
        frame = current_frame(self.viewer, image)
        # != : docked through the manifest, the widget sees napari's layer proxies, equal to their layer
        if image != self._frame_image or frame != self._slider_frame:
            self.frame_spin.setValue(frame)
            self._frame_image, self._slider_frame = image, frame

    def _method_index_changed(self, *_: Any) -> None:
        self._method_changed(self.method)

    def _method_changed(self, name: str) -> None:
        if not name:
            return
        # what was typed for one method is kept for it and not handed to the next (a checkpoint
        # file or options of one method are an error for another)
        if self._method_shown is not None:
            self._typed[self._method_shown] = (self.checkpoint_edit.text(), self.options_edit.text())
        checkpoint, options = self._typed.get(name, ("", ""))
        self.checkpoint_edit.setText(checkpoint)
        self.options_edit.setText(options)
        self._method_shown = name
        self.method_combo.setToolTip(registry.DESCRIPTIONS.get(name, ""))
        example = registry.example_options(name)
        self.options_edit.setPlaceholderText(f"e.g. {example}" if example else "name=value, ...")
        try:
            flags = registry.traits(name)
        except ValueError as err:
            self._say(str(err))
            return
        self.checkpoint_edit.setEnabled(flags.uses_checkpoint)
        self.checkpoint_button.setEnabled(flags.uses_checkpoint)
        self._offer_checkpoints(name if flags.uses_checkpoint else None)
        # COSNet: "none", locked (the primary object, never painted ones); back to an annotated method:
        # the labels layer the user had picked, or the first painted one
        want = self._labels_choice_for([self.labels_combo.itemText(i) for i in range(self.labels_combo.count())
                                        if self.labels_combo.itemData(i) != _NO_LABELS_ENTRY])
        self.labels_combo.blockSignals(True)
        self._set_labels_entry(want)
        self.labels_combo.blockSignals(False)
        self.labels_combo.setEnabled(flags.accepts_annotation)
        self._selection_changed()

    def _offer_checkpoints(self, method: str | None) -> None:
        """Name the method's shipped default in the checkpoint field, and offer its other registered
        checkpoints (e.g. RGMP's cells one) as completions of what is typed."""
        from napari_vos import weights

        names = [c.name for c in weights.list_checkpoints(method)] if method else []
        if not names:
            self.checkpoint_edit.setPlaceholderText("shipped default" if method is None else "a .safetensors file")
            self.checkpoint_edit.setCompleter(None)
            return
        default = weights.default_checkpoint(method).name
        others = [n for n in names if n != default]
        self.checkpoint_edit.setPlaceholderText(f"shipped default: {default}" +
                                                (f"; or {', '.join(others)}" if others else ""))
        completer = QCompleter(names, self.checkpoint_edit)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.checkpoint_edit.setCompleter(completer)

    def _pick_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, f"{self.method} checkpoint", "", "safetensors (*.safetensors)")
        if path:
            self.checkpoint_edit.setText(path)

    def _layer(self, combo: QComboBox, kind: type) -> Any:
        if combo.currentData() == _NO_LABELS_ENTRY:  # "none", not a layer of that name
            return None
        name = combo.currentText()
        if name and name in self.viewer.layers and isinstance(self.viewer.layers[name], kind):
            return self.viewer.layers[name]
        return None

    # -- running ---------------------------------------------------------------------------
    def options(self) -> dict[str, Any]:
        """The session options the controls describe (raises ValueError for bad 'more options')."""
        opts = parse_options(self.options_edit.text())
        opts["max_side"] = self.max_side_spin.value() or None
        if self.precision_combo.currentText() != "auto":
            opts["precision"] = self.precision_combo.currentText()
        if self.checkpoint_edit.isEnabled() and self.checkpoint_edit.text().strip():
            opts["checkpoint"] = pasted_path(self.checkpoint_edit.text())
        return opts

    def start(self) -> None:
        """The Propagate button: build the job (output layer first), then run it in a worker."""
        if self.worker is not None:
            return
        self._error = None
        self._closed_mid_run = False
        method = self.method
        try:
            image = self.image_combo.currentText()
            labels = self.labels_choice
            if not image:
                raise ValueError("pick an image layer first")
            settings = {"frame": self.frame_spin.value(), "frame_from_slider": self.frame_spin.value() == self._slider_frame,
                        "device": self.device_combo.currentText(), "direction": self.direction_combo.currentText(),
                        "maps": self.maps_checkbox.isChecked(), "all_painted": self.all_painted.isChecked(),
                        "channel_layers": self.channel_choice, "defer_map_layers": True, **self.options()}
            if self.all_planes.isChecked() and not self.all_planes.isHidden():  # hidden but for a 3D + time image
                self.runs = PlaneRuns(self.viewer, image, labels, method, PAINTED, **settings)
                self.job = self.runs.jobs[0]
                self._plane_settings = (image, labels, method, settings)
            else:
                self.runs, self.job = None, LayerJob(self.viewer, image, labels, method, **settings)
        except Exception as err:  # noqa: BLE001 - every failure is shown, none crashes the viewer
            self.job, self.runs = None, None
            self.progress.setRange(0, 1)  # not the last run's bar beside this refusal
            self.progress.setValue(0)
            self._report(err)
            # a refusal of the layers as they are: a layer added, removed or replaced replaces it with what
            # is wrong now, or clears it ("pick an image layer first" stayed once the image was there)
            self._showing_mismatch = True
            return
        self._show_resume(None)  # a new run: the stopped one's output is the user's now
        self._run(self.job)

    def resume(self) -> None:
        """The Resume button: the stopped runs through the painted Z planes go on into their output, with the
        settings they were started with (`PlaneRuns` ``resume``)."""
        if self.worker is not None or self._stopped_planes is None:
            return
        output, (image, labels, method, settings) = self._stopped_planes
        self._error = None
        self._closed_mid_run = False
        try:
            self.runs = PlaneRuns(self.viewer, image, labels, method, PAINTED, resume=output, **settings)
        except Exception as err:  # noqa: BLE001 - shown, as Propagate's refusals are
            self.runs = None
            self._report(err)
            return
        self._show_resume(None)
        self._run(self.runs.jobs[0])

    def _show_resume(self, output: Any) -> None:
        """Offer Resume for ``output``, the output of runs through Z planes that stopped (None: offer none)."""
        self._stopped_planes = (output, self._plane_settings) if output is not None else None
        self.resume_button.setVisible(output is not None)
        if output is not None:
            self.resume_button.setToolTip(f"Go on with the runs that filled {output.name!r}: the planes finished are "
                                          "kept, the others run into it (a plane stopped part-way from its start)")

    def _run(self, job: LayerJob) -> None:
        """Lock the controls and run ``job`` in a worker (`start`'s, or the next plane's of `runs`)."""
        self.job = job
        method = job.method
        self.progress.setRange(0, self.job.total)
        self.progress.setValue(0)
        verb = "propagating" if self.job.annotations else "segmenting (no annotation)"
        starting = f"{verb} with {method} from frame {self.job.start}"
        if self.runs is not None:
            planes = self.runs.planes
            starting += (f" through Z plane {job.plane} ({planes.index(job.plane) + 1} of {len(planes)} painted "
                         f"planes: {frame_ranges(planes)})")
        elif self.job.plane is not None:
            starting += f" through Z plane {self.job.plane} (of {self.job.planes}; the Z slider picks it)"
        if self.job.channel_layers:
            starting += f", channels {', '.join([job.image.name] + [lyr.name for lyr in self.job.channel_layers])}"
        if len(self.job.annotations) > 1:
            starting += f" (annotations on frames {sorted(self.job.annotations)})"
        advice = self.job.advice
        self._say("; ".join(part for part in (self.job.note, starting, advice and advice.text) if part))
        self._offer_advice(advice)
        had_focus = self.propagate_button.hasFocus()
        self.cancel_button.setEnabled(True)  # before Propagate goes grey, or Qt moves the focus out of the panel
        if had_focus:
            self.cancel_button.setFocus()
        self.propagate_button.setEnabled(False)
        self.inputs.setEnabled(False)  # what is shown is what runs: no method or layer change mid-run
        # the run writes every frame it reaches (from the worker thread too): a stroke on a frame not
        # reached yet would be overwritten, and its undo would later punch a hole in the result
        self.job.output.editable = False
        self._watch_output(self.job, True)
        self._watch_inputs(self.job, True)
        self._pacer = RedrawPacer()
        self.advice_button.setEnabled(False)
        self.worker = create_worker(_iterate, self.job, _start_thread=False,
                                    _connect={"yielded": self._on_frame, "errored": self._on_error,
                                              "finished": self._on_finished})
        exit_guard.track(self.job)  # a script ending mid-run stops it instead of aborting in Qt's teardown
        self.worker.start()
        self._finetune_timer.start()

    def _offer_advice(self, advice: Any) -> None:
        """Show (or hide, for None) the button that takes a tip's method and checkpoint."""
        self._advice = advice
        self.advice_button.setVisible(advice is not None)
        if advice is not None:
            self.advice_button.setText(f"use {advice.method} with checkpoint {advice.checkpoint}")
            self.advice_button.setToolTip(advice.text)

    def _take_advice(self) -> None:
        """The tip's button: pick its method and checkpoint (the next Propagate uses them)."""
        if self._advice is None:
            return
        method, checkpoint = self._advice.method, self._advice.checkpoint
        self.select_method(method)
        self.checkpoint_edit.setText(checkpoint)
        self._offer_advice(None)
        self._say(f"{method} with checkpoint {checkpoint} chosen: Propagate runs it")

    def _show_finetune(self) -> None:
        """While the method fine-tunes on the annotated frame (before any frame), show its steps."""
        job = self.job
        if job is None or job.finetune is None or job.frames_computed > 0 or job.cancelled:
            return
        step, total = job.finetune
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(step)
        self._say(f"fine-tuning {job.method} on frame {job.start}: step {step}/{total}")

    def cancel(self) -> None:
        """The Cancel button: stop after the current frame, keep what is done."""
        if self.worker is None or self.job is None:
            return
        # the engine stops after its frame and the generator ends; no worker.quit(): superqt then leaves
        # the generator suspended, and napari's task list keeps the worker, so the run (its Session, network
        # and output layers) stayed in memory until napari closed
        self.job.cancel()
        if self.cancel_button.hasFocus():
            self.status.setFocus()  # not out of the panel (the dock's 'hide this panel' button)
        self.cancel_button.setEnabled(False)
        self._say("cancelling…")

    def _watch_output(self, job: LayerJob, on: bool) -> None:
        """While the run goes on, notice its output's array being replaced (`layer.data = ...` from the
        console) and keep the output locked: napari's data setter makes the layer paintable again."""
        _connect([(job.output.events.data, self._output_data_replaced),
                  (job.output.events.editable, self._keep_output_locked)], on)

    def _inputs(self, job: LayerJob) -> list[Any]:
        """The layers the run read at its start: the image, its added channels, the labels."""
        return [layer for layer in (job.image, *job.channel_layers, job.labels) if isinstance(layer, (Image, Labels))]

    def _watch_inputs(self, job: LayerJob, on: bool) -> None:
        """While the run goes on, notice strokes in its labels layer and arrays replaced under its input
        layers: the run goes on with them as they were at its start, which its end message says."""
        if on:
            self._painted_frames: set[int] | None = None  # None: no stroke; empty: frames not known
            self._replaced_inputs: list[str] = []
        for layer in self._inputs(job):
            pairs = [(layer.events.data, self._input_replaced)]
            if layer is job.labels:
                pairs.append((layer.events.paint, self._input_painted))
            _connect(pairs, on)

    def _input_painted(self, event: Any) -> None:
        """A stroke in the run's labels layer: the frames it touched (from napari's undo atoms, whose
        first index is the time axis's: an array or a slice; for a (T, Z, Y, X) layer, the strokes at
        the run's Z plane only), kept for the end message."""
        job = self.job
        in_plane = job is not None and job.plane is not None and job.labels is not None and job.labels.ndim == 4
        frames = self._painted_frames if self._painted_frames is not None else set()
        if job is not None and job.labels is not None and (job.labels.ndim == 3 or in_plane):
            touched: set[int] = set()
            try:
                for atom in event.value:
                    first = atom[0][0]
                    if in_plane:  # the points' frames where their plane is the run's
                        first = np.asarray(first)[np.asarray(atom[0][1]) == job.plane]
                    touched.update(range(first.start, first.stop) if isinstance(first, slice)
                                   else (int(t) for t in np.unique(np.asarray(first))))
            except Exception:  # noqa: BLE001 - an atom of another shape (another napari): the frames go unsaid
                frames.clear()
            else:
                if in_plane and not touched:  # strokes on other planes only: nothing the run read
                    return
                frames.update(touched)
        self._painted_frames = frames

    def _input_replaced(self, event: Any) -> None:
        """An input layer's array was replaced mid-run (`layer.data = ...`): named in the end message."""
        name = getattr(event.source, "name", "?")
        if name not in self._replaced_inputs:
            self._replaced_inputs.append(name)

    def _inputs_changed_text(self, job: LayerJob) -> str:
        """What changed in the run's input layers while it ran, and that the run did not see it; ""
        when nothing did."""
        parts = []
        # napari's undo and redo emit no paint event: an annotated frame changed since the run read it
        undone = [t for t in self._annotations_changed(job) if t not in (self._painted_frames or ())]
        if (self._painted_frames is not None or undone) and job.labels is not None:
            frames = sorted({*(self._painted_frames or ()), *undone})
            on = f" on frame{'s' if len(frames) > 1 else ''} {frame_ranges(frames)}" if frames else ""
            if undone:
                parts.append(f"{job.labels.name!r} was changed{on} during the run (painted, or a stroke undone), "
                             "which used it as it was at its start: press Propagate again to use it as it is now")
            else:
                parts.append(f"{job.labels.name!r} was painted{on} during the run, which used it as it was at its "
                             "start: press Propagate again to use the new strokes")
        if self._replaced_inputs:
            names = ", ".join(repr(n) for n in self._replaced_inputs)
            parts.append(f"the data of {names} was replaced during the run, which read the earlier data: press "
                         "Propagate again for an output of the new data")
        return "; ".join(parts)

    def _annotations_changed(self, job: LayerJob) -> list[int]:
        """The annotated frames the run read whose labels now differ in its labels layer (a stroke undone
        or redone); none where the layer is gone from the viewer or its array was replaced (said apart)."""
        labels = job.labels
        if labels is None or labels.name in self._replaced_inputs or labels not in self.viewer.layers:
            return []
        changed = []
        for t, read in sorted(job.annotations.items()):
            try:
                now = np.asarray(labels.data if labels.ndim == 2 else job.frames_of(labels.data)[t])
            except Exception:  # noqa: BLE001 - a frame that cannot be read now: nothing to say of it
                continue
            if now.shape != read.shape or not np.array_equal(now, read):
                changed.append(int(t))
        return changed

    def _output_data_replaced(self, event: Any = None) -> None:
        """The output's array was replaced mid-run: its frames can no longer go there; stop the run,
        keeping the layer with the user's array."""
        job = self.job
        if job is None or job.output_replaced:
            return
        job.output_replaced = True
        if not job.cancelled:
            self.cancel()
        self._say(f"stopping: the data of {job.output.name!r} was replaced while the run was filling it; "
                  "the layer keeps the new data")

    def _keep_output_locked(self, event: Any = None) -> None:
        """Lock the output again while the run goes on (napari unlocks it when its data is replaced)."""
        job = self.job
        if job is not None and job.output.editable:
            job.output.editable = False

    def _stop_on_close(self) -> None:
        """The widget (or the viewer) went away mid-run: stop the engine instead of running on unseen.

        May run while the Qt object is being deleted, so it touches only Python-side objects.
        """
        if self.job is not None:
            self.job.cancel()  # (no worker.quit(): see cancel)
            self._closed_mid_run = True

    def event(self, event: Any) -> bool:  # noqa: D401 - Qt's name
        """Closing the dock (its X) takes the widget out of the window without deleting it
        (napari's remove_dock_widget): a run it started stops then, as when the viewer closes."""
        listening = getattr(self, "_listening", None)  # None: still being built
        kind = event.type()
        if kind == QEvent.Type.ParentChange and listening and self.parent() is None:
            self._stop_on_close()
            self._listen_to_viewer(False)
        elif kind in (QEvent.Type.ParentChange, QEvent.Type.Show) and listening is False:
            # docked again, or shown as a window of its own: follow the viewer as it is now
            self._listen_to_viewer(True)
            self._refresh_layers()
        return super().event(event)

    def _on_frame(self, frame: Any) -> None:
        job = self.job
        if job is None:
            return
        if job.output_removed or job.output_replaced:  # the user deleted it or replaced its array
            if not job.cancelled:
                self.cancel()
            return
        try:
            self._show(job, frame)
        except Exception as err:  # noqa: BLE001 - e.g. the output layer was deleted meanwhile
            self._error = err
            self.cancel()
            return
        if job.pending_map_layers and not self._map_timer.isActive():
            self._map_timer.start()
        if self.progress.maximum() != job.total:  # the bar showed fine-tuning steps until now
            self.progress.setRange(0, job.total)
        self.progress.setValue(job.frames_shown)
        if not job.cancelled:
            # the method and the start's note stay in view for the whole run, not only its first second
            plane = f", Z plane {job.plane}" if self.runs is not None else ""
            self._say(f"{job.method}: frame {frame.index}{plane} ({job.frames_shown}/{job.total}){_working_at(job)}"
                      + (f"; {job.note}" if job.note else ""))

    def _show(self, job: LayerJob, frame: Any) -> None:
        """Write a finished frame into the layers, redrawing them at every frame in 2D view and at the
        pace `RedrawPacer` sets in 3D (the run's end redraws what is left: `LayerJob.finish`)."""
        redraw = self._pacer.due(volume=self.viewer.dims.ndisplay == 3)
        job.show(frame, redraw=redraw)
        if redraw:
            self._pacer.started()
            QTimer.singleShot(0, self._pacer.settled)  # runs once napari has drawn the result

    def _add_next_map_layer(self) -> None:
        """One map layer per event-loop turn (napari takes 0.1-0.3 s per layer): the viewer redraws
        and takes clicks between two, instead of freezing while the first frame adds up to 8 per map.
        A run that ends first adds the rest the same way (`_add_map_layers_then_finish`)."""
        if self.job is not None and self.job.add_next_map_layer():
            self._map_timer.start()

    def _add_map_layers_then_finish(self) -> None:
        """The run has ended: a map layer still waiting is added in this turn and the next in the
        following one (all at once froze the viewer for seconds: 29 OSVOS-AT attention layers,
        3.4 s), the run's controls still locked; with none left, the run ends as usual."""
        job = self.job
        if job is not None and job.frames_computed and not self._closed_mid_run and not job.output_replaced \
                and job.add_next_map_layer():
            self._say(f"adding map layers: {job.pending_map_layers} to go")
            self._tail_timer.start()
            return
        self._end_run()

    def _on_error(self, err: BaseException) -> None:
        self._error = err

    def _on_finished(self) -> None:
        self._finetune_timer.stop()
        self._add_map_layers_then_finish()  # the map layers still waiting first, one per turn

    def _end_run(self) -> None:
        """The run is over (and its map layers are in the viewer): unlock the controls, write the
        provenance, say how it went."""
        job, self.job, self.worker = self.job, None, None
        runs = self.runs
        self.propagate_button.setEnabled(True)
        if self.cancel_button.hasFocus() or self.status.hasFocus():
            self.propagate_button.setFocus()
        self.cancel_button.setEnabled(False)
        self.inputs.setEnabled(True)  # each control back to its own state (e.g. labels locked for cosnet)
        self.advice_button.setEnabled(True)
        self._follow_slider()  # to the frame in view if the slider moved during the run
        if job is None:
            return
        self._watch_output(job, False)
        self._watch_inputs(job, False)
        changed = self._inputs_changed_text(job)
        if not job.output_removed:
            job.output.editable = True
        self.progress.setRange(0, max(job.total, 1))  # it may have counted fine-tuning steps
        self.progress.setValue(job.frames_shown)
        self._error = self._error or job.error
        try:
            stopped = self._output_lost(job)
            if stopped:
                self.runs = None
                if self._error is not None:
                    self._report(self._error, kept=stopped)
                else:
                    self._say(f"stopped: {stopped}")
                return
            if self._error is not None:
                if job.frames_computed == 0:
                    job.discard()
                    planes = self._end_planes(job, None)
                    self._report(self._error, kept=planes)
                else:
                    ended = job.finish(error=self._error)
                    planes = self._end_planes(job, ended)
                    unreached = job.unreached_backward()
                    self._report(self._error, kept=f"the {job.frames_computed} frames segmented before it are kept "
                                                   f"in {job.output.name!r}" + (f"; {unreached}" if unreached else "")
                                                   + (f"; {planes}" if planes else "") + (f"; {changed}" if changed else ""))
                return
            if job.cancelled and job.frames_computed == 0:  # nothing was segmented: no empty layer left behind
                job.discard()
                planes = self._end_planes(job, None)
                self._say(f"cancelled before any frame of Z plane {job.plane} was segmented; {planes}" if planes else
                          "cancelled before any frame was segmented; the output layer was removed")
                return
            result = job.finish()
            if runs is not None:
                following = runs.next_job(job) if not job.cancelled else None
                if following is not None and result is not None:  # the next plane's run, into the same output
                    runs.job_ended(job, result)
                    following.add_note(changed)  # what changed in the inputs during this plane's run
                    self._run(following)
                    return
            planes = self._end_planes(job, result)
            done = job.frames_shown
            if job.cancelled and done < job.total:
                self._say(f"cancelled: {job.frames_computed} frames segmented ({done} of {job.total} in "
                          f"{job.output.name!r}, the annotated ones included)" + (f"; {planes}" if planes else "")
                          + (f"; {changed}" if changed else ""))
                if self._closed_mid_run:  # the status line went with the dock
                    show_info(f"napari-vos: the run stopped when its dock closed; {job.frames_computed} frames "
                              f"segmented are kept in {job.output.name!r}")
            elif result is not None:
                precision = result.options.get("precision")
                on = f"{result.device} ({precision})" if precision and precision != "fp32" else result.device
                start = f" after a {result.start_seconds:.0f} s start (fine-tuning, first fit)" \
                    if result.start_seconds >= 5 else ""  # the frames/s leave it out: OSVOS-AT with 70 cells, minutes
                self._say(f"done: {done} frames with {result.method} on {on}, {_speed(result.fps)}{start}"
                          f"{_working_at(job)}" + "".join(f"; {part}" for part in
                                                         (planes, job.note, job.maps_not_shown_text(),
                                                          job.advice and job.advice.text, changed) if part))
                show_info(f"napari-vos: {job.output.name} ready" + ("" if self._told_what_next else WHAT_NEXT))
                self._told_what_next = True
            finished = result is not None and not (job.cancelled and done < job.total)
            if finished and job.labels is not None and is_output(job.labels) and self._picks["labels"] in (None, NO_LABELS, job.labels):
                # a correction round: the next one goes on from the new output, where the user corrects next
                self._picks["labels"] = job.output
                self._say(f"{self.status.text()}; labels now {job.output.name!r} for the next round")
        finally:
            # reported: let the error go, for its traceback holds the job (video, session, network,
            # output and map layers), which a user who deletes layers after an out-of-memory error frees
            self._error = None
            said = self.status.text()
            self._refresh_layers()  # the output now sorts with the outputs
            if self._showing_mismatch and said:  # an input layer went away mid-run: keep the run's line too
                self.status.setText(f"{said}; now: {self.status.text()}")

    def _end_planes(self, job: LayerJob, result: Any) -> str:
        """With 'every painted Z plane', the runs are over at ``job`` (the last plane's, or one stopped): store
        their record in the output and say which planes were run; "" otherwise."""
        runs, self.runs = self.runs, None
        if runs is None:
            return ""
        runs.job_ended(job, result)
        record = runs.finish()
        stored = runs.output.metadata.get("napari_vos") or {}  # a resumed output stopped at once keeps its own
        if stored.get("complete") is False and runs.output in self.viewer.layers:
            self._show_resume(runs.output)
        if record is None:  # no plane ran: a new output was removed, a resumed one put back as it was
            return f"{runs.output.name!r} left as it was" if runs.resumed_record is not None else ""
        left = [z for z in runs.planes if z not in record["z_planes_run"]]
        part_way = kept_runs(record)[1]  # a plane cancelled or failed in its run: not done, though run
        return (f"Z plane{'s' if len(record['z_planes_run']) > 1 else ''} {frame_ranges(record['z_planes_run'])} "
                f"in {runs.output.name!r}" + (f", plane{'s' if len(part_way) > 1 else ''} {frame_ranges(part_way)} "
                                              "stopped part-way" if part_way else "")
                + (f", plane{'s' if len(left) > 1 else ''} {frame_ranges(left)} not run" if left else ""))

    def _output_lost(self, job: LayerJob) -> str:
        """For a run whose output the user deleted or gave another array: tidy up and say what
        happened; "" for a run whose output is its own. A replaced array is the user's: never removed."""
        done = f"{job.frames_shown} of {job.total} frames done"
        if job.output_removed:
            job.discard()  # its map layers too
            return f"the output layer was removed ({done})"
        if job.output_replaced:
            job.disown()
            job.redraw()  # the map layers' last frames
            return (f"the data of {job.output.name!r} was replaced while the run was filling it ({done}); the layer "
                    "keeps the new data and no provenance: press Propagate again for a new output")
        return ""

    def _report(self, err: BaseException, kept: str = "") -> None:
        from napari_vos.weights import CheckpointError

        said = isinstance(err, (ValueError, CheckpointError))  # messages written for the user: no class name
        message = str(err) if said else out_of_memory_advice(err) or f"{type(err).__name__}: {err}"
        self._say(f"error: {message}" + (f"; {kept}" if kept else ""))
        show_error(f"napari-vos: {message}")


def pasted_path(text: str) -> str:
    """A path as pasted into a field: surrounding quotes (a shell's, Windows' "Copy as path") and a
    file:// address (a file manager's drag and drop) taken off; anything else as typed."""
    from urllib.parse import unquote, urlparse

    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    if text.lower().startswith("file://"):
        parsed = urlparse(text)
        path = unquote(parsed.path)
        if len(path) > 2 and path[0] == "/" and path[2] == ":":  # file:///C:/... on Windows
            path = path[1:]
        text = path
    return text

