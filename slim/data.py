"""The built-in demo dataset: coloured shapes on cluttered backgrounds, in ultralytics detection format.

Generated from its arguments alone (no downloads), once per folder, and moved into place atomically.
"""

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from slim.errors import SlimError, UsageError

CLASSES = ("ellipse", "rectangle", "triangle", "cross", "star")
OTHER_CLASSES = ("hexagon", "diamond", "arrow")  # a second set, none of the first's shapes: for transfer learning
GENERATOR = "slim.data shapes v3"  # bump when the drawing changes, so old folders are not taken as current
STAMP = "slim_demo.json"
YAML = "data.yaml"


def make_demo_dataset(root: Path, n_train: int, n_val: int, imgsz: int, seed: int = 0,
                      classes: tuple = CLASSES) -> Path:
    """Generate the demo dataset in `root` unless it is already there, and return its yaml.

    Args:
        root: dataset folder; it gets images/{train,val}, labels/{train,val}, data.yaml and a stamp.
        n_train: number of training images.
        n_val: number of validation images.
        imgsz: side of the square images in pixels.
        seed: every image and label follows from (seed, split, index).
        classes: the shape names to draw, from CLASSES and OTHER_CLASSES; class i of the labels is classes[i].

    Returns:
        The absolute path of data.yaml.

    Raises:
        UsageError: an argument is out of range, or `root` holds something else (another dataset or
            a folder that is not a demo dataset).
    """
    if n_train < 1 or n_val < 1:
        raise UsageError(f"need at least one train and one val image, got n_train={n_train} n_val={n_val}")
    if imgsz < 32:
        raise UsageError(f"imgsz must be at least 32 pixels, got {imgsz}")
    unknown = [c for c in classes if c not in CLASSES + OTHER_CLASSES]
    if unknown or not classes:
        raise UsageError(f"demo classes must be names from {CLASSES + OTHER_CLASSES}, got {list(classes)}")
    root = Path(root).absolute()
    args = {"generator": GENERATOR, "n_train": n_train, "n_val": n_val, "imgsz": imgsz, "seed": seed}
    if tuple(classes) != CLASSES:  # only then: stamps of default sets written before this option stay valid
        args["classes"] = list(classes)
    if _is_complete(root, args):
        return root / YAML
    _check_replaceable(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_tmp(root)
    tmp = root.parent / f"{_tmp_prefix(root)}{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_dataset(tmp, root, args)
        _move_into_place(tmp, root, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root / YAML


def _read_stamp(root: Path):
    try:
        return json.loads((root / STAMP).read_text())
    except (OSError, ValueError):
        return None


def _is_complete(root: Path, args: dict) -> bool:
    """True when `root` was fully written with these arguments and still holds every image."""
    stamp = _read_stamp(root)
    if stamp is None:
        return False
    if stamp != args:
        raise UsageError(
            f"{root} holds a demo dataset made with {_describe(stamp)}, not {_describe(args)}; "
            "choose another root or delete it"
        )
    counts = {split: len(list((root / "images" / split).glob("*.png"))) for split in ("train", "val")}
    if counts != {"train": args["n_train"], "val": args["n_val"]}:
        raise SlimError(f"{root} is a damaged demo dataset (image files missing); delete it to regenerate")
    return True


def _describe(args: dict) -> str:
    keys = ("n_train", "n_val", "imgsz", "seed", "classes", "generator")
    return " ".join(f"{k}={args[k]}" for k in keys if k in args)


def _check_replaceable(root: Path) -> None:
    """Refuse to overwrite a folder that has files in it but no stamp: it is not ours."""
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UsageError(f"{root} exists and is not a slim demo dataset; choose another root")


def _tmp_prefix(root: Path) -> str:
    return f".{root.name}.partial-"


def _remove_abandoned_tmp(root: Path) -> None:
    """Delete partial folders left by killed runs; a folder of a run still alive is left alone."""
    for tmp in root.parent.glob(f"{_tmp_prefix(root)}*"):
        pid = tmp.name[len(_tmp_prefix(root)) :]
        if not pid.isdigit() or not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftover from an earlier call that was interrupted in this process
    if os.name == "nt":
        return True  # there os.kill(pid, 0) would terminate the process, not probe it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    return True


def _move_into_place(tmp: Path, root: Path, args: dict) -> None:
    """Rename the finished folder to `root`; a concurrent run that got there first with the same args wins."""
    try:
        if root.exists():
            root.rmdir()  # empty, checked by _check_replaceable
        tmp.rename(root)
    except OSError:
        if not _is_complete(root, args):
            raise SlimError(f"could not move the generated dataset into {root}") from None


def _write_dataset(tmp: Path, root: Path, args: dict) -> None:
    """Write every image and label to `tmp`, then data.yaml, then the stamp last: the stamp marks completion."""
    total = args["n_train"] + args["n_val"]
    with tqdm(total=total, desc=f"demo data {root.name}", unit="img", delay=1.0, leave=False) as bar:
        for split in ("train", "val"):
            _write_split(tmp, split, args, bar)
    data = {"path": str(root), "train": "images/train", "val": "images/val", "names": dict(enumerate(_classes(args)))}
    (tmp / YAML).write_text(f"# slim demo dataset: {_describe(args)}\n" + yaml.safe_dump(data, sort_keys=False))
    (tmp / STAMP).write_text(json.dumps(args, indent=1) + "\n")


def _write_split(tmp: Path, split: str, args: dict, bar: tqdm) -> None:
    """Write images/<split>/<split>_NNNNN.png and the matching labels/<split>/*.txt."""
    (tmp / "images" / split).mkdir(parents=True)
    (tmp / "labels" / split).mkdir(parents=True)
    # one independent stream per image, so an image does not depend on how many came before it
    seeds = np.random.SeedSequence([args["seed"], 0 if split == "train" else 1]).spawn(args[f"n_{split}"])
    for i, ss in enumerate(seeds):
        image, labels = draw_image(np.random.default_rng(ss), args["imgsz"], _classes(args))
        stem = f"{split}_{i:05d}"
        cv2.imwrite(str(tmp / "images" / split / f"{stem}.png"), image)
        lines = "".join(f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n" for c, cx, cy, w, h in labels)
        (tmp / "labels" / split / f"{stem}.txt").write_text(lines)
        bar.update()


def _classes(args: dict) -> tuple:
    return tuple(args.get("classes", CLASSES))


def draw_image(rng: np.random.Generator, imgsz: int, classes: tuple = CLASSES):
    """Draw one image: background clutter, 1-5 non-overlapping shapes of `classes`, a few strokes on top.

    Returns:
        image: (imgsz, imgsz, 3) uint8 BGR.
        labels: list of (class, cx, cy, w, h), box coordinates normalised to (0, 1].
    """
    image = _background(rng, imgsz)
    _strokes(rng, image, int(rng.integers(3, 9)))
    _splats(rng, image, int(rng.integers(0, 3)))
    boxes, labels = [], []
    for _ in range(int(rng.integers(1, 6))):
        cls = int(rng.integers(len(classes)))
        points = _place(rng, _shape(classes[cls], rng), imgsz, boxes)
        if points is None:
            continue  # no free spot left: fewer objects rather than overlapping labels
        x0, y0 = points.min(0)
        x1, y1 = points.max(0)
        boxes.append((x0, y0, x1, y1))
        cv2.fillPoly(image, [np.round(points * 16).astype(np.int32)], _contrasting(rng, image, points), cv2.LINE_AA, 4)
        labels.append((cls, (x0 + x1) / 2 / imgsz, (y0 + y1) / 2 / imgsz, (x1 - x0) / imgsz, (y1 - y0) / imgsz))
    _strokes(rng, image, int(rng.integers(0, 3)), thickness=1)  # thin occluders that cross the objects
    return image, labels


def _background(rng: np.random.Generator, imgsz: int) -> np.ndarray:
    """A colour gradient, low-frequency blotches and pixel noise: (imgsz, imgsz, 3) uint8."""
    ramp = np.linspace(0.0, 1.0, imgsz, dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * ramp[None, :, None] + np.sin(angle) * ramp[:, None, None]) / 2 + 0.5
    a, b = rng.uniform(40, 215, (2, 3)).astype(np.float32)
    image = a + (b - a) * t
    blotches = rng.normal(0, 25, (4, 4, 3)).astype(np.float32)
    image += cv2.resize(blotches, (imgsz, imgsz), interpolation=cv2.INTER_CUBIC)
    image += rng.normal(0, 8, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _strokes(rng: np.random.Generator, image: np.ndarray, n: int, thickness: int = 0) -> None:
    """Draw `n` random polylines in place: clutter that is no class (thin, open, wandering)."""
    imgsz = image.shape[0]
    for _ in range(n):
        k = int(rng.integers(2, 5))
        points = np.cumsum(rng.normal(0, imgsz / 4, (k, 2)), 0) + rng.uniform(0, imgsz, 2)
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        width = thickness or int(rng.integers(1, 3))
        cv2.polylines(image, [points.astype(np.int32)], False, color, width, cv2.LINE_AA)


def _splats(rng: np.random.Generator, image: np.ndarray, n: int) -> None:
    """Draw `n` irregular jagged blobs in place: filled clutter whose outline matches no class."""
    imgsz = image.shape[0]
    for _ in range(n):
        k = int(rng.integers(7, 12))
        t = np.sort(rng.uniform(0, 2 * np.pi, k))
        r = imgsz * rng.uniform(0.03, 0.1) * rng.uniform(0.3, 1.0, k)
        points = np.stack([r * np.cos(t), r * np.sin(t)], 1) + rng.uniform(0, imgsz, 2)
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.fillPoly(image, [points.astype(np.int32)], color, cv2.LINE_AA)


def _shape(name: str, rng: np.random.Generator) -> np.ndarray:
    """Outline of shape `name` in a unit frame centred on 0, stretched and rotated at random: (k, 2)."""
    if name == "ellipse":
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        points = np.stack([np.cos(t), np.sin(t)], 1)
    elif name == "rectangle":
        points = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float)
    elif name == "triangle":  # apex up
        points = np.array([[0, -1], [1, 1], [-1, 1]], float)
    elif name == "cross":  # plus-shaped, arms a third of the width
        a = 1 / 3
        points = np.array([[-a, -1], [a, -1], [a, -a], [1, -a], [1, a], [a, a], [a, 1], [-a, 1],
                           [-a, a], [-1, a], [-1, -a], [-a, -a]], float)  # fmt: skip
    elif name == "star":  # five-pointed
        t = -np.pi / 2 + np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        points = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    elif name == "hexagon":
        t = np.arange(6) * np.pi / 3
        points = np.stack([np.cos(t), np.sin(t)], 1)
    elif name == "diamond":  # a square on its corner
        points = np.array([[0, -1], [1, 0], [0, 1], [-1, 0]], float)
    else:  # arrow pointing right: a shaft and a triangular tip
        points = np.array([[-1, -0.3], [0.2, -0.3], [0.2, -0.8], [1, 0], [0.2, 0.8], [0.2, 0.3], [-1, 0.3]], float)
    aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
    points = points * [np.sqrt(aspect), 1 / np.sqrt(aspect)]
    angle = rng.uniform(-np.pi / 12, np.pi / 12)  # small tilt: the silhouettes stay distinct
    c, s = np.cos(angle), np.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def _place(rng: np.random.Generator, shape: np.ndarray, imgsz: int, boxes: list, tries: int = 20):
    """Scale and move `shape` to a random spot inside the image whose box overlaps none of `boxes`."""
    extent = shape.max(0) - shape.min(0)
    for _ in range(tries):
        size = imgsz * rng.uniform(0.16, 0.5)  # the longer side of the box, in pixels
        points = (shape - shape.min(0)) * (size / extent.max())
        w, h = points.max(0)
        points = points + [rng.uniform(1, imgsz - 1 - w), rng.uniform(1, imgsz - 1 - h)]
        x0, y0 = points.min(0)
        x1, y1 = points.max(0)
        if all(x1 < bx0 or bx1 < x0 or y1 < by0 or by1 < y0 for bx0, by0, bx1, by1 in boxes):
            return points
    return None


def _contrasting(rng: np.random.Generator, image: np.ndarray, points: np.ndarray, tries: int = 10) -> tuple:
    """A random colour that differs from the background under the shape by at least 60 grey levels."""
    x0, y0 = np.floor(points.min(0)).astype(int)
    x1, y1 = np.ceil(points.max(0)).astype(int)
    under = image[y0 : y1 + 1, x0 : x1 + 1].reshape(-1, 3).mean(0)
    for _ in range(tries):
        color = rng.integers(0, 256, 3)
        if np.abs(color - under).mean() >= 60:
            return tuple(int(c) for c in color)
    return (0, 0, 0) if under.mean() > 127 else (255, 255, 255)
