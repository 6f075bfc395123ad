"""The built-in demo dataset: coloured shapes on cluttered backgrounds, in ultralytics detection format.

Generated from its arguments alone (no downloads), once per folder, and moved into place atomically.
"""

import importlib.util
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
HARD = "hard"  # the harder style: photographs behind, every shape class, small and overlapping objects
HARD_GENERATOR = "slim.data shapes-hard v1"  # its own version: changing it leaves the plain demo's folders valid
# photographs that ship inside scikit-image's wheel (BSD-3): real edges, textures, faces and objects as clutter,
# with no download; read as files, scikit-image itself is never imported
PHOTOS = ("astronaut.png", "brick.png", "camera.png", "chelsea.png", "clock_motion.png", "coffee.png", "coins.png",
          "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png", "motorcycle_left.png",
          "page.png", "retina.jpg", "rocket.jpg", "text.png")
# the built-in generated datasets by `data:` name: (classes, style)
DEMOS = {"demo": (CLASSES, "plain"), "demo-other": (OTHER_CLASSES, "plain"), "demo-hard": (CLASSES + OTHER_CLASSES, HARD)}
STAMP = "slim_demo.json"
YAML = "data.yaml"


def make_demo_dataset(root: Path, n_train: int, n_val: int, imgsz: int, seed: int = 0,
                      classes: tuple = CLASSES, style: str = "plain") -> Path:
    """Generate the demo dataset in `root` unless it is already there, and return its yaml.

    Args:
        root: dataset folder; it gets images/{train,val}, labels/{train,val}, data.yaml and a stamp.
        n_train: number of training images.
        n_val: number of validation images.
        imgsz: side of the square images in pixels.
        seed: every image and label follows from (seed, split, index).
        classes: the shape names to draw, from CLASSES and OTHER_CLASSES; class i of the labels is classes[i].
        style: "plain" (the demo), or HARD: photographs as background and clutter, 3-12 objects of 6-30% of the
            image side that may overlap (each covers at most 40% of any box drawn before it), texture on the shapes
            and blur; the photographs come from scikit-image's wheel (pip install scikit-image).

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
    if style not in ("plain", HARD):
        raise UsageError(f"demo style must be 'plain' or '{HARD}', got '{style}'")
    root = Path(root).absolute()
    args = {"generator": HARD_GENERATOR if style == HARD else GENERATOR, "n_train": n_train, "n_val": n_val, "imgsz": imgsz, "seed": seed}
    if tuple(classes) != CLASSES:  # only then: stamps of default sets written before this option stay valid
        args["classes"] = list(classes)
    if style == HARD:
        args["style"] = style
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


def generator_of(demo: str) -> str:
    """The generator version of the built-in set named `demo` (a key of DEMOS)."""
    return HARD_GENERATOR if DEMOS[demo][1] == HARD else GENERATOR


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
    keys = ("n_train", "n_val", "imgsz", "seed", "classes", "style", "generator")
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
    photos = load_photos() if args.get("style") == HARD else None
    for i, ss in enumerate(seeds):
        rng = np.random.default_rng(ss)
        if photos is None:
            image, labels = draw_image(rng, args["imgsz"], _classes(args))
        else:
            image, labels = draw_hard_image(rng, args["imgsz"], _classes(args), photos)
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
        cv2.fillPoly(image, [np.round(points * 16).astype(np.int32)], _contrasting(rng, image, points), cv2.LINE_AA, 4)
        labels.append(_label(cls, points, imgsz, boxes))
    _strokes(rng, image, int(rng.integers(0, 3)), thickness=1)  # thin occluders that cross the objects
    return image, labels


def _label(cls: int, points: np.ndarray, imgsz: int, boxes: list) -> tuple:
    """The YOLO label (class, cx, cy, w, h, normalised) of a shape drawn at `points`; its box joins `boxes`."""
    x0, y0 = points.min(0)
    x1, y1 = points.max(0)
    boxes.append((x0, y0, x1, y1))
    return cls, (x0 + x1) / 2 / imgsz, (y0 + y1) / 2 / imgsz, (x1 - x0) / imgsz, (y1 - y0) / imgsz


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


def _place(rng: np.random.Generator, shape: np.ndarray, imgsz: int, boxes: list, tries: int = 20,
           sizes: tuple = (0.16, 0.5), max_cover: float = 0.0):
    """Scale `shape` to a longer side of `sizes` (fractions of the image) and move it to a random spot inside the
    image where its box covers at most `max_cover` of each of `boxes` (0: overlaps none)."""
    extent = shape.max(0) - shape.min(0)
    for _ in range(tries):
        size = imgsz * rng.uniform(*sizes)  # the longer side of the box, in pixels
        points = (shape - shape.min(0)) * (size / extent.max())
        w, h = points.max(0)
        points = points + [rng.uniform(1, imgsz - 1 - w), rng.uniform(1, imgsz - 1 - h)]
        x0, y0 = points.min(0)
        x1, y1 = points.max(0)
        if all(_covered((x0, y0, x1, y1), box) <= max_cover for box in boxes):
            return points
    return None


def _covered(new: tuple, old: tuple) -> float:
    """The fraction of box `old`'s area that box `new` covers (both x0, y0, x1, y1); -1 when they do not touch."""
    w = min(new[2], old[2]) - max(new[0], old[0])
    h = min(new[3], old[3]) - max(new[1], old[1])
    if w < 0 or h < 0:
        return -1.0
    return w * h / max((old[2] - old[0]) * (old[3] - old[1]), 1e-9)


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


