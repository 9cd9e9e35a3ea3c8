"""Builds the synthetic clip of the objects evaluation (issue 17): real people cut out of
`vtest.avi` walking known straight paths over a people-free background of the same camera,
with exact ground truth for detection, tracking, zone counts and line crossings.

  source deploy/env.sh
  python deploy/make_synthetic_objects.py --out "$ARGUS_CACHE/objects-eval"

writes, in --out:

* `synthetic-objects.avi`: 768x576, 10 fps, 20 s, Motion JPEG in AVI (GStreamer's
  `jpegenc ! avimux`, which `decodebin` reads back);
* `synthetic-objects.json`: the ground truth (its `about` lists the fields).

**Background**: the per-pixel median of every 5th frame of vtest.avi. People keep moving, so
the median is the empty street; the parked van and car stay, as they never move.

**People**: cut out of labelled frames of `tests/data/objects/vtest-labels.json` (people
standing clear of everyone else, their boxes widened by a few pixels): the pixels that differ
from the background by more than a threshold, closed by a 3x3 dilation and erosion, pasted
where the path puts them (nearer people, lower in the view, painted last). Each person is the
same picture for the whole walk (a cut-out slides, its legs do not move), and each keeps the
size it had where it was cut: its lane is chosen at about the same distance from the camera.
The ground-truth box is the tight box of the pasted pixels, clipped to the frame: what a
labeller would draw, including the parts hidden behind another person.

**What happens** (times in seconds, positions as the box's bottom centre, normalised):

* `crosser` walks left to right across line `gate` (a short vertical line only it crosses);
* `dweller` walks in from the right into zone `bench` and stays there to the end
  (`bench.dwell_s` = 5 s, so one `dwell_exceeded`);
* three more cross line `kerb` (a long vertical line) both ways, one of them through zone
  `lawn` on the way, and `crosser` crosses `kerb` too.

Expected crossings and zone entries are computed from the ground-truth boxes frame by frame,
with the rule the service applies (`pipeline/src/objects/zones.rs`): the bottom centre of a
box moves from one side of the line to the other between two frames; it is inside a zone
polygon. Times are those of the first frame past the line or inside the zone.

Deterministic: no randomness beyond the fixed choice of cut-outs and paths (`--seed` picks
which labelled people are cut out, from the suitable ones); the same inputs give the same
bytes. Needs only GStreamer's command line tools and numpy (the Argus venv has it).
"""

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LABELS = REPO / "tests" / "data" / "objects" / "vtest-labels.json"
WIDTH, HEIGHT, FPS, SECONDS = 768, 576, 10, 20
FRAME_BYTES = WIDTH * HEIGHT * 3
CAMERA = "synthetic"
# A pixel belongs to the cut-out when a channel differs from the background by more than this
# (0-255): the street's noise between frames stays under it, clothes against tarmac are above.
CUTOUT_THRESHOLD = 28

ZONES = [
    {"id": "bench", "camera": CAMERA, "points": [[0.62, 0.40], [0.82, 0.40], [0.82, 0.49], [0.62, 0.49]],
     "dwell_s": 5.0},
    {"id": "lawn", "camera": CAMERA, "points": [[0.05, 0.64], [0.40, 0.64], [0.40, 0.78], [0.05, 0.78]]},
]
LINES = [
    {"id": "gate", "camera": CAMERA, "from": [0.40, 0.52], "to": [0.40, 0.60]},
    {"id": "kerb", "camera": CAMERA, "from": [0.60, 0.30], "to": [0.60, 0.80]},
]
# Who walks where: straight legs between waypoints (time s, x, y of the box's bottom centre).
# A person is in view from its first waypoint's time to its last's.
ACTORS = [
    {"id": 1, "role": "crosser", "path": [[0.5, 0.10, 0.56], [9.5, 0.82, 0.56]]},
    {"id": 2, "role": "dweller", "path": [[2.0, 0.97, 0.45], [6.0, 0.72, 0.45], [20.0, 0.72, 0.45]]},
    {"id": 3, "role": "walker", "path": [[10.0, 0.88, 0.51], [17.5, 0.15, 0.51]]},
    {"id": 4, "role": "walker", "path": [[9.0, 0.08, 0.71], [17.0, 0.78, 0.71]]},
    {"id": 5, "role": "walker", "path": [[12.5, 0.75, 0.38], [19.5, 0.35, 0.38]]},
]


