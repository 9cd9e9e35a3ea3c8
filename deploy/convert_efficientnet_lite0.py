"""Exports the shipped EfficientNet-Lite0 ImageNet classifier (a PyTorch state dict) to the
ONNX model that the Rust tagger (operators/src/tagging.rs) runs through ONNX Runtime.

Everything the tagger needs besides the weights goes into the model's metadata, so the one
file is the whole contract (as the PP-OCR recognition model carries its alphabet):

    labels      the 1000 ImageNet class names, one per line, in logit order
    input_size  the square input side in pixels (224)
    mean, std   per-channel normalisation, RGB order, in 0-255 pixel units:
                input = (pixel - mean) / std

The normalisation is not ImageNet's (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225): the weights
were converted from Google's TensorFlow EfficientNet-Lite, whose edge models were trained on
inception-style input, (pixel - 127) / 128 (efficientnet_lite_builder.py: MEAN_RGB, STDDEV_RGB).
The usage example in efficientnet-lite-pytorch's docstring is copied from efficientnet-pytorch
(the non-Lite models) and is wrong for these weights.

The class names come from torchvision's `_IMAGENET_CATEGORIES` (short, readable names in the
standard ILSVRC-2012 index order), read from the wheel without installing torchvision.

    python deploy/convert_efficientnet_lite0.py PTH_FILE TORCHVISION_WHEEL OUTPUT_ONNX
"""

import ast
import io
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
from efficientnet_lite_pytorch import EfficientNet

INPUT_SIZE = 224
MEAN_RGB = [127.0, 127.0, 127.0]
STD_RGB = [128.0, 128.0, 128.0]


def imagenet_labels(torchvision_wheel: Path) -> list[str]:
    with zipfile.ZipFile(torchvision_wheel) as wheel:
        source = wheel.read("torchvision/models/_meta.py").decode()
    for node in ast.parse(source).body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "_IMAGENET_CATEGORIES"
        ):
            labels = ast.literal_eval(node.value)
            break
    else:
        sys.exit(f"{torchvision_wheel}: no _IMAGENET_CATEGORIES in torchvision/models/_meta.py")
    if len(labels) != 1000 or not all(isinstance(l, str) and l and "\n" not in l for l in labels):
        sys.exit(f"{torchvision_wheel}: _IMAGENET_CATEGORIES is not 1000 one-line names")
    return labels


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(f"usage: {sys.argv[0]} PTH_FILE TORCHVISION_WHEEL OUTPUT_ONNX")
    weights, wheel, out = (Path(a) for a in sys.argv[1:])
    labels = imagenet_labels(wheel)

    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    model.eval()

    sample = torch.rand(2, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(0))
    sample = (sample * 255 - 127) / 128
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is chosen on purpose (the default one needs onnxscript); its
        # deprecation notice and constant-folding remarks would only clutter deploy/setup.sh's
        # output. The comparison with PyTorch below is what says the export is right.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (sample,),
            buffer,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    for key, value in {
        "labels": "\n".join(labels),
        "input_size": str(INPUT_SIZE),
        "mean": ",".join(str(v) for v in MEAN_RGB),
        "std": ",".join(str(v) for v in STD_RGB),
    }.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    serialized = proto.SerializeToString()

    # The exported graph must compute what PyTorch does, at every batch size.
    session = onnxruntime.InferenceSession(serialized, providers=["CPUExecutionProvider"])
    for batch in (sample[:1], sample):
        with torch.no_grad():
            expected = model(batch).numpy()
        (actual,) = session.run(None, {"image": batch.numpy()})
        difference = float(np.abs(actual - expected).max())
        if actual.shape != (len(batch), len(labels)) or difference > 1e-4:
            sys.exit(f"ONNX output differs from PyTorch: shape {actual.shape}, max |diff| {difference}")
        print(f"batch {len(batch)}: ONNX Runtime matches PyTorch (max |diff| {difference:.1e})")

    out.write_bytes(serialized)


if __name__ == "__main__":
    main()