# --- the harder style: photographs behind and between the shapes --------------------------------------------------


def load_photos() -> list:
    """scikit-image's bundled photographs (PHOTOS) as BGR uint8 arrays, found without importing scikit-image.

    Raises:
        UsageError: scikit-image is not installed, or its wheel lacks the photographs.
    """
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("the hard demo set draws on scikit-image's bundled photographs: pip install scikit-image")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    photos = [cv2.imread(str(folder / name), cv2.IMREAD_COLOR) for name in PHOTOS]
    missing = [name for name, photo in zip(PHOTOS, photos) if photo is None]
    if missing:
        raise UsageError(f"scikit-image at {folder.parent} lacks its bundled photographs {missing}: reinstall it")
    return photos


def draw_hard_image(rng: np.random.Generator, imgsz: int, classes: tuple, photos: list):
    """Draw one image in the harder style: a photograph crop as background, a few photo patches and strokes as
    clutter, 3-12 shapes of 6-30% of the side that may overlap, each with some photo texture, then maybe a blur.

    Returns:
        image: (imgsz, imgsz, 3) uint8 BGR.
        labels: list of (class, cx, cy, w, h), box coordinates normalised to (0, 1].
    """
    image = _photo_crop(rng, photos, imgsz, imgsz)
    for _ in range(int(rng.integers(1, 4))):  # pasted patches: real edges and textures that are no class
        side = int(imgsz * rng.uniform(0.1, 0.35))
        x, y = rng.integers(0, imgsz - side, 2)
        image[y : y + side, x : x + side] = _photo_crop(rng, photos, side, side)
    _strokes(rng, image, int(rng.integers(2, 6)))
    _splats(rng, image, int(rng.integers(0, 3)))
    boxes, labels = [], []
    for _ in range(int(rng.integers(3, 13))):
        cls = int(rng.integers(len(classes)))
        points = _place(rng, _shape(classes[cls], rng), imgsz, boxes, sizes=(0.06, 0.3), max_cover=0.4)
        if points is None:
            continue
        _fill_textured(rng, image, points, photos)
        labels.append(_label(cls, points, imgsz, boxes))
    _strokes(rng, image, int(rng.integers(0, 4)), thickness=1)
    if rng.random() < 0.3:  # defocus: edges a detector cannot rely on being sharp
        image[:] = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.6, 1.4))
    return image, labels


