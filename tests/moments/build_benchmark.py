#!/usr/bin/env python3
"""Build a long moment-retrieval benchmark video with ground-truth spans.

The video is a shuffled sequence of segments, each 6-20 s long:

* clips cut from the real videos shipped with opencv-doc (vtest.avi, a street
  camera; tree.avi; Megamind.avi), scaled (letterboxed) to WIDTHxHEIGHT at FPS;
  about half of them carry a large text phrase;
* generated ``videotestsrc`` segments with a large, centred, shaded English
  phrase ("TRUCK AT GATE 3", ...); a few phrases occur in two separate
  segments, so their query has two ground-truth spans;
* generated ``videotestsrc`` segments without text, in four patterns reserved
  for them (smpte, pinwheel, spokes, checkers-8); one PNG frame of each is an
  image query whose spans are every segment of that pattern.

How it is built: every segment is rendered by its own ``gst-launch-1.0``
process as raw I420 frames at the target caps into a pipe; this script copies
exactly the segment's number of frames (skipping the frames before a real
clip's start offset) into a single ``gst-launch-1.0`` encoder process
(rawvideoparse ! tee, then x264enc ! matroskamux and x264enc ! mp4mux). Timing is therefore frame-exact by
construction: a segment covering frames [a, b) spans [a / fps, b / fps)
seconds, and the text of a phrase segment is on screen for exactly its frames.
Each result is decoded once more afterwards and its frames counted
(and, when ``gst-discoverer-1.0`` is installed, its reported duration checked).

Outputs in --out DIR:

* ``benchmark.mkv``: H.264 (x264, ultrafast, zerolatency, a keyframe at least
  every 2 s) in Matroska, where the first frame's PTS is 0;
* ``benchmark-bframes.mp4``: the same frames as H.264 with B-frames (x264's own preset,
  not zerolatency) in MP4, as NVR and phone exports are: ``mp4mux`` writes an edit list
  that starts at the first frame's composition offset, so ``qtdemux`` delivers PTS shifted
  by it (its segment maps them back: ``start`` = the offset, ``time`` = 0). Same ground
  truth; ``argus eval`` scores both;
* ``queries.jsonl``: ``{"id", "kind", "query", "spans": [[start_s, end_s], ...]}``, one
  text query per distinct phrase (``kind`` "phrase", lower-cased) and one in other words
  (``kind`` "paraphrase");
* ``image_queries.jsonl``: ``{"id", "image": "images/<pattern>.png", "pattern",
  "spans"}``;
* ``images/<pattern>.png``;
* ``segments.json``: every segment in order (kind, source or pattern, phrase or
  null, frames and seconds);
* ``manifest.json``: the arguments and a summary; written last, so its presence
  with the same arguments means the build finished and a rerun exits at once.

Only the Python standard library and the GStreamer command-line tools are used.

Example:

    tests/moments/build_benchmark.py --out /tmp/mbench --minutes 2
"""

import argparse
import json
import os
import random
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GENERATOR_VERSION = 4

REAL_DIR = Path("/usr/share/doc/opencv-doc/examples/data")
REAL_SOURCES = ["vtest.avi", "tree.avi", "Megamind.avi"]

# Paraphrased queries for phrases: the words differ from what is on screen.
PARAPHRASES = {
    "TRUCK AT GATE 3": "lorry waiting at the third gate",
    "DELIVERY VAN ARRIVED": "a courier vehicle showed up",
    "FORKLIFT IN AISLE 7": "lift truck in row seven",
    "LOADING DOCK CLOSED": "the loading bay is shut",
    "SPILL ON FLOOR 2": "liquid leaked on the second storey",
    "VISITOR AT RECEPTION": "a guest is at the front desk",
    "PALLET JAM ON BELT": "conveyor blocked by a pallet",
    "FIRE DOOR OPEN": "emergency exit left open",
    "CRANE MAINTENANCE": "hoist being repaired",
    "NO ENTRY ZONE B": "area B is off limits",
    "SHIFT CHANGE AT 6PM": "workers swap shifts in the evening",
    "RED CAR IN LOT C": "a red automobile parked in lot C",
    "BUS STOP 42": "where the bus halts, number 42",
    "PARCEL SCAN ERROR": "package barcode failed to read",
    "SECURITY PATROL 9": "guards doing their rounds, team 9",
}

