"""Run a napari-vos Layers-menu command the way the menu does, and wait for its worker to end."""
from __future__ import annotations


def run_menu_command(qtbot, command_id: str, timeout: int = 20000) -> None:
    """Execute ``command_id`` through napari's app model (the menu item's path), then wait until no
    Layers-menu work is in flight, so its layer (if any) has been added."""
    from napari._app_model import get_app_model

    from napari_vos._widgets.menu_work import running_work

    get_app_model().commands.execute_command(command_id).result()
    qtbot.waitUntil(lambda: running_work() == 0, timeout=timeout)


def said(kind: str | None = None) -> list[str]:
    """The notifications napari has shown so far (of ``kind``: "info", "warning", "error"), oldest first;
    napari keeps them across tests, so a test that checks what was not said slices from its start."""
    from napari.utils.notifications import notification_manager

    return [str(n.message) for n in notification_manager.records
            if kind is None or str(n.severity).lower().endswith(kind)]


def progress_bars(viewer) -> list:
    """The progress bars in the viewer's activity dock (a menu work's, with its Cancel button)."""
    from napari._qt.widgets.qt_progress_bar import QtLabeledProgressBar

    return viewer.window._qt_window._activity_dialog.findChildren(QtLabeledProgressBar)


def answer_save_dialog(monkeypatch, answer: str, file_type: str | None = None) -> list[str]:
    """Qt's save dialog answers ``answer`` ("" is Cancel) with ``file_type`` (default: the first offered);
    the paths it opened on are returned as it is asked."""
    from qtpy.QtWidgets import QFileDialog

    asked: list[str] = []

    def dialog(parent, caption, start, filters, *args):
        asked.append(start)
        return answer, file_type or filters.split(";;")[0]

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(dialog))
    return asked
