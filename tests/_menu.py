"""Run a napari-vos Layers-menu command the way the menu does, and wait for its worker to end."""
from __future__ import annotations


def run_menu_command(qtbot, command_id: str, timeout: int = 20000) -> None:
    """Execute ``command_id`` through napari's app model (the menu item's path), then wait until no
    Layers-menu work is in flight, so its layer (if any) has been added."""
    from napari._app_model import get_app_model

    from napari_vos._widgets.menu_work import running_work

    get_app_model().commands.execute_command(command_id).result()
    qtbot.waitUntil(lambda: running_work() == 0, timeout=timeout)