PHRASES = [
    "TRUCK AT GATE 3",
    "DELIVERY VAN ARRIVED",
    "FORKLIFT IN AISLE 7",
    "LOADING DOCK CLOSED",
    "SPILL ON FLOOR 2",
    "VISITOR AT RECEPTION",
    "PALLET JAM ON BELT",
    "FIRE DOOR OPEN",
    "CRANE MAINTENANCE",
    "NO ENTRY ZONE B",
    "SHIFT CHANGE AT 6PM",
    "RED CAR IN LOT C",
    "BUS STOP 42",
    "PARCEL SCAN ERROR",
    "SECURITY PATROL 9",
]

# Patterns used only for segments WITHOUT text: each one is an image query.
IMAGE_PATTERNS = ["smpte", "pinwheel", "spokes", "checkers-8"]
# Backgrounds of the generated text segments (disjoint from IMAGE_PATTERNS). No "snow":
# videotestsrc draws it from an unseeded random generator, so the video would differ per run.
TEXT_PATTERNS = ["ball", "circular", "gradient", "colors", "bar", "smpte75", "blue", "white"]

FONT_DESC = "Sans Bold 36"
MIN_SEGMENT_S = 6
MAX_SEGMENT_S = 20


def log(msg):
    try:
        print(msg, flush=True)
    except BrokenPipeError:
        # The reader of stdout went away (`| head`): carry on quietly.
        sys.stdout = open(os.devnull, "w")


