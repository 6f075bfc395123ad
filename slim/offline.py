"""The offline guard: run ultralytics with no update checks, no pip installs at run time, no font download.

Importing slim never applies it (a library leaves its user's settings alone). The `slim` command applies it
before ultralytics is first imported, unless the user has configured ultralytics themselves; the Makefile and
the tests always apply it (SLIM_OFFLINE=1). See should_go_offline() for the rule.
"""

import os
import platform
import shutil
from pathlib import Path

SLIM_CONFIG_DIR = Path.home() / ".cache" / "slim"  # slim's own ultralytics config dir (settings.json, fonts)


def should_go_offline(env: os._Environ | dict = os.environ) -> bool:
    """Whether the `slim` command applies the guard.

    SLIM_OFFLINE=1 always, SLIM_OFFLINE=0 never. Unset: only for a user who has not configured ultralytics,
    i.e. neither YOLO_OFFLINE nor YOLO_CONFIG_DIR is set and ultralytics' settings file is not in its default
    place. Otherwise ultralytics runs as the user's own `yolo` command does: their datasets_dir and weights_dir,
    and a bare asset name such as yolov8s.pt downloaded where the network allows.
    """
    choice = env.get("SLIM_OFFLINE", "").strip().lower()
    if choice in ("1", "true", "yes", "on"):
        return True
    if choice in ("0", "false", "no", "off"):
        return False
    if "YOLO_OFFLINE" in env or "YOLO_CONFIG_DIR" in env:
        return False
    return not (_ultralytics_config_dir(env) / "settings.json").exists()


def _ultralytics_config_dir(env) -> Path:
    """Where ultralytics keeps settings.json when YOLO_CONFIG_DIR is unset (its documented per-OS place)."""
    home = Path.home()
    system = platform.system()
    if system == "Windows":
        return home / "AppData" / "Roaming" / "Ultralytics"
    if system == "Darwin":
        return home / "Library" / "Application Support" / "Ultralytics"
    return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "Ultralytics"


def keep_ultralytics_offline() -> None:
    """Set the offline variables (those the user has not set) and give ultralytics a local font.

    Must run before ultralytics is first imported: it reads these variables once, at import.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")  # skips the connectivity probe and update checks
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")  # never pip-install at run time
    os.environ.setdefault("YOLO_CONFIG_DIR", str(SLIM_CONFIG_DIR))
    _provide_fonts(Path(os.environ["YOLO_CONFIG_DIR"]).expanduser() / "Ultralytics")


def _provide_fonts(fonts: Path) -> None:
    """ultralytics' check_font() ignores YOLO_OFFLINE and downloads Arial unless the config dir has it: copy DejaVu."""
    if (fonts / "Arial.Unicode.ttf").exists():
        return
    import matplotlib  # here, not at the top: only the guard needs it

    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    fonts.mkdir(parents=True, exist_ok=True)
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):  # copy then rename: parallel workers may race here
        tmp = fonts / f".{name}.{os.getpid()}"
        shutil.copyfile(dejavu, tmp)
        os.replace(tmp, fonts / name)