def sample_video() -> Path:
    samples = os.environ.get("ARGUS_SAMPLE_DIR", "/usr/share/doc/opencv-doc/examples/data")
    return Path(samples) / "vtest.avi"


def decode(video: Path, every: int) -> dict[int, np.ndarray]:
    """Every `every`-th frame of the video, RGB, by index."""
    frames = {}
    decoder = subprocess.Popen(
        ["gst-launch-1.0", "-q", "filesrc", f"location={video}", "!", "decodebin", "!", "videoconvert", "!",
         "video/x-raw,format=RGB", "!", "fdsink", "fd=1"],
        stdout=subprocess.PIPE,
    )
    index = 0
    while True:
        data = decoder.stdout.read(FRAME_BYTES)
        if len(data) < FRAME_BYTES:
            break
        if index % every == 0:
            frames[index] = np.frombuffer(data, np.uint8).reshape(HEIGHT, WIDTH, 3)
        index += 1
    if decoder.wait() != 0:
        raise SystemExit(f"GStreamer could not decode {video}")
    return frames


def shifted_max(mask: np.ndarray) -> np.ndarray:
    """3x3 dilation of a boolean mask (numpy has no morphology; scipy is not in the venv)."""
    padded = np.pad(mask, 1)
    out = np.zeros_like(mask)
    for dy in range(3):
        for dx in range(3):
            out |= padded[dy : dy + mask.shape[0], dx : dx + mask.shape[1]]
    return out


def close(mask: np.ndarray) -> np.ndarray:
    """Dilation then erosion: fills the pinholes where clothes match the tarmac."""
    return ~shifted_max(~shifted_max(mask))


def boxes_overlap(a, b, margin: float) -> bool:
    return not (a[2] + margin < b[0] or b[2] + margin < a[0] or a[3] + margin < b[1] or b[3] + margin < a[1])


def cutouts(labels: dict, frames: dict[int, np.ndarray], background: np.ndarray) -> list[dict]:
    """Every labelled person standing clear of others and of the frame's edges, cut out."""
    found = []
    for frame in labels["frames"]:
        people = [o for o in frame["objects"] if o["class"] == "person"]
        for person in people:
            box = person["bbox"]
            if person.get("difficult") or box[0] < 0.02 or box[2] > 0.98 or box[3] > 0.97:
                continue
            if any(other is not person and boxes_overlap(box, other["bbox"], 0.02) for other in people):
                continue
            x1, y1 = int(box[0] * WIDTH) - 3, int(box[1] * HEIGHT) - 3
            x2, y2 = int(np.ceil(box[2] * WIDTH)) + 3, int(np.ceil(box[3] * HEIGHT)) + 3
            image = frames[frame["index"]][y1:y2, x1:x2]
            difference = np.abs(image.astype(np.int16) - background[y1:y2, x1:x2].astype(np.int16)).max(axis=2)
            mask = close(difference > CUTOUT_THRESHOLD)
            if mask.mean() < 0.2:
                continue  # too little of it differs from the street: a poor cut-out
            ys, xs = np.nonzero(mask)
            top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            found.append({
                "frame": frame["index"], "box": [round(v, 4) for v in box],
                "pixels": image[top:bottom, left:right], "mask": mask[top:bottom, left:right],
                # where its feet were: people nearer the camera (lower) are bigger
                "foot_y": (y1 + bottom) / HEIGHT,
            })
    return found