def fail(msg):
    print(f"error: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


# ---------------------------------------------------------------------------
# Sources


def avi_duration_s(path):
    """Duration of an AVI file from its main header (avih): frames * us/frame."""
    with open(path, "rb") as f:
        head = f.read(8192)
    i = head.find(b"avih")
    if head[:4] != b"RIFF" or i < 0:
        raise ValueError(f"{path}: not an AVI file with an avih header")
    us_per_frame, _, _, _, total_frames = struct.unpack("<5I", head[i + 8 : i + 28])
    return total_frames * us_per_frame / 1e6


def real_source_frames(fps):
    """Usable frames per real source at the output rate (a safety margin of 2)."""
    out = {}
    for name in REAL_SOURCES:
        path = REAL_DIR / name
        if not path.is_file():
            fail(f"missing real video {path} (install opencv-doc)")
        out[name] = int(avi_duration_s(path) * fps) - 2
    return out


# ---------------------------------------------------------------------------
# Planning


def plan_segments(args, rng):
    """The segments in playing order, with frame counts adding up to exactly the target length."""
    fps = args.fps
    target = int(round(args.minutes * 60 * fps))
    lo, hi = MIN_SEGMENT_S * fps, MAX_SEGMENT_S * fps
    n = max(5, int(round(target / (13 * fps))))
    src_frames = real_source_frames(fps)

    n_real = max(1, round(n * 0.35))
    n_img = max(1, round(n * 0.25))
    n_gen_text = n - n_real - n_img
    n_real_text = n_real // 2
    n_text = n_gen_text + n_real_text

    # About a quarter of the text segments repeat an earlier phrase (a query with two
    # spans); past 15 distinct phrases, phrases recur more often.
    distinct = min(len(PHRASES), max(1, n_text - max(1, round(n_text * 0.25))))
    chosen = rng.sample(PHRASES, distinct)
    phrases = [chosen[i % distinct] for i in range(n_text)]
    rng.shuffle(phrases)

    img_patterns = IMAGE_PATTERNS[: min(len(IMAGE_PATTERNS), n_img)]
    text_patterns = TEXT_PATTERNS[:]
    rng.shuffle(text_patterns)

    # Real clips: one of each source first, then each goes to the source with the most
    # footage left per clip (so mostly the 80 s street camera), so clips rarely overlap.
    per_source = {name: 0 for name in REAL_SOURCES}
    real_sources = []
    for i in range(n_real):
        if i < len(REAL_SOURCES):
            name = REAL_SOURCES[i]
        else:
            name = max(REAL_SOURCES, key=lambda k: src_frames[k] / (per_source[k] + 1))
        per_source[name] += 1
        real_sources.append(name)
    rng.shuffle(real_sources)

    segs = []
    for source in real_sources:
        segs.append({"kind": "real", "source": source, "pattern": None, "phrase": None})
    for i in range(n_real_text):
        segs[i]["phrase"] = phrases.pop()
    for i in range(n_gen_text):
        pattern = text_patterns[i % len(text_patterns)]
        segs.append({"kind": "generated", "source": None, "pattern": pattern, "phrase": phrases.pop()})
    for i in range(n_img):
        pattern = img_patterns[i % len(img_patterns)]
        segs.append({"kind": "generated", "source": None, "pattern": pattern, "phrase": None})
    assert not phrases
    segs = order_segments(segs, rng)

    # Frame counts: random in each segment's bounds, then nudged to hit the target exactly.
    # A real clip gets at most its share of the source's footage, so that the clips of one
    # source can be laid out without overlapping (unless that share is under 6 s).
    for s in segs:
        if s["kind"] == "real":
            usable = src_frames[s["source"]]
            share = usable // per_source[s["source"]]
            s["max_frames"] = min(hi, share if share >= lo else usable)
        else:
            s["max_frames"] = hi
        s["frames"] = rng.randint(lo, s["max_frames"])
    if not (lo * len(segs) <= target <= sum(s["max_frames"] for s in segs)):
        fail(f"cannot fit {len(segs)} segments of {MIN_SEGMENT_S}-{MAX_SEGMENT_S} s into {target} frames")
    diff = target - sum(s["frames"] for s in segs)
    order = list(range(len(segs)))
    while diff:
        rng.shuffle(order)
        for i in order:
            if diff == 0:
                break
            s = segs[i]
            room = (s["max_frames"] - s["frames"]) if diff > 0 else (lo - s["frames"])
            step = min(diff, room, fps) if diff > 0 else max(diff, room, -fps)
            s["frames"] += step
            diff -= step

    # Source offsets: the clips of one source in a random order with random gaps between
    # them when they fit side by side, else anywhere.
    for name in REAL_SOURCES:
        clips = [s for s in segs if s["source"] == name]
        rng.shuffle(clips)
        slack = src_frames[name] - sum(s["frames"] for s in clips)
        if slack >= 0:
            cuts = sorted(rng.randint(0, slack) for _ in clips)
            pos = 0
            for s, cut, prev in zip(clips, cuts, [0] + cuts):
                pos += cut - prev
                s["src_offset_frames"] = pos
                pos += s["frames"]
        else:
            for s in clips:
                s["src_offset_frames"] = rng.randint(0, src_frames[name] - s["frames"])

    start = 0
    for s in segs:
        s["start_frame"] = start
        start += s["frames"]
        s["end_frame"] = start
        del s["max_frames"]
    assert start == target
    return segs


def order_segments(segs, rng):
    """A random order in which no two neighbours share a phrase, an image pattern or a real
    source (their spans would touch and read as one moment)."""

    def keys(s):
        k = set()
        if s["phrase"]:
            k.add(("phrase", s["phrase"]))
        if s["kind"] == "real":
            k.add(("source", s["source"]))
        elif not s["phrase"]:
            k.add(("pattern", s["pattern"]))
        return k

    for _ in range(2000):
        left = segs[:]
        rng.shuffle(left)
        out = []
        while left:
            ok = [i for i, s in enumerate(left) if not out or not (keys(s) & keys(out[-1]))]
            if not ok:
                break
            out.append(left.pop(rng.choice(ok)))
        if not left:
            return out
    fail("could not order the segments without adjacent repeats; try another --seed")


# ---------------------------------------------------------------------------
# Rendering


def caps(args):
    return (
        f"video/x-raw,format=I420,width={args.width},height={args.height},"
        f"framerate={args.fps}/1,pixel-aspect-ratio=1/1"
    )


def overlay(args, phrase):
    """The textoverlay stage (back to the output caps), or nothing for a segment without text."""
    if not phrase:
        return ""
    text = phrase.replace('"', "")
    return (
        f'! textoverlay text="{text}" font-desc="{FONT_DESC}" valignment=center halignment=center '
        "shaded-background=true shading-value=200 draw-outline=true "
        f"! videoconvert ! {caps(args)} "
    )


def producer_pipeline(args, seg, fd):
    c = caps(args)
    if seg["kind"] == "generated":
        # Frames beyond the segment are never read; num-buffers just bounds the work.
        return (
            f"videotestsrc pattern={seg['pattern']} num-buffers={seg['frames']} is-live=false "
            f"! {c} {overlay(args, seg['phrase'])}! fdsink fd={fd} sync=false"
        )
    path = REAL_DIR / seg["source"]
    return (
        f'filesrc location="{path}" ! decodebin ! videoconvert ! videoscale add-borders=true '
        f"! videorate ! {c} {overlay(args, seg['phrase'])}! fdsink fd={fd} sync=false"
    )


def gst_args(pipeline):
    # gst-launch-1.0 takes the pipeline as argv words; split respecting the double quotes.
    return ["gst-launch-1.0", "-q"] + shlex.split(pipeline)


def read_exact(f, n):
    """Read n bytes from f, or fewer at end of stream."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = f.readinto(view[got:])
        if not k:
            break
        got += k
    return bytes(view[:got])


def render_segment(args, seg, enc_stdin, frame_bytes):
    """Copy the segment's frames into the encoder; returns the number of frames copied."""
    r, w = os.pipe()
    err_log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        gst_args(producer_pipeline(args, seg, w)),
        pass_fds=(w,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=err_log,
    )
    os.close(w)
    copied = 0
    last = None
    with os.fdopen(r, "rb", buffering=1 << 20) as f:
        for _ in range(seg.get("src_offset_frames", 0)):
            if len(read_exact(f, frame_bytes)) < frame_bytes:
                break
        while copied < seg["frames"]:
            frame = read_exact(f, frame_bytes)
            if len(frame) < frame_bytes:
                break
            enc_stdin.write(frame)
            last = frame
            copied += 1
    # The reader is closed: a producer that still runs (a real clip decoding on) stops.
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if copied < seg["frames"]:
        if last is None:
            err_log.seek(0)
            err = err_log.read().decode(errors="replace")
            fail(f"segment produced no frames: {producer_pipeline(args, seg, 'N')}\n{err}")
        # A source a frame or two short of the estimate: hold its last frame (timing stays exact).
        for _ in range(seg["frames"] - copied):
            enc_stdin.write(last)
        log(f"    note: source gave {copied} of {seg['frames']} frames; held the last one")
    return copied


def encoder_pipeline(args, mkv_path, mp4_path):
    # The B-frame branch buffers x264's lookahead; its queue must not stall the other one.
    branch = "queue max-size-bytes=0 max-size-time=0 max-size-buffers=0"
    return (
        f"fdsrc fd=0 blocksize={args.width * args.height * 3 // 2} ! queue max-size-bytes=0 max-size-time=0 max-size-buffers=64 "
        f"! rawvideoparse format=i420 width={args.width} height={args.height} framerate={args.fps}/1 ! tee name=raw "
        f"raw. ! {branch} ! x264enc tune=zerolatency speed-preset=ultrafast threads=1 key-int-max={2 * args.fps} bitrate=2048 "
        f'! h264parse ! matroskamux ! filesink location="{mkv_path}" '
        f"raw. ! {branch} ! x264enc key-int-max={2 * args.fps} bitrate=2048 "
        f'! h264parse ! mp4mux ! filesink location="{mp4_path}"'
    )


def write_image_queries_pngs(args, patterns, images_dir):
    images_dir.mkdir(parents=True, exist_ok=True)
    for p in patterns:
        dest = images_dir / f"{p}.png"
        pipeline = (
            f"videotestsrc pattern={p} num-buffers=1 ! video/x-raw,width={args.width},height={args.height},"
            f'framerate={args.fps}/1 ! videoconvert ! pngenc ! filesink location="{dest}"'
        )
        run = subprocess.run(gst_args(pipeline), capture_output=True)
        if run.returncode != 0 or not dest.is_file():
            fail(f"could not write {dest}: {run.stderr.decode(errors='replace')}")


# ---------------------------------------------------------------------------
# Verification


def decode_count_frames(args, path, grab=None):
    """Decode path and count its frames; grab maps frame index -> PNG path to save."""
    frame_bytes = args.width * args.height * 3 // 2
    r, w = os.pipe()
    pipeline = (
        f'filesrc location="{path}" ! decodebin ! videoconvert '
        f"! video/x-raw,format=I420,width={args.width},height={args.height} ! fdsink fd={w} sync=false"
    )
    proc = subprocess.Popen(gst_args(pipeline), pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(w)
    count = 0
    grabbed = {}
    with os.fdopen(r, "rb", buffering=1 << 20) as f:
        while True:
            frame = read_exact(f, frame_bytes)
            if len(frame) < frame_bytes:
                break
            if grab and count in grab:
                grabbed[count] = frame
            count += 1
    _, err = proc.communicate()
    if proc.returncode != 0:
        fail(f"decoding {path} failed: {err.decode(errors='replace')}")
    for idx, frame in grabbed.items():
        png = grab[idx]
        enc = (
            f"fdsrc fd=0 ! rawvideoparse format=i420 width={args.width} height={args.height} "
            f'framerate={args.fps}/1 ! videoconvert ! pngenc ! filesink location="{png}"'
        )
        subprocess.run(gst_args(enc), input=frame, capture_output=True, check=True)
    return count


def discoverer_duration_s(path):
    """Duration reported by gst-discoverer-1.0, or None when the tool is not installed."""
    tool = shutil.which("gst-discoverer-1.0")
    if not tool:
        return None
    run = subprocess.run([tool, str(path)], capture_output=True, text=True)
    for line in run.stdout.splitlines():
        line = line.strip()
        if line.startswith("Duration:"):
            h, m, s = line.split(":", 1)[1].strip().split(":")
            return int(h) * 3600 + int(m) * 60 + float(s)
    fail(f"gst-discoverer-1.0 reported no duration for {path}:\n{run.stdout}{run.stderr}")


# ---------------------------------------------------------------------------
# Outputs


def seconds(frame, fps):
    return round(frame / fps, 6)


def write_json_atomic(path, obj, lines=False):
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "w") as f:
        if lines:
            for item in obj:
                f.write(json.dumps(item) + "\n")
        else:
            json.dump(obj, f, indent=2)
            f.write("\n")
    os.replace(tmp, path)


def build_outputs(args, segs):
    fps = args.fps
    segments_out = []
    for i, s in enumerate(segs):
        segments_out.append(
            {
                "index": i,
                "kind": s["kind"],
                "source": s["source"],
                "source_offset_s": seconds(s["src_offset_frames"], fps) if s["kind"] == "real" else None,
                "pattern": s["pattern"],
                "phrase": s["phrase"],
                "start_frame": s["start_frame"],
                "end_frame": s["end_frame"],
                "start_s": seconds(s["start_frame"], fps),
                "end_s": seconds(s["end_frame"], fps),
            }
        )

    by_phrase = {}
    for s in segments_out:
        if s["phrase"]:
            by_phrase.setdefault(s["phrase"], []).append([s["start_s"], s["end_s"]])
    queries = [
        {"id": f"t{i + 1:02d}", "kind": "phrase", "query": phrase.lower(), "spans": spans}
        for i, (phrase, spans) in enumerate(sorted(by_phrase.items(), key=lambda kv: kv[1][0][0]))
    ]
    # The same spans asked in other words, as an analyst would: retrieval by meaning, not by
    # the letters on screen.
    queries += [
        {"id": f"{q['id']}p", "kind": "paraphrase", "query": PARAPHRASES[q["query"].upper()], "spans": q["spans"]}
        for q in list(queries)
        if q["query"].upper() in PARAPHRASES
    ]

    by_pattern = {}
    for s in segments_out:
        if s["kind"] == "generated" and not s["phrase"]:
            by_pattern.setdefault(s["pattern"], []).append([s["start_s"], s["end_s"]])
    image_queries = [
        {"id": f"i{i + 1:02d}", "image": f"images/{p}.png", "pattern": p, "spans": spans}
        for i, (p, spans) in enumerate(sorted(by_pattern.items(), key=lambda kv: kv[1][0][0]))
    ]
    return segments_out, queries, image_queries


# ---------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=(
            "Build a moment-retrieval benchmark: DIR/benchmark.mkv and DIR/benchmark-bframes.mp4 (real street/nature/film clips and "
            "generated test patterns, many with a large on-screen phrase) plus ground truth: "
            "queries.jsonl (text query -> spans in seconds), image_queries.jsonl (PNG of a pattern -> "
            "spans), segments.json. Deterministic for a seed; rerunning with the same arguments on a "
            "finished build returns at once."
        ),
        epilog="Example: %(prog)s --out /tmp/mbench --minutes 2",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", required=True, type=Path, help="output directory (created if missing)")
    p.add_argument("--minutes", type=float, default=5.0, help="total length of the video in minutes (at least 1)")
    p.add_argument("--seed", type=int, default=7, help="seed of the segment order, lengths, clips and phrases")
    p.add_argument("--width", type=int, default=640, help="frame width in pixels")
    p.add_argument("--height", type=int, default=360, help="frame height in pixels")
    p.add_argument("--fps", type=int, default=10, help="frames per second")
    p.add_argument("--force", action="store_true", help="rebuild even if DIR holds a finished build")
    p.add_argument(
        "--snapshots",
        action="store_true",
        help="also decode the middle frame of every segment to DIR/snapshots/seg_NN.png for a visual check",
    )
    a = p.parse_args(argv)
    if a.minutes < 1:
        p.error("--minutes must be at least 1")
    if a.width < 64 or a.height < 64 or a.width % 2 or a.height % 2:
        p.error("--width and --height must be even and at least 64")
    if not 1 <= a.fps <= 60:
        p.error("--fps must be between 1 and 60")
    return a


