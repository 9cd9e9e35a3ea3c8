"""The COCO detectors run from Python's onnxruntime: the baseline of `cargo bench --bench detection`.

The bench (operators/benches/detection.rs) spawns this once per model with the raw frames it
decoded, and drives it round by round so that these rounds interleave with the Rust operator's
(the machine is shared and its load drifts). It does what the Rust operator does, in numpy
(and torch for the bilinear resize, which the venv has; OpenCV's Python module is not in it):
letterbox, RGB, normalise, run, decode, score threshold, class filter, class-wise NMS, map back.

* once the session is loaded and warmed up, it prints one JSON line (versions, threads);
* for every line read from stdin it detects in every frame and prints one JSON line with each
  frame's wall-clock milliseconds and detection count.

It exits when stdin closes.
"""

import argparse
import json
import sys
import time

import numpy as np
import onnxruntime
import torch

COCO_CLASSES_USED = {"person": 0, "bicycle": 1, "car": 2, "motorcycle": 3, "bus": 5, "truck": 7}
SPEC = {
    "nanodet": {"side": 416, "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]},
    "centernet": {"side": 512, "mean": [0.0] * 3, "std": [1.0] * 3},
}


def letterbox(frame: np.ndarray, side: int):
    height, width, _ = frame.shape
    scale = min(side / width, side / height)
    fitted_w = min(max(round(width * scale), 1), side)
    fitted_h = min(max(round(height * scale), 1), side)
    pad_x, pad_y = (side - fitted_w) // 2, (side - fitted_h) // 2
    image = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
    resized = torch.nn.functional.interpolate(image, size=(fitted_h, fitted_w), mode="bilinear", align_corners=False)
    square = np.zeros((side, side, 3), np.float32)
    # OpenCV resizes 8-bit images to 8 bits: round the same way
    square[pad_y : pad_y + fitted_h, pad_x : pad_x + fitted_w] = (
        resized[0].permute(1, 2, 0).round().clamp(0, 255).numpy()
    )
    return square[..., ::-1], (scale, pad_x, pad_y)  # BGR to RGB


def nanodet_candidates(outputs: dict, threshold: float, wanted: np.ndarray):
    side = 416
    by_shape = {tuple(v.shape): v[0] for v in outputs.values()}
    boxes, scores, classes = [], [], []
    for stride in (8, 16, 32):
        width = side // stride
        cells = width * width
        class_scores, bins = by_shape[(1, cells, 80)], by_shape[(1, cells, 44)]
        keep = (class_scores >= threshold) & wanted
        cell_ids, class_ids = np.nonzero(keep)
        if len(cell_ids) == 0:
            continue
        logits = bins[cell_ids].reshape(-1, 4, 11)
        p = np.exp(logits - logits.max(axis=2, keepdims=True))
        distance = (p * np.arange(11)).sum(axis=2) / p.sum(axis=2) * stride
        cx = (cell_ids % width + 0.5) * stride
        cy = (cell_ids // width + 0.5) * stride
        boxes.append(np.stack([cx - distance[:, 0], cy - distance[:, 1], cx + distance[:, 2], cy + distance[:, 3]], 1))
        scores.append(class_scores[cell_ids, class_ids])
        classes.append(class_ids)
    if not boxes:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, int)
    return np.concatenate(boxes), np.concatenate(scores), np.concatenate(classes)


def centernet_candidates(outputs: dict, threshold: float, wanted: np.ndarray):
    rows = outputs["tower_0/detections"][0]
    classes = rows[:, 5].astype(int)
    keep = (rows[:, 4] >= threshold) & (rows[:, 5] >= 0) & (rows[:, 5] < 80)
    keep[keep] &= wanted[classes[keep]]
    return rows[keep, :4], rows[keep, 4], classes[keep]


def nms(boxes, scores, classes, max_iou):
    order = np.argsort(-scores, kind="stable")
    kept = []
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    for i in order:
        same = [k for k in kept if classes[k] == classes[i]]
        if same:
            other = boxes[same]
            inter = area(np.stack([np.maximum(other[:, 0], boxes[i, 0]), np.maximum(other[:, 1], boxes[i, 1]),
                                   np.minimum(other[:, 2], boxes[i, 2]), np.minimum(other[:, 3], boxes[i, 3])], 1))
            union = area(other) + area(boxes[i]) - inter
            iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0)
            if (iou > max_iou).any():
                continue
        kept.append(i)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--architecture", choices=SPEC, required=True)
    parser.add_argument("--frames", required=True, help="raw BGR frames, packed")
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--height", type=int, required=True)
    parser.add_argument("--score-threshold", type=float, required=True)
    parser.add_argument("--nms-iou", type=float, required=True)
    args = parser.parse_args()

    # torch only copies the frame into the letterbox here (the bench's frames need no
    # resampling): its OpenMP threads would only compete with ONNX Runtime's
    torch.set_num_threads(1)
    spec = SPEC[args.architecture]
    frames = np.fromfile(args.frames, np.uint8).reshape(-1, args.height, args.width, 3)
    wanted = np.zeros(80, bool)
    wanted[list(COCO_CLASSES_USED.values())] = True
    session = onnxruntime.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    output_names = [o.name for o in session.get_outputs()]
    decode = nanodet_candidates if args.architecture == "nanodet" else centernet_candidates

    def detect(frame: np.ndarray) -> int:
        image, (scale, pad_x, pad_y) = letterbox(frame, spec["side"])
        image = (image - np.float32(spec["mean"])) / np.float32(spec["std"])
        image = image.transpose(2, 0, 1) if args.architecture == "nanodet" else image
        outputs = dict(zip(output_names, session.run(None, {input_name: np.ascontiguousarray(image[None], np.float32)})))
        boxes, scores, classes = decode(outputs, args.score_threshold, wanted)
        kept = nms(boxes, scores, classes, args.nms_iou)
        boxes = boxes[kept] if kept else np.zeros((0, 4))
        x = np.clip((boxes[:, [0, 2]] - pad_x) / scale, 0, args.width)
        y = np.clip((boxes[:, [1, 3]] - pad_y) / scale, 0, args.height)
        return int(((x[:, 1] - x[:, 0] >= 1) & (y[:, 1] - y[:, 0] >= 1)).sum())

    for frame in frames[:3]:
        detect(frame)
    print(json.dumps({"onnxruntime": onnxruntime.__version__, "numpy": np.__version__,
                      "torch_threads": torch.get_num_threads()}), flush=True)
    for _ in sys.stdin:
        times, counts = [], []
        for frame in frames:
            started = time.perf_counter()
            counts.append(detect(frame))
            times.append((time.perf_counter() - started) * 1000)
        print(json.dumps({"ms": times, "counts": counts}), flush=True)


if __name__ == "__main__":
    main()
