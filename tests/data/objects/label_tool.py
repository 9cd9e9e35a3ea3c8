"""Helps label and review `vtest-labels.json`: the person and vehicle boxes on frames of
Debian opencv-doc's `vtest.avi`.

  propose  runs both COCO detectors (NanoDet and CenterNet, at a low threshold) on the
           labelled frames and renders their boxes numbered on each frame (N0, N1... for
           NanoDet in yellow, C0, C1... for CenterNet in cyan), and writes the boxes to
           proposals.json: the starting point of the labels, accepted, corrected or
           rejected by eye.
  review   renders the labels as they are in vtest-labels.json (green; difficult ones
           dashed orange; each numbered by its index in the frame) for a look by eye.

Run with the Argus venv, which has numpy, torch and onnxruntime (OpenCV's and PIL's Python
modules are not in it, so frames are decoded, overlaid and written by GStreamer's CLI):

  source deploy/env.sh
  python tests/data/objects/label_tool.py review --out /tmp/vtest-review
  python tests/data/objects/label_tool.py propose --out /tmp/vtest-proposals

The detectors' pre- and post-processing is the one of the Python baseline of the detection
bench (`operators/benches/detection_onnxruntime.py`), imported from there rather than
written twice.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
LABELS = HERE / "vtest-labels.json"
WIDTH, HEIGHT = 768, 576
FRAME_BYTES = WIDTH * HEIGHT * 3
# Drawn 1.5 times the frame's size: the people at the back are 20 pixels tall.
SCALE = 1.5


def sample_video() -> Path:
    samples = os.environ.get("ARGUS_SAMPLE_DIR", "/usr/share/doc/opencv-doc/examples/data")
    return Path(samples) / "vtest.avi"


def decode_frames(video: Path, indices: list[int]) -> dict[int, np.ndarray]:
    """The frames at these indices, RGB, decoded by GStreamer in order."""
    wanted = set(indices)
    frames = {}
    decoder = subprocess.Popen(
        ["gst-launch-1.0", "-q", "filesrc", f"location={video}", "!", "decodebin", "!",
         "videoconvert", "!", "video/x-raw,format=RGB", "!", "fdsink", "fd=1"],
        stdout=subprocess.PIPE,
    )
    index = 0
    while len(frames) < len(wanted):
        data = decoder.stdout.read(FRAME_BYTES)
        if len(data) < FRAME_BYTES:
            break
        if index in wanted:
            frames[index] = np.frombuffer(data, np.uint8).reshape(HEIGHT, WIDTH, 3)
        index += 1
    decoder.kill()
    decoder.wait()
    missing = wanted - frames.keys()
    if missing:
        raise SystemExit(f"{video} has no frames {sorted(missing)}")
    return frames


def render(frame: np.ndarray, boxes: list[dict], title: str, out: Path) -> None:
    """Writes `frame` with `boxes` ({bbox normalised, label, colour, dashed}) drawn as PNG."""
    w, h = WIDTH * SCALE, HEIGHT * SCALE
    shapes = [f'<text x="6" y="20" font-size="16" fill="white" stroke="black" stroke-width="0.6">{title}</text>']
    for box in boxes:
        x1, y1, x2, y2 = box["bbox"]
        dash = ' stroke-dasharray="4,3"' if box.get("dashed") else ""
        shapes.append(
            f'<rect x="{x1 * w:.1f}" y="{y1 * h:.1f}" width="{(x2 - x1) * w:.1f}" '
            f'height="{(y2 - y1) * h:.1f}" fill="none" stroke="{box["colour"]}" stroke-width="1.5"{dash}/>'
        )
        above = y1 * h - 2 if box.get("label_above", True) else y2 * h + 11
        shapes.append(
            f'<text x="{x1 * w + 1:.1f}" y="{above:.1f}" font-size="11" font-family="sans-serif" '
            f'fill="{box["colour"]}" stroke="black" stroke-width="0.3">{box["label"]}</text>'
        )
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0f}" height="{h:.0f}">{"".join(shapes)}</svg>'
    with tempfile.TemporaryDirectory() as tmp:
        raw, svg_path = Path(tmp) / "frame.rgb", Path(tmp) / "boxes.svg"
        raw.write_bytes(frame.tobytes())
        svg_path.write_text(svg)
        subprocess.run(
            ["gst-launch-1.0", "-q", "filesrc", f"location={raw}", f"blocksize={FRAME_BYTES}", "!",
             "rawvideoparse", f"width={WIDTH}", f"height={HEIGHT}", "format=rgb", "framerate=1/1", "!",
             "videoscale", "!", f"video/x-raw,width={w:.0f},height={h:.0f}", "!", "videoconvert", "!",
             "rsvgoverlay", f"location={svg_path}", "!", "videoconvert", "!", "pngenc", "!",
             "filesink", f"location={out}"],
            check=True,
        )


def load_bench_detectors():
    path = REPO / "operators" / "benches" / "detection_onnxruntime.py"
    spec = importlib.util.spec_from_file_location("detection_onnxruntime", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def propose(args) -> None:
    import onnxruntime
    import torch

    torch.set_num_threads(1)
    bench = load_bench_detectors()
    labels = json.loads(LABELS.read_text())
    indices = [frame["index"] for frame in labels["frames"]]
    frames = decode_frames(sample_video(), indices)
    wanted = np.zeros(80, bool)
    wanted[list(bench.COCO_CLASSES_USED.values())] = True
    names = {v: k for k, v in bench.COCO_CLASSES_USED.items()}
    model_dir = Path(os.environ.get("ARGUS_MODEL_DIR", Path.home() / ".cache/argus/models")) / "coco-detectors"
    proposals = {}
    for architecture, prefix in (("nanodet", "N"), ("centernet", "C")):
        session = onnxruntime.InferenceSession(str(model_dir / f"{architecture}.onnx"),
                                               providers=["CPUExecutionProvider"])
        spec = bench.SPEC[architecture]
        decode = bench.nanodet_candidates if architecture == "nanodet" else bench.centernet_candidates
        for index in indices:
            # the bench's frames are BGR, as the Rust operator's are
            bgr = np.ascontiguousarray(frames[index][..., ::-1])
            image, (scale, pad_x, pad_y) = bench.letterbox(bgr, spec["side"])
            image = (image - np.float32(spec["mean"])) / np.float32(spec["std"])
            image = image.transpose(2, 0, 1) if architecture == "nanodet" else image
            feed = {session.get_inputs()[0].name: np.ascontiguousarray(image[None], np.float32)}
            outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
            boxes, scores, classes = decode(outputs, args.threshold, wanted)
            kept = bench.nms(boxes, scores, classes, 0.5)
            found = proposals.setdefault(str(index), [])
            for k in kept:
                x1, y1, x2, y2 = boxes[k]
                bbox = [float(np.clip((x1 - pad_x) / scale / WIDTH, 0, 1)),
                        float(np.clip((y1 - pad_y) / scale / HEIGHT, 0, 1)),
                        float(np.clip((x2 - pad_x) / scale / WIDTH, 0, 1)),
                        float(np.clip((y2 - pad_y) / scale / HEIGHT, 0, 1))]
                number = sum(1 for p in found if p["id"].startswith(prefix))
                found.append({"id": f"{prefix}{number}", "class": names[int(classes[k])],
                              "score": round(float(scores[k]), 3), "bbox": [round(v, 4) for v in bbox]})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "proposals.json").write_text(json.dumps(proposals, indent=1))
    for index in indices:
        boxes = [{"bbox": p["bbox"], "label": f'{p["id"]} {p["class"][:3]} {p["score"]:.2f}',
                  "colour": "yellow" if p["id"][0] == "N" else "cyan",
                  "label_above": p["id"][0] == "N"}
                 for p in proposals[str(index)]]
        render(frames[index], boxes, f"frame {index}", args.out / f"{index:04d}.png")
    print(f"wrote {len(indices)} frames and proposals.json to {args.out}")


def review(args) -> None:
    labels = json.loads(LABELS.read_text())
    frames = decode_frames(sample_video(), [frame["index"] for frame in labels["frames"]])
    args.out.mkdir(parents=True, exist_ok=True)
    for frame in labels["frames"]:
        boxes = [{"bbox": o["bbox"], "label": f'{i} {o["class"]}',
                  "colour": "orange" if o.get("difficult") else "lime", "dashed": o.get("difficult", False)}
                 for i, o in enumerate(frame["objects"])]
        render(frames[frame["index"]], boxes, f'frame {frame["index"]} ({frame["time_s"]} s)',
               args.out / f'{frame["index"]:04d}.png')
    print(f"wrote {len(labels['frames'])} frames to {args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("propose", help="detector boxes to start the labels from")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threshold", type=float, default=0.2)
    r = commands.add_parser("review", help="render the labels for a look by eye")
    r.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    {"propose": propose, "review": review}[args.command](args)


if __name__ == "__main__":
    main()