def position(path: list, time: float):
    """The bottom centre at `time`, or None outside the path's span."""
    if time < path[0][0] or time > path[-1][0]:
        return None
    for (t0, x0, y0), (t1, x1, y1) in zip(path, path[1:]):
        if t0 <= time <= t1:
            share = (time - t0) / (t1 - t0)
            return x0 + share * (x1 - x0), y0 + share * (y1 - y0)
    return path[-1][1], path[-1][2]


def segments_cross(a, b, c, d) -> bool:
    """Whether segments ab and cd cross properly: the test of zones.rs, written again here
    because this script checks the service against it and cannot call Rust."""
    def orientation(p, q, r):
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])
    return (orientation(c, d, a) * orientation(c, d, b) < 0) and (orientation(a, b, c) * orientation(a, b, d) < 0)


def inside(points, point) -> bool:
    """Even-odd rule, as ZoneConfig::contains."""
    x, y = point
    result = False
    for i in range(len(points)):
        xi, yi = points[i]
        xj, yj = points[i - 1]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            result = not result
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=17, help="picks the cut-outs among the suitable ones")
    args = parser.parse_args()

    labels = json.loads(LABELS.read_text())
    frames = decode(sample_video(), every=5)
    background = np.median(np.stack(list(frames.values())), axis=0).astype(np.uint8)
    candidates = cutouts(labels, frames, background)
    rng = np.random.default_rng(args.seed)
    sprites = {}
    used = set()
    for actor in ACTORS:
        # a cut-out whose feet were within 4% of the frame's height of the lane's: its size
        # then fits that distance from the camera
        lane = actor["path"][0][2]
        fitting = [i for i, c in enumerate(candidates) if abs(c["foot_y"] - lane) < 0.04 and i not in used]
        if not fitting:
            raise SystemExit(f"no cut-out fits the lane at y = {lane}")
        choice = int(rng.choice(fitting))
        used.add(choice)
        sprites[actor["id"]] = candidates[choice]

    frame_count = FPS * SECONDS
    truth_frames = []
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw_path = Path(tmp) / "frames.rgb"
        with raw_path.open("wb") as raw:
            for index in range(frame_count):
                time = index / FPS
                canvas = background.copy()
                placed = []
                for actor in ACTORS:
                    at = position(actor["path"], time)
                    if at is not None:
                        placed.append((at[1], actor, at))
                objects = []
                for _, actor, (x, y) in sorted(placed, key=lambda p: p[0]):
                    sprite = sprites[actor["id"]]
                    h, w = sprite["mask"].shape
                    left, top = round(x * WIDTH - w / 2), round(y * HEIGHT - h)
                    # the part of the cut-out inside the frame
                    fx1, fy1, fx2, fy2 = max(left, 0), max(top, 0), min(left + w, WIDTH), min(top + h, HEIGHT)
                    if fx2 <= fx1 or fy2 <= fy1:
                        continue
                    mask = sprite["mask"][fy1 - top : fy2 - top, fx1 - left : fx2 - left]
                    pixels = sprite["pixels"][fy1 - top : fy2 - top, fx1 - left : fx2 - left]
                    canvas[fy1:fy2, fx1:fx2][mask] = pixels[mask]
                    ys, xs = np.nonzero(mask)
                    bbox = [(fx1 + xs.min()) / WIDTH, (fy1 + ys.min()) / HEIGHT,
                            (fx1 + xs.max() + 1) / WIDTH, (fy1 + ys.max() + 1) / HEIGHT]
                    objects.append({"id": actor["id"], "class": "person", "bbox": [round(v, 4) for v in bbox]})
                objects.sort(key=lambda o: o["id"])
                raw.write(canvas.tobytes())
                truth_frames.append({"index": index, "time_s": round(time, 3), "objects": objects})
        video = args.out / "synthetic-objects.avi"
        subprocess.run(
            ["gst-launch-1.0", "-q", "filesrc", f"location={raw_path}", f"blocksize={FRAME_BYTES}", "!",
             "rawvideoparse", f"width={WIDTH}", f"height={HEIGHT}", "format=rgb", f"framerate={FPS}/1", "!",
             "videoconvert", "!", "video/x-raw,format=I420", "!", "jpegenc", "quality=85", "!", "avimux", "!",
             "filesink", f"location={video}"],
            check=True,
        )

    crossings, entries, counts = [], [], []
    previous = {}
    since = {}
    for frame in truth_frames:
        frame_counts = {zone["id"]: 0 for zone in ZONES}
        for obj in frame["objects"]:
            x1, _, x2, y2 = obj["bbox"]
            point = ((x1 + x2) / 2, y2)
            before = previous.get(obj["id"])
            for line in LINES:
                if before and segments_cross(line["from"], line["to"], before, point):
                    direction = "left_to_right" if point[0] > before[0] else "right_to_left"
                    crossings.append({"track": obj["id"], "line": line["id"], "direction": direction,
                                      "time_s": frame["time_s"]})
            for zone in ZONES:
                key = (obj["id"], zone["id"])
                if inside(zone["points"], point):
                    frame_counts[zone["id"]] += 1
                    if key not in since:
                        since[key] = frame["time_s"]
                        entries.append({"track": obj["id"], "zone": zone["id"], "entered_s": frame["time_s"],
                                        "left_s": None})
                elif key in since:
                    del since[key]
                    entry = next(e for e in reversed(entries) if (e["track"], e["zone"]) == key)
                    entry["left_s"] = frame["time_s"]
            previous[obj["id"]] = point
        frame["zone_counts"] = frame_counts
    for entry in entries:
        zone = next(z for z in ZONES if z["id"] == entry["zone"])
        end = entry["left_s"] if entry["left_s"] is not None else truth_frames[-1]["time_s"]
        limit = zone.get("dwell_s")
        entry["dwell_exceeded"] = limit is not None and end - entry["entered_s"] >= limit

    truth = {
        "about": [
            "Ground truth of synthetic-objects.avi, written by deploy/make_synthetic_objects.py (its docstring says how the clip is made).",
            "frames[]: per frame of the video (index from 0, time_s = index / fps), each person in view: id (the same for the whole walk), class, bbox ([x1, y1, x2, y2] as fractions of the frame, the tight box of the pasted pixels, clipped to the frame); zone_counts: how many boxes have their bottom centre in each zone.",
            "zones[] and lines[]: in the service's [[objects.zones]] / [[objects.lines]] form, camera `synthetic`.",
            "crossings[]: id (track), line, direction (left_to_right / right_to_left, as the service names them), time_s: the first frame whose bottom centre is past the line.",
            "zone_entries[]: track, zone, entered_s (first frame inside), left_s (first frame outside; null: still inside at the end), dwell_exceeded (stayed at least the zone's dwell_s).",
            "actors[]: each person's path (time s, x, y of the box's bottom centre), and the vtest.avi frame and labelled box it was cut from.",
        ],
        "video": video.name,
        "width": WIDTH,
        "height": HEIGHT,
        "fps": FPS,
        "seed": args.seed,
        "zones": ZONES,
        "lines": LINES,
        "actors": [dict(actor, cut_from={"frame": sprites[actor["id"]]["frame"], "bbox": sprites[actor["id"]]["box"]})
                   for actor in ACTORS],
        "crossings": crossings,
        "zone_entries": entries,
        "frames": truth_frames,
    }
    (args.out / "synthetic-objects.json").write_text(json.dumps(truth, indent=1) + "\n")
    print(f"wrote {video} ({frame_count} frames) and synthetic-objects.json: "
          f"{len(crossings)} crossings, {len(entries)} zone entries")


if __name__ == "__main__":
    main()