def main(argv=None):
    args = parse_args(argv)
    out = args.out
    arguments = {"minutes": args.minutes, "seed": args.seed, "width": args.width, "height": args.height, "fps": args.fps}
    manifest_path = out / "manifest.json"
    expected_files = ["benchmark.mkv", "benchmark-bframes.mp4", "queries.jsonl", "image_queries.jsonl", "segments.json"]

    if manifest_path.is_file() and not args.force:
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            manifest = None
        if (
            manifest
            and manifest.get("arguments") == arguments
            and manifest.get("generator_version") == GENERATOR_VERSION
            and all((out / f).is_file() for f in expected_files + manifest.get("images", []))
        ):
            log(f"{out} already holds a finished build for these arguments:")
            log(json.dumps(manifest, indent=2))
            return 0

    for tool in ("gst-launch-1.0",):
        if not shutil.which(tool):
            fail(f"{tool} not found")

    out.mkdir(parents=True, exist_ok=True)
    if manifest_path.exists():
        manifest_path.unlink()  # the build is unfinished until the manifest is written again

    t0 = time.monotonic()
    rng = random.Random(args.seed)
    segs = plan_segments(args, rng)
    total_frames = segs[-1]["end_frame"]
    log(
        f"building {out}/benchmark.mkv: {len(segs)} segments, {total_frames} frames "
        f"({total_frames / args.fps:.1f} s) at {args.width}x{args.height} {args.fps} fps, seed {args.seed}"
    )

    videos = [out / "benchmark.mkv", out / "benchmark-bframes.mp4"]
    partials = [v.with_name(v.name + ".partial") for v in videos]
    enc_log = tempfile.TemporaryFile()
    enc = subprocess.Popen(
        gst_args(encoder_pipeline(args, *partials)),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=enc_log,
    )
    frame_bytes = args.width * args.height * 3 // 2
    try:
        for i, s in enumerate(segs):
            ts = time.monotonic()
            what = f"{s['source']} @{s['src_offset_frames'] / args.fps:.1f}s" if s["kind"] == "real" else s["pattern"]
            render_segment(args, s, enc.stdin, frame_bytes)
            log(
                f"[{i + 1:2d}/{len(segs)}] {s['start_frame'] / args.fps:7.1f}-{s['end_frame'] / args.fps:7.1f} s "
                f"{s['kind']:9s} {what:22s} text={s['phrase']!r} ({s['frames']} frames, {time.monotonic() - ts:.1f} s)"
            )
        enc.stdin.close()
    except BrokenPipeError:
        pass  # the encoder died; its log says why
    if enc.wait() != 0:
        enc_log.seek(0)
        fail(f"encoder failed: {enc_log.read().decode(errors='replace')}")
    for partial, video in zip(partials, videos):
        os.replace(partial, video)
    log(f"encoded in {time.monotonic() - t0:.1f} s; verifying")

    segments_out, queries, image_queries = build_outputs(args, segs)

    grab = {}
    if args.snapshots:
        snap_dir = out / "snapshots"
        snap_dir.mkdir(exist_ok=True)
        for s in segments_out:
            grab[(s["start_frame"] + s["end_frame"]) // 2] = snap_dir / f"seg_{s['index']:02d}.png"
    duration = total_frames / args.fps
    discovered = {}
    for video in videos:
        decoded = decode_count_frames(args, video, grab if video == videos[0] else None)
        if decoded != total_frames:
            fail(f"{video} decodes to {decoded} frames, expected {total_frames}")
        disc = discovered[video.name] = discoverer_duration_s(video)
        if disc is not None and abs(disc - duration) > 1.0 / args.fps:
            fail(f"gst-discoverer-1.0 says {disc:.3f} s for {video.name}, expected {duration:.3f} s")
        log(
            f"verified {video.name}: {decoded} frames decode = {duration:.3f} s"
            + (f"; gst-discoverer-1.0: {disc:.3f} s" if disc is not None else "; (gst-discoverer-1.0 not installed)")
        )

    patterns = [q["pattern"] for q in image_queries]
    write_image_queries_pngs(args, patterns, out / "images")
    write_json_atomic(out / "segments.json", segments_out)
    write_json_atomic(out / "queries.jsonl", queries, lines=True)
    write_json_atomic(out / "image_queries.jsonl", image_queries, lines=True)

    manifest = {
        "generator_version": GENERATOR_VERSION,
        "video": "benchmark.mkv",
        "videos": [v.name for v in videos],
        "duration_s": duration,
        "frames": total_frames,
        "segments": len(segments_out),
        "text_queries": len(queries),
        "text_queries_with_two_spans": sum(1 for q in queries if len(q["spans"]) > 1),
        "image_queries": len(image_queries),
        "images": [q["image"] for q in image_queries],
        "verified_decoded_frames": decoded,
        "discoverer_duration_s": discovered,
        "build_seconds": round(time.monotonic() - t0, 1),
        "arguments": arguments,  # last: its presence marks a finished build
    }
    write_json_atomic(manifest_path, manifest)
    log(
        f"done in {manifest['build_seconds']} s: {len(queries)} text queries "
        f"({manifest['text_queries_with_two_spans']} with two spans), {len(image_queries)} image queries -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