def _photo_crop(rng: np.random.Generator, photos: list, width: int, height: int) -> np.ndarray:
    """A random crop of a random photograph, resized to (height, width, 3), maybe mirrored, with its brightness and
    contrast jittered."""
    photo = photos[int(rng.integers(len(photos)))]
    ph, pw = photo.shape[:2]
    side = int(min(ph, pw) * rng.uniform(0.25, 1.0))
    y, x = rng.integers(0, ph - side + 1), rng.integers(0, pw - side + 1)
    crop = cv2.resize(photo[y : y + side, x : x + side], (width, height), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    crop = crop.astype(np.float32) * rng.uniform(0.6, 1.3) + rng.uniform(-40, 40)
    return np.clip(crop, 0, 255).astype(np.uint8)


def _fill_textured(rng: np.random.Generator, image: np.ndarray, points: np.ndarray, photos: list) -> None:
    """Fill the polygon `points` in place with a contrasting colour blended with 20-50% of a photo texture."""
    colour = np.array(_contrasting(rng, image, points), np.float32)
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
    x0, y0 = np.floor(points.min(0)).astype(int)
    x1, y1 = np.ceil(points.max(0)).astype(int) + 1
    texture = _photo_crop(rng, photos, x1 - x0, y1 - y0).astype(np.float32)
    alpha = rng.uniform(0.2, 0.5)
    fill = (1 - alpha) * colour + alpha * texture
    m = mask[y0:y1, x0:x1, None].astype(np.float32) / 255
    region = image[y0:y1, x0:x1].astype(np.float32)
    image[y0:y1, x0:x1] = np.clip(region * (1 - m) + fill * m, 0, 255).astype(np.uint8)


# --- the demo set recast for the other tasks: same images, labels rewritten from each box ---------------------------


def _corners(cx: float, cy: float, w: float, h: float) -> list:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy - h / 2, cx + w / 2, cy + h / 2, cx - w / 2, cy + h / 2]


TASK_LABELS = {  # task -> (label line from a box row, extra yaml keys)
    "segment": (lambda c, cx, cy, w, h: [c, *_corners(cx, cy, w, h)], {}),  # the box outline as polygon
    "obb": (lambda c, cx, cy, w, h: [c, *_corners(cx, cy, w, h)], {}),  # the box as an axis-aligned rotated box
    "pose": (lambda c, cx, cy, w, h: [c, cx, cy, w, h, cx, cy, 2], {"kpt_shape": [1, 3], "flip_idx": [0]}),  # centre
}


def task_dataset(task: str, detect_yaml: Path, out: Path) -> Path:
    """A copy of a detection set (the demo's) for another task, written once to `out` and then reused.

    segment, obb and pose get their labels rewritten from each box (outline polygon, axis-aligned rotated box,
    one keypoint at the centre); classify gets an image-folder set of one crop per object, filed by class.

    Returns:
        The data.yaml for segment/obb/pose, the image folder for classify (as ultralytics takes them).
    """
    if task not in (*TASK_LABELS, "classify"):
        raise UsageError(f"task '{task}' has no demo variant: use one of {[*TASK_LABELS, 'classify']}")
    out = Path(out).absolute()
    result = out if task == "classify" else out / YAML
    if result.exists():
        return result
    tmp = out.with_name(f".{out.name}-tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    if task == "classify":
        _classify_folders(Path(detect_yaml), tmp)
    else:
        _relabel(Path(detect_yaml), tmp, out, *TASK_LABELS[task])
    tmp.rename(out)
    return result


def _relabel(data: Path, tmp: Path, out: Path, line, extra: dict) -> None:
    """Copy the images to `tmp` and rewrite every label line by line(cls, cx, cy, w, h); the yaml names `out`."""
    spec = yaml.safe_load(data.read_text())
    src = Path(spec["path"])
    shutil.copytree(src / "images", tmp / "images")
    for label in (src / "labels").rglob("*.txt"):
        rows = [[float(v) for v in r.split()] for r in label.read_text().splitlines() if r.strip()]
        target = tmp / label.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(" ".join(f"{v:.6f}" for v in line(int(r[0]), *r[1:])) + "\n" for r in rows))
    (tmp / YAML).write_text(yaml.safe_dump({**spec, "path": str(out), **extra}))


def _classify_folders(data: Path, tmp: Path) -> None:
    """An image-folder classification set in `tmp`: one crop per object, filed under its class name."""
    spec = yaml.safe_load(data.read_text())
    src, names = Path(spec["path"]), spec["names"]
    for split in ("train", "val"):
        for label in sorted((src / "labels" / split).glob("*.txt")):
            image = cv2.imread(str(src / "images" / split / f"{label.stem}.png"))
            h, w = image.shape[:2]
            for k, row in enumerate(label.read_text().splitlines()):
                c, cx, cy, bw, bh = (float(v) for v in row.split())
                x0, y0 = int(max(0, (cx - bw / 2) * w)), int(max(0, (cy - bh / 2) * h))
                crop = image[y0 : int((cy + bh / 2) * h) + 1, x0 : int((cx + bw / 2) * w) + 1]
                folder = tmp / split / names[int(c)]
                folder.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(folder / f"{label.stem}_{k}.png"), crop)
