"""slim: network-slimming channel pruning for Ultralytics YOLO.

Importing slim keeps ultralytics offline: no update checks, no font or model downloads, no telemetry.
This has to happen before ultralytics is first imported, so it lives here.
"""

import os
import shutil
from pathlib import Path

__version__ = "0.1.0"


def _keep_ultralytics_offline() -> None:
    os.environ.setdefault("YOLO_OFFLINE", "1")  # skips the connectivity probe and update checks
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")  # never pip-install at run time
    os.environ.setdefault("YOLO_CONFIG_DIR", str(Path.home() / ".cache" / "slim"))
    # check_font() ignores YOLO_OFFLINE and tries a download unless Arial is already in the config dir
    fonts = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics"
    if not (fonts / "Arial.Unicode.ttf").exists():
        import matplotlib

        dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        fonts.mkdir(parents=True, exist_ok=True)
        for name in ("Arial.ttf", "Arial.Unicode.ttf"):  # copy then rename: parallel workers may race here
            tmp = fonts / f".{name}.{os.getpid()}"
            shutil.copyfile(dejavu, tmp)
            os.replace(tmp, fonts / name)


_keep_ultralytics_offline()
