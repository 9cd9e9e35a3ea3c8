"""The peer of `tests/benches/service.rs`: the OCR pipeline a user would write in Python.

One process per camera (so no camera waits on another's GIL): OpenCV reads the RTSP stream
(FFmpeg, over TCP) and decodes every frame, and once per 1/fps seconds of wall time the
current frame goes through RapidOCR, the PP-OCRv4 detection and recognition models Argus runs,
the same files, through onnxruntime. Like Argus's OCR it skips the angle classifier.

After `--settle` seconds it measures for `--seconds`: CPU time of the whole process (every
thread), frames decoded and read, frames read by OCR, each OCR'd frame's latency and the
words read. The latency runs from when the frame arrived, as real-time playback places it, to
its result: the stream's media time 0 is placed at the earliest (read time - media time) of
any frame read (a frame cannot be read before it arrives), so a reader that falls behind the
camera, with frames waiting in its socket, has that wait counted. Then it prints one JSON line and exits.

    python ocr_baseline.py --url rtsp://... --det DET.onnx --rec REC.onnx
"""

import argparse
import json
import os
import re
import time

# Before cv2 is imported: FFmpeg reads the option when the capture opens.
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")

import cv2  # noqa: E402
from rapidocr_onnxruntime import RapidOCR  # noqa: E402


def rss_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--det", required=True, help="PP-OCRv4 detection model (ONNX)")
    parser.add_argument("--rec", required=True, help="PP-OCRv4 recognition model (ONNX)")
    parser.add_argument("--fps", type=float, default=1.0)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=40.0)
    args = parser.parse_args()

    engine = RapidOCR(det_model_path=args.det, rec_model_path=args.rec)
    capture = cv2.VideoCapture(args.url, cv2.CAP_FFMPEG)
    if not capture.isOpened():
        raise SystemExit(f"cannot open {args.url}")

    period = 1.0 / args.fps
    started = time.monotonic()
    window_start = started + args.settle
    window_end = window_start + args.seconds
    cpu_start = None
    read = ocr = 0
    results = []
    words = set()
    last_ocr = 0.0
    zero = None
    while True:
        ok, frame = capture.read()
        now = time.monotonic()
        if not ok:
            break
        media_s = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        zero = now - media_s if zero is None else min(zero, now - media_s)
        if now >= window_end:
            break
        measuring = now >= window_start
        if measuring and cpu_start is None:
            cpu_start = time.process_time()
        if measuring:
            read += 1
        if now - last_ocr < period:
            continue
        last_ocr = now
        result, _ = engine(frame, use_cls=False)
        done = time.monotonic()
        if measuring:
            ocr += 1
            results.append((done, media_s))
            for _box, text, _score in result or []:
                words.update(w.upper() for w in re.findall(r"[A-Za-z0-9]+", text))
    latencies = [done - (zero + media_s) for done, media_s in results]
    cpu = time.process_time() - (cpu_start if cpu_start is not None else time.process_time())
    print(
        json.dumps(
            {
                "frames_read": read,
                "frames_ocr": ocr,
                "cpu_s": cpu,
                "wall_s": args.seconds,
                "rss_bytes": rss_bytes(),
                "latencies_s": latencies,
                "words": sorted(words),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
