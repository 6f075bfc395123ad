"""slim: network-slimming channel pruning for Ultralytics YOLO.

Importing slim changes no environment variable and writes no file; the `slim` command (slim/cli.py) is what
keeps ultralytics offline, when the user has not configured it otherwise (slim/offline.py).
"""

__version__ = "0.1.0"
