//! The video-MLLM operator benchmarks of issue 4:
//!
//! ```sh
//! source deploy/env.sh
//! cargo bench -p argus-operators --bench mllm            # all four
//! cargo bench -p argus-operators --bench mllm -- ccam    # some: tome, temporal, ccam, smollm2
//! ARGUS_BENCH_THREADS=1 cargo bench -p argus-operators --bench mllm -- smollm2
//! ```
//!
//! 1. `tome`: ToMe `r` sweep on a SigLIP tower (tokens kept, throughput and output fidelity
//!    against `r = 0`).
//! 2. `temporal`: cross-frame merging of a fixed camera's frames (tokens kept per frame).
//! 3. `ccam`: streaming Video-CCAM, the last frame's push against recomputing the projector.
//! 4. `smollm2`: SmolLM2-135M-Instruct greedy decoding, Argus against `transformers`
//!    (smollm2_transformers.py, run beside the bench with the venv's Python), in float32 and
//!    in bfloat16, with each precision's weight floor.
//!
//! The machine this runs on is shared and noisy, so every speed figure is a ratio against a
//! baseline measured in the same process, the variants interleaved round by round and each
//! summarised by its median; absolute times are printed for context only. The vision tower
//! and the projector carry seeded random weights (written to a temporary folder and read back
//! through the real `load` paths); the frames are real, decoded from the OpenCV sample video
//! with GStreamer; SmolLM2 is the real checkpoint.

use std::error::Error;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use argus_operators::ccam::Ccam;
use argus_operators::llm::{ChatMessage, GenerationOptions, Llm, Sampling};
use argus_operators::vision::tome::{merge_across_frames, MergeSchedule};
use argus_operators::vision::{FeatureLayer, TowerOutput, VisionTower};
use serde::Deserialize;
use tch::{Device, Kind, Tensor};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The SigLIP tower: SigLIP's layout at ViT-S width, cut to 6 layers to stay affordable on CPU.
const IMAGE: i64 = 224;
const PATCH: i64 = 14;
const HIDDEN: i64 = 384;
const INNER: i64 = 1536;
const LAYERS: i64 = 6;
const HEADS: i64 = 6;
/// Video-CCAM feeds its projector the second-to-last layer.
const FEATURE_LAYER: FeatureLayer = FeatureLayer::Hidden(-2);

/// The CCAM projector: Video-CCAM's 1024 queries at width 1024, fed by the tower above
/// (`HIDDEN`-wide tokens, `(IMAGE / PATCH)²` per frame), projecting to SmolLM2's width.
const CCAM_QUERIES: i64 = 1024;
const CCAM_HIDDEN: i64 = 1024;
const CCAM_HEADS: i64 = 16;
const CCAM_INNER: i64 = 2816;
const CCAM_OUTPUT: i64 = 576;

const TOME_RS: [i64; 7] = [0, 4, 8, 16, 24, 32, 48];
const TOME_ROUNDS: usize = 9;
const CROSS_FRAME_THRESHOLDS: [f64; 3] = [0.9, 0.95, 0.99];
const CLIP_FRAMES: usize = 20;
const CCAM_FRAMES: [(usize, usize); 2] = [(16, 5), (96, 3)];
const LLM_NEW_TOKENS: usize = 64;
/// Rounds of the SmolLM2 comparison, each running every variant once.
const LLM_ROUNDS: usize = 6;
/// Passes of each weight floor per round.
const FLOOR_PASSES: usize = 5;
const LLM_PROMPT: &str = "Describe what a fixed street camera sees in a busy pedestrian \
                          square during one minute in the early evening.";

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; other arguments pick parts.
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    let work = std::env::temp_dir().join(format!("argus-bench-mllm-{}", std::process::id()));
    fs::create_dir_all(&work)?;
    let result = run(&work, &wanted);
    let _ = fs::remove_dir_all(&work);
    result
}

fn run(work: &Path, wanted: &dyn Fn(&str) -> bool) -> Result<()> {
    // libtorch's default is one thread per core; on a shared machine fewer threads can wait
    // less for each other, so a run can pin the count (both sides of part 4 use it).
    if let Ok(threads) = std::env::var("ARGUS_BENCH_THREADS") {
        tch::set_num_threads(
            threads
                .parse()
                .map_err(|e| format!("ARGUS_BENCH_THREADS={threads}: {e}"))?,
        );
    }
    let threads = tch::get_num_threads();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "argus mllm bench: {cores} cores visible, tch/libtorch intra-op threads {threads}, \
         load average at start {}",
        load_average()
    );
    let mut report = String::new();

    let needs_tower = wanted("tome") || wanted("temporal");
    if needs_tower {
        let tower_dir = work.join("siglip");
        write_siglip(&tower_dir)?;
        let tower = VisionTower::load(&tower_dir, Device::Cpu)?;
        let video = Path::new(
            &std::env::var("ARGUS_SAMPLE_DIR")
                .unwrap_or_else(|_| "/usr/share/doc/opencv-doc/examples/data".into()),
        )
        .join("vtest.avi");
        let frames = decode_frames(&video, 100, &work.join("frames.rgb"))?;
        if wanted("tome") {
            report += &tome_sweep(&tower, &frames)?;
        }
        if wanted("temporal") {
            report += &temporal(&tower, &frames)?;
        }
    }
    if wanted("ccam") {
        report += &streaming_ccam(work)?;
    }
    if wanted("smollm2") {
        report += &smollm2(threads)?;
    }
    println!("\n{report}");
    println!("load average at end {}", load_average());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Helpers

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn timed<R>(f: impl FnOnce() -> R) -> (f64, R) {
    let start = Instant::now();
    let result = f();
    (start.elapsed().as_secs_f64(), result)
}

fn ms(seconds: f64) -> String {
    format!("{:.1}", seconds * 1e3)
}

/// Xavier-uniform `[outputs, inputs]`, as transformers initialises SigLIP's linear layers.
fn xavier(outputs: i64, inputs: i64) -> Tensor {
    let a = (6.0 / (inputs + outputs) as f64).sqrt();
    Tensor::rand([outputs, inputs], (Kind::Float, Device::Cpu)) * (2.0 * a) - a
}

fn normal(shape: &[i64], std: f64) -> Tensor {
    Tensor::randn(shape, (Kind::Float, Device::Cpu)) * std
}

fn ones(size: i64) -> Tensor {
    Tensor::ones([size], (Kind::Float, Device::Cpu))
}

fn zeros(size: i64) -> Tensor {
    Tensor::zeros([size], (Kind::Float, Device::Cpu))
}

/// `count` frames of `video`, decoded and squashed to `IMAGE`² RGB by GStreamer, normalised
/// as SigLIP's processor does (`[-1, 1]`): `[count, 3, IMAGE, IMAGE]`.
fn decode_frames(video: &Path, count: i64, raw: &Path) -> Result<Tensor> {
    let status = Command::new("gst-launch-1.0")
        .arg("-q")
        .arg("filesrc")
        .arg(format!("location={}", video.display()))
        .args([
            "!",
            "decodebin",
            "!",
            "videoconvert",
            "!",
            "videoscale",
            "!",
        ])
        .arg(format!(
            "video/x-raw,format=RGB,width={IMAGE},height={IMAGE}"
        ))
        .args(["!", "identity"])
        .arg(format!("eos-after={count}"))
        .args(["!", "filesink"])
        .arg(format!("location={}", raw.display()))
        .status()?;
    if !status.success() {
        return Err(format!(
            "gst-launch-1.0 failed to decode {}: {status}",
            video.display()
        )
        .into());
    }
    let bytes = fs::read(raw)?;
    let expected = (count * IMAGE * IMAGE * 3) as usize;
    if bytes.len() != expected {
        return Err(format!(
            "decoded {} bytes of {}, expected {expected} ({count} frames)",
            bytes.len(),
            video.display()
        )
        .into());
    }
    Ok(Tensor::from_slice(&bytes)
        .view([count, IMAGE, IMAGE, 3])
        .permute([0, 3, 1, 2])
        .to_kind(Kind::Float)
        / 127.5
        - 1.0)
}

// ---------------------------------------------------------------------------------------
// The seeded checkpoints

/// A `SiglipVisionModel` checkpoint with transformers' initialisation (Xavier-uniform
/// attention and MLP weights, LeCun-normal patch embedding, position embeddings of standard
/// deviation `1/√hidden`, unit LayerNorms), seeded.
fn write_siglip(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)?;
    tch::manual_seed(4);
    let config = serde_json::json!({
        "model_type": "siglip_vision_model",
        "hidden_size": HIDDEN,
        "intermediate_size": INNER,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_channels": 3,
        "image_size": IMAGE,
        "patch_size": PATCH,
        "hidden_act": "gelu_pytorch_tanh",
        "layer_norm_eps": 1e-6,
    });
    fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config)?,
    )?;
    let patches = (IMAGE / PATCH).pow(2);
    let mut tensors: Vec<(String, Tensor)> = vec![
        (
            "embeddings.patch_embedding.weight".into(),
            normal(
                &[HIDDEN, 3, PATCH, PATCH],
                (1.0 / (3 * PATCH * PATCH) as f64).sqrt(),
            ),
        ),
        ("embeddings.patch_embedding.bias".into(), zeros(HIDDEN)),
        (
            "embeddings.position_embedding.weight".into(),
            normal(&[patches, HIDDEN], 1.0 / (HIDDEN as f64).sqrt()),
        ),
        ("post_layernorm.weight".into(), ones(HIDDEN)),
        ("post_layernorm.bias".into(), zeros(HIDDEN)),
    ];
    for i in 0..LAYERS {
        let l = format!("encoder.layers.{i}");
        for norm in ["layer_norm1", "layer_norm2"] {
            tensors.push((format!("{l}.{norm}.weight"), ones(HIDDEN)));
            tensors.push((format!("{l}.{norm}.bias"), zeros(HIDDEN)));
        }
        for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            tensors.push((
                format!("{l}.self_attn.{proj}.weight"),
                xavier(HIDDEN, HIDDEN),
            ));
            tensors.push((format!("{l}.self_attn.{proj}.bias"), zeros(HIDDEN)));
        }
        tensors.push((format!("{l}.mlp.fc1.weight"), xavier(INNER, HIDDEN)));
        tensors.push((format!("{l}.mlp.fc1.bias"), normal(&[INNER], 1e-6)));
        tensors.push((format!("{l}.mlp.fc2.weight"), xavier(HIDDEN, INNER)));
        tensors.push((format!("{l}.mlp.fc2.bias"), normal(&[HIDDEN], 1e-6)));
    }
    Tensor::write_safetensors(&tensors, dir.join("model.safetensors"))?;
    Ok(())
}

/// A CCAM projector (see `argus_operators::ccam` for the layout), weights of standard
/// deviation 0.02, unit LayerNorms, seeded.
fn write_ccam(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)?;
    tch::manual_seed(5);
    let config = serde_json::json!({
        "num_queries": CCAM_QUERIES,
        "hidden_size": CCAM_HIDDEN,
        "num_heads": CCAM_HEADS,
        "visual_size": HIDDEN,
        "intermediate_size": CCAM_INNER,
        "output_size": CCAM_OUTPUT,
        "layer_norm_eps": 1e-5,
    });
    fs::write(
        dir.join(argus_operators::ccam::CONFIG_FILE),
        serde_json::to_string_pretty(&config)?,
    )?;
    let (d, v) = (CCAM_HIDDEN, HIDDEN);
    let mut tensors: Vec<(String, Tensor)> =
        vec![("queries".into(), normal(&[CCAM_QUERIES, d], 0.02))];
    for (norm, size) in [
        ("query_norm", d),
        ("visual_norm", v),
        ("mlp_norm", d),
        ("output_norm", d),
    ] {
        tensors.push((format!("{norm}.weight"), ones(size)));
        tensors.push((format!("{norm}.bias"), zeros(size)));
    }
    for (proj, inputs) in [("q_proj", d), ("k_proj", v), ("v_proj", v), ("out_proj", d)] {
        tensors.push((
            format!("cross_attn.{proj}.weight"),
            normal(&[d, inputs], 0.02),
        ));
        tensors.push((format!("cross_attn.{proj}.bias"), zeros(d)));
    }
    tensors.push((
        "mlp.gate_proj.weight".into(),
        normal(&[CCAM_INNER, d], 0.02),
    ));
    tensors.push(("mlp.up_proj.weight".into(), normal(&[CCAM_INNER, d], 0.02)));
    tensors.push((
        "mlp.down_proj.weight".into(),
        normal(&[d, CCAM_INNER], 0.02),
    ));
    tensors.push(("output_proj.weight".into(), normal(&[CCAM_OUTPUT, d], 0.02)));
    tensors.push(("output_proj.bias".into(), zeros(CCAM_OUTPUT)));
    Tensor::write_safetensors(&tensors, dir.join("model.safetensors"))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 1. ToMe r sweep

fn schedule(r: i64) -> MergeSchedule {
    if r == 0 {
        MergeSchedule::None
    } else {
        MergeSchedule::Constant(r)
    }
}

/// `[N, D]`: the mean over the frame's patches, each patch taking its (merged) token's value,
/// i.e. the size-weighted mean of the tokens.
fn pooled(out: &TowerOutput) -> Tensor {
    let sizes = out.sizes.unsqueeze(-1);
    (&out.tokens * &sizes).sum_dim_intlist(1, false, Kind::Float)
        / sizes.sum_dim_intlist(1, false, Kind::Float)
}

/// `[N, P, D]`: every patch's token, merged tokens copied back to the patches they hold.
fn unmerged(out: &TowerOutput) -> Tensor {
    let (n, p) = out.assignment.size2().unwrap();
    let d = out.tokens.size()[2];
    out.tokens.gather(
        1,
        &out.assignment.unsqueeze(-1).expand([n, p, d], false),
        false,
    )
}

fn tome_sweep(tower: &VisionTower, frames: &Tensor) -> Result<String> {
    // Four frames 2.5 s apart.
    let batch = frames.index_select(0, &Tensor::from_slice(&[0_i64, 25, 50, 75]));
    let patches = tower.config().patches();
    let encode = |r: i64| tower.encode(&batch, FEATURE_LAYER, &schedule(r));
    // Also the warm-up.
    let outputs = TOME_RS
        .iter()
        .map(|&r| encode(r))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut times = vec![Vec::new(); TOME_RS.len()];
    for round in 0..TOME_ROUNDS {
        // A different variant first each round, so none always runs first.
        for k in 0..TOME_RS.len() {
            let i = (k + round) % TOME_RS.len();
            let (seconds, out) = timed(|| encode(TOME_RS[i]));
            drop(out?);
            times[i].push(seconds);
        }
    }
    let base_pooled = pooled(&outputs[0]);
    let base_tokens = &outputs[0].tokens;
    // For scale: how alike the pooled outputs of two different frames are.
    let across_frames = Tensor::cosine_similarity(
        &base_pooled.narrow(0, 0, 3),
        &base_pooled.narrow(0, 1, 3),
        1,
        1e-8,
    )
    .mean(Kind::Float)
    .double_value(&[]);
    let mut table = String::new();
    writeln!(
        table,
        "### 1. ToMe inside the tower (r sweep)\n\n\
         SigLIP tower, seeded random weights: image {IMAGE}, patch {PATCH} ({patches} patches), \
         hidden {HIDDEN}, {LAYERS} layers, {HEADS} heads; batch of 4 real frames of vtest.avi \
         (2.5 s apart); features of the second-to-last layer (Video-CCAM's), so ToMe runs in \
         {} layers. {TOME_ROUNDS} rounds, every r once per round in rotating order; speed-up = \
         median over rounds of (r = 0 time / r time) within the round (min–max over rounds in \
         brackets). Mean-pooled = mean over the 256 patches (merged tokens weighted by the \
         patches they hold). For scale, the mean-pooled outputs of two *different* frames \
         at r = 0 have cosine {across_frames:.5}: with random weights this measure is nearly \
         saturated, so the per-patch cosine (each patch's token, merged or not, against its \
         own r = 0 token) is the informative column.\n",
        LAYERS - 1
    )?;
    writeln!(
        table,
        "| r | tokens kept / frame | median ms (4 frames) | throughput vs r = 0 | cos of mean-pooled output vs r = 0 (mean / min over frames) | cos per patch vs r = 0 (mean) |"
    )?;
    writeln!(table, "|---|---|---|---|---|---|")?;
    for (i, (&r, out)) in TOME_RS.iter().zip(&outputs).enumerate() {
        let cos = Tensor::cosine_similarity(&pooled(out), &base_pooled, 1, 1e-8);
        let patch_cos = Tensor::cosine_similarity(&unmerged(out), base_tokens, 2, 1e-8)
            .mean(Kind::Float)
            .double_value(&[]);
        let ratios: Vec<f64> = times[0].iter().zip(&times[i]).map(|(b, t)| b / t).collect();
        let (low, high) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
        writeln!(
            table,
            "| {r} | {} | {} | {:.2}x ({low:.2}–{high:.2}) | {:.5} / {:.5} | {:.4} |",
            out.tokens.size()[1],
            ms(median(&times[i])),
            median(&ratios),
            cos.mean(Kind::Float).double_value(&[]),
            cos.min().double_value(&[]),
            patch_cos
        )?;
    }
    table.push('\n');
    print!("{table}");
    Ok(table)
}

// ---------------------------------------------------------------------------------------
// 2. Cross-frame merging

fn temporal(tower: &VisionTower, frames: &Tensor) -> Result<String> {
    let patches = tower.config().patches();
    let mut table = String::new();
    writeln!(
        table,
        "### 2. Cross-frame merging on a fixed camera (vtest.avi)\n\n\
         The tower of part 1 (seeded random weights, no ToMe) on every frame, then \
         `tome::merge_across_frames` on its tokens; {CLIP_FRAMES} frames, {patches} tokens \
         each. Features: the second-to-last layer (what the projector gets), and for reference \
         layer 0 (patch embedding + position embedding, before any random attention mixes \
         tokens). \"Pixel-static patches\": share of the {PATCH}×{PATCH} patches of frames \
         2..{CLIP_FRAMES} whose mean absolute change from the previous frame is under 2 of 255 \
         levels, from the pixels alone.\n"
    )?;
    writeln!(
        table,
        "| frames | features | threshold | tokens kept per frame after the first: mean (min–max) | share kept, frames 2..{CLIP_FRAMES} | all {CLIP_FRAMES} frames: tokens kept of total | pixel-static patches |"
    )?;
    writeln!(table, "|---|---|---|---|---|---|---|")?;
    let clips: [(&str, i64); 2] = [("consecutive (10 fps)", 1), ("every 5th (2 fps)", 5)];
    let layers = [
        ("second-to-last layer", FEATURE_LAYER),
        ("layer 0", FeatureLayer::Hidden(0)),
    ];
    for (label, stride) in clips {
        let index: Vec<i64> = (0..CLIP_FRAMES as i64).map(|i| i * stride).collect();
        let pixels = frames.index_select(0, &Tensor::from_slice(&index));
        let f = CLIP_FRAMES as i64;
        let change = (pixels.narrow(0, 1, f - 1) - pixels.narrow(0, 0, f - 1)).abs() * 127.5;
        let per_patch = change.mean_dim(1, false, Kind::Float).avg_pool2d(
            [PATCH, PATCH],
            [PATCH, PATCH],
            [0, 0],
            false,
            true,
            None,
        );
        let static_share = per_patch
            .lt(2.0)
            .to_kind(Kind::Float)
            .mean(Kind::Float)
            .double_value(&[]);
        for (layer_label, layer) in layers {
            let out = tower.encode(&pixels, layer, &MergeSchedule::None)?;
            for threshold in CROSS_FRAME_THRESHOLDS {
                let merged = merge_across_frames(&out.tokens, &out.sizes, threshold)?;
                let later = &merged.kept[1..];
                let mean = later.iter().sum::<usize>() as f64 / later.len() as f64;
                let total: usize = merged.kept.iter().sum();
                writeln!(
                    table,
                    "| {label} | {layer_label} | {threshold} | {mean:.1} ({}–{}) | {:.1}% | {total} / {} ({:.1}%) | {:.1}% |",
                    later.iter().min().unwrap_or(&0),
                    later.iter().max().unwrap_or(&0),
                    100.0 * mean / patches as f64,
                    f * patches,
                    100.0 * total as f64 / (f * patches) as f64,
                    100.0 * static_share,
                )?;
            }
        }
    }
    table.push('\n');
    print!("{table}");
    Ok(table)
}

// ---------------------------------------------------------------------------------------
// 3. Streaming CCAM

fn streaming_ccam(work: &Path) -> Result<String> {
    let dir = work.join("ccam");
    write_ccam(&dir)?;
    let ccam = Ccam::load(&dir, Device::Cpu)?;
    let tokens = (IMAGE / PATCH).pow(2);
    let mut table = String::new();
    writeln!(
        table,
        "### 3. Streaming CCAM: end-of-chunk latency\n\n\
         Projector with seeded random weights: {CCAM_QUERIES} queries, width {CCAM_HIDDEN}, \
         {CCAM_HEADS} heads, MLP {CCAM_INNER}, visual tokens {tokens} × {HIDDEN} per frame \
         (the tower of part 1), output {CCAM_OUTPUT} (SmolLM2's width). \"Last push\" = \
         `CcamStream::push` of the clip's last frame, the other frames already pushed; \
         \"project\" = `Ccam::project` of the whole clip. Each round runs both (order \
         alternating); the ratio is the median over rounds of project / last push within the \
         round (min–max in brackets). The streamed output is checked against the batch one.\n"
    )?;
    writeln!(
        table,
        "| T (frames) | rounds | last push, median ms | project, median ms | project / last push | all T pushes, median ms | stream vs batch max abs diff |"
    )?;
    writeln!(table, "|---|---|---|---|---|---|---|")?;
    for (frames, rounds) in CCAM_FRAMES {
        tch::manual_seed(frames as i64);
        let clip: Vec<Tensor> = (0..frames)
            .map(|_| Tensor::randn([tokens, HIDDEN], (Kind::Float, Device::Cpu)))
            .collect();
        let stream_clip = || -> Result<(f64, f64, Tensor)> {
            let mut stream = ccam.stream(frames)?;
            let mut total = 0.0;
            let mut last = 0.0;
            for frame in &clip {
                let (seconds, block) = timed(|| stream.push(frame));
                drop(block?);
                total += seconds;
                last = seconds;
            }
            Ok((last, total, stream.finish()?))
        };
        // Warm-up, and the check that streaming gives the batch output.
        let batch = ccam.project(&clip)?;
        let (_, _, streamed) = stream_clip()?;
        let diff = (&batch - &streamed).abs().max().double_value(&[]);
        let (mut last, mut total, mut project) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let mut run_stream = || -> Result<()> {
                let (l, t, _) = stream_clip()?;
                last.push(l);
                total.push(t);
                Ok(())
            };
            if round % 2 == 0 {
                run_stream()?;
                let (seconds, out) = timed(|| ccam.project(&clip));
                drop(out?);
                project.push(seconds);
            } else {
                let (seconds, out) = timed(|| ccam.project(&clip));
                drop(out?);
                project.push(seconds);
                run_stream()?;
            }
        }
        let ratios: Vec<f64> = project.iter().zip(&last).map(|(p, l)| p / l).collect();
        let (low, high) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
        writeln!(
            table,
            "| {frames} | {rounds} | {} | {} | {:.1}x ({low:.1}–{high:.1}) | {} | {diff:.1e} |",
            ms(median(&last)),
            ms(median(&project)),
            median(&ratios),
            ms(median(&total))
        )?;
    }
    table.push('\n');
    print!("{table}");
    Ok(table)
}

// ---------------------------------------------------------------------------------------
// 4. SmolLM2 decoding against transformers

/// Decode tokens/s from the time of a 1-token `generate` and of one that generated `tokens`
/// (at most `LLM_NEW_TOKENS`: generation stops early at end-of-sequence, so each side's own
/// count is used, and the two sides' counts are checked to be equal before any ratio).
fn decode_rate(first: f64, full: f64, tokens: usize) -> f64 {
    tokens.saturating_sub(1) as f64 / (full - first)
}

/// What the transformers side reports once its models are loaded and warmed up.
#[derive(Deserialize)]
struct TransformersSetup {
    torch: String,
    transformers: String,
    threads: i64,
    attn_implementation: String,
}

/// One transformers round: `generate` with 1 and with `LLM_NEW_TOKENS` new tokens.
#[derive(Deserialize)]
struct TransformersRound {
    first_token_s: f64,
    full_s: f64,
    generated_ids: Vec<u32>,
}

/// smollm2_transformers.py, running beside the bench and driven one round at a time.
struct Transformers {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Transformers {
    fn spawn(
        venv: &str,
        dir: &Path,
        threads: i32,
        ids: &[u32],
    ) -> Result<(Self, TransformersSetup)> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/smollm2_transformers.py");
        let mut child = Command::new(Path::new(venv).join("bin/python"))
            .arg(&script)
            .arg("--model-dir")
            .arg(dir)
            .args(["--threads", &threads.to_string()])
            .args(["--prompt-ids", &serde_json::to_string(ids)?])
            .args(["--new-tokens", &LLM_NEW_TOKENS.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let input = child
            .stdin
            .take()
            .ok_or("no stdin for the transformers side")?;
        let output = BufReader::new(
            child
                .stdout
                .take()
                .ok_or("no stdout for the transformers side")?,
        );
        let mut transformers = Self {
            child,
            input,
            output,
        };
        let setup = transformers.read()?;
        Ok((transformers, setup))
    }

    fn read<T: for<'de> Deserialize<'de>>(&mut self) -> Result<T> {
        let mut line = String::new();
        if self.output.read_line(&mut line)? == 0 {
            return Err(format!(
                "smollm2_transformers.py ended early ({})",
                self.child.wait()?
            )
            .into());
        }
        Ok(serde_json::from_str(&line)?)
    }

    fn round(&mut self, dtype: &str) -> Result<TransformersRound> {
        writeln!(self.input, "{dtype}")?;
        self.input.flush()?;
        self.read()
    }
}

/// The weight floor in one layout: every weight matrix of the checkpoint once against a
/// one-token input, nothing else.
struct Floor {
    /// One-token input and weight, per matrix.
    passes: Vec<(Tensor, Tensor)>,
    /// The weights are `[inputs, outputs]` (read by `mm`) rather than the checkpoint's
    /// `[outputs, inputs]` (read by `linear`, as transformers does).
    transposed: bool,
    seconds: Vec<f64>,
}

impl Floor {
    fn new(matrices: &[Tensor], kind: Kind, transposed: bool) -> Self {
        let passes = matrices
            .iter()
            .map(|w| {
                let x = Tensor::ones([1, w.size()[1]], (kind, Device::Cpu));
                let w = w.to_kind(kind);
                (x, if transposed { w.tr().contiguous() } else { w })
            })
            .collect();
        Self {
            passes,
            transposed,
            seconds: Vec::new(),
        }
    }

    fn pass(&self) {
        tch::no_grad(|| {
            for (x, w) in &self.passes {
                drop(if self.transposed {
                    x.mm(w)
                } else {
                    x.linear::<&Tensor>(w, None)
                });
            }
        })
    }

    fn round(&mut self) {
        for _ in 0..FLOOR_PASSES {
            self.seconds.push(timed(|| self.pass()).0);
        }
    }

    fn label(&self) -> &'static str {
        if self.transposed {
            "[in, out] weights, `mm`"
        } else {
            "[out, in] weights, `linear`"
        }
    }
}

/// One precision's side of the comparison: its Argus model, its weight floors and what each
/// side measured, round by round.
struct Precision {
    /// transformers' name for it, which smollm2_transformers.py takes (`+attention`: the
    /// attention weights are returned, as the captioner asks for them).
    name: &'static str,
    /// Argus returns every step's attention weights (`return_attention`): the explicit
    /// attention path that captions and questions take, rather than the fused one.
    attention: bool,
    llm: Llm,
    /// The floor in both weight layouts.
    floors: [Floor; 2],
    argus_first: Vec<f64>,
    argus_full: Vec<f64>,
    argus_ids: Vec<u32>,
    hf_first: Vec<f64>,
    hf_full: Vec<f64>,
    hf_ids: Vec<u32>,
}

impl Precision {
    fn new(
        name: &'static str,
        attention: bool,
        kind: Kind,
        dir: &Path,
        matrices: &[Tensor],
    ) -> Result<Self> {
        Ok(Self {
            name,
            attention,
            llm: Llm::load_with(dir, Device::Cpu, kind)?,
            floors: [
                Floor::new(matrices, kind, false),
                Floor::new(matrices, kind, true),
            ],
            argus_first: Vec::new(),
            argus_full: Vec::new(),
            argus_ids: Vec::new(),
            hf_first: Vec::new(),
            hf_full: Vec::new(),
            hf_ids: Vec::new(),
        })
    }

    /// `generate` with 1 and with `LLM_NEW_TOKENS` new tokens; the generated ids.
    fn argus_round(&mut self, ids: &[u32]) -> Result<()> {
        let options = |n: usize| GenerationOptions {
            max_new_tokens: n,
            sampling: Sampling::Greedy,
            return_attention: self.attention,
        };
        let (seconds, out) = timed(|| self.llm.generate(ids, &options(1)));
        out?;
        self.argus_first.push(seconds);
        let (seconds, out) = timed(|| self.llm.generate(ids, &options(LLM_NEW_TOKENS)));
        self.argus_ids = out?.tokens.iter().map(|t| t.id).collect();
        self.argus_full.push(seconds);
        Ok(())
    }

    fn transformers_round(&mut self, transformers: &mut Transformers) -> Result<()> {
        let round = transformers.round(self.name)?;
        self.hf_first.push(round.first_token_s);
        self.hf_full.push(round.full_s);
        self.hf_ids = round.generated_ids;
        Ok(())
    }

    fn floor_round(&mut self) {
        for floor in &mut self.floors {
            floor.round();
        }
    }

    /// This precision's table rows.
    fn rows(&self, table: &mut String) -> std::fmt::Result {
        let (argus_ttft, hf_ttft) = (median(&self.argus_first), median(&self.hf_first));
        let (argus_full, hf_full) = (median(&self.argus_full), median(&self.hf_full));
        assert_eq!(
            self.argus_ids.len(),
            self.hf_ids.len(),
            "{}: both sides must generate the same number of tokens before their speeds are \
             divided",
            self.name
        );
        let tokens = self.argus_ids.len();
        let (argus_rate, hf_rate) = (
            decode_rate(argus_ttft, argus_full, tokens),
            decode_rate(hf_ttft, hf_full, tokens),
        );
        // Each round's Argus decode rate over the same round's transformers rate.
        let paired: Vec<f64> = (0..self.argus_full.len())
            .map(|i| {
                decode_rate(self.argus_first[i], self.argus_full[i], tokens)
                    / decode_rate(self.hf_first[i], self.hf_full[i], tokens)
            })
            .collect();
        let (low, high) = paired
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
        let floors = self.floors.each_ref().map(|f| median(&f.seconds));
        let floor = floors[0].min(floors[1]);
        let name = self.name;
        writeln!(
            table,
            "| Argus {name} | {} | {argus_rate:.1} | {} | {} |",
            ms(argus_ttft),
            ms(1.0 / argus_rate),
            ms(argus_full)
        )?;
        writeln!(
            table,
            "| transformers {name} | {} | {hf_rate:.1} | {} | {} |",
            ms(hf_ttft),
            ms(1.0 / hf_rate),
            ms(hf_full)
        )?;
        writeln!(
            table,
            "| **Argus speed-up, {name}** | {:.2}x | **{:.2}x** (paired rounds: median {:.2}x, {low:.2}–{high:.2}) | | {:.2}x |",
            hf_ttft / argus_ttft,
            argus_rate / hf_rate,
            median(&paired),
            hf_full / argus_full
        )?;
        for (f, seconds) in self.floors.iter().zip(floors) {
            writeln!(
                table,
                "| {name} weight floor, {} | | {:.1} | {} | |",
                f.label(),
                1.0 / seconds,
                ms(seconds)
            )?;
        }
        writeln!(
            table,
            "| Argus {name} decode time / the faster floor | | | {:.2}x | |",
            (1.0 / argus_rate) / floor
        )
    }

    /// How many generated tokens Argus and transformers share from the start.
    fn agreement(&self) -> String {
        let same = self
            .argus_ids
            .iter()
            .zip(&self.hf_ids)
            .take_while(|(a, b)| a == b)
            .count();
        if same == self.argus_ids.len() && same == self.hf_ids.len() {
            format!("{}: same {same} tokens", self.name)
        } else {
            format!(
                "{}: the first {same} tokens the same (Argus {}, transformers {} tokens)",
                self.name,
                self.argus_ids.len(),
                self.hf_ids.len()
            )
        }
    }
}

fn smollm2(threads: i32) -> Result<String> {
    let models = std::env::var("ARGUS_MODEL_DIR")
        .map_err(|_| "ARGUS_MODEL_DIR is not set: source deploy/env.sh")?;
    let venv =
        std::env::var("ARGUS_VENV").map_err(|_| "ARGUS_VENV is not set: source deploy/env.sh")?;
    let dir = PathBuf::from(models).join("smollm2-135m-instruct-hf");
    // The floor of any decoder on this libtorch: every weight matrix of the checkpoint once
    // against a one-token input (the tied embedding as the output head), nothing else;
    // decoding one token can read no fewer bytes in that precision. The kernels stream the
    // two layouts of a matrix at different speeds, so both are measured.
    let matrices: Vec<Tensor> = Tensor::read_safetensors(dir.join("model.safetensors"))?
        .into_iter()
        .filter(|(_, w)| w.dim() == 2)
        .map(|(_, w)| w.to_kind(Kind::Float))
        .collect();
    let mut precisions = [
        Precision::new("float32", false, Kind::Float, &dir, &matrices)?,
        Precision::new("bfloat16", false, Kind::BFloat16, &dir, &matrices)?,
        // The captioner's path: float32 with the attention weights returned.
        Precision::new("float32+attention", true, Kind::Float, &dir, &matrices)?,
    ];
    drop(matrices);
    let llm = &precisions[0].llm;
    let ids = llm.encode(&llm.render_chat(&[ChatMessage::new("user", LLM_PROMPT)], true)?)?;
    let (mut transformers, setup) = Transformers::spawn(&venv, &dir, threads, &ids)?;
    // Warm-up.
    for precision in &mut precisions {
        precision.argus_round(&ids)?;
        for floor in &precision.floors {
            floor.pass();
        }
        precision.argus_first.clear();
        precision.argus_full.clear();
    }
    // Each round runs every (side, precision) once and the floors, the order rotating from
    // round to round so none always runs first or after the same neighbour.
    let variants = precisions.len();
    let steps = 3 * variants;
    for round in 0..LLM_ROUNDS {
        for k in 0..steps {
            let step = (k + round) % steps;
            let precision = &mut precisions[step % variants];
            match step / variants {
                0 => precision.argus_round(&ids)?,
                1 => precision.transformers_round(&mut transformers)?,
                _ => precision.floor_round(),
            }
        }
    }
    drop(transformers.input);
    transformers.child.wait()?;

    let mut table = String::new();
    writeln!(
        table,
        "### 4. SmolLM2-135M-Instruct greedy decoding: Argus vs transformers\n\n\
         Same checkpoint ($ARGUS_MODEL_DIR/smollm2-135m-instruct-hf), same {}-token chat \
         prompt, greedy, {LLM_NEW_TOKENS} new tokens, CPU, {threads} intra-op threads on both \
         sides (transformers {} / torch {}, {} threads, attention `{}`; Argus runs on the same \
         libtorch), each side in float32 and in bfloat16 (weights and activations; \
         transformers `dtype=torch.bfloat16`, Argus `Llm::load_with(.., Kind::BFloat16)`). \
         Time to first token = median `generate` with 1 new token; decode = \
         ({LLM_NEW_TOKENS} − 1) / (median {LLM_NEW_TOKENS}-token time − median 1-token time). \
         Both sides' generated token counts are checked equal before speeds are divided. \
         {LLM_ROUNDS} rounds; each runs Argus and transformers in every variant and \
         {FLOOR_PASSES} passes of each floor, in an order rotating round by round \
         (transformers runs beside the bench, driven one round at a time). Paired rounds: \
         each round's Argus decode rate over the same round's transformers rate. Floor: every \
         weight matrix of the checkpoint once against a one-token input (the tied embedding \
         as output head), nothing else, in that precision — the weight-streaming cost of one \
         decode step on this libtorch — with the weights as the checkpoint stores them \
         (`[out, in]`, what `linear` and transformers read) and transposed (`[in, out]`, what \
         Argus's float32 layers read). Continuations: {}; {}; {}.\n",
        ids.len(),
        setup.transformers,
        setup.torch,
        setup.threads,
        setup.attn_implementation,
        precisions[0].agreement(),
        precisions[1].agreement(),
        precisions[2].agreement(),
    )?;
    writeln!(
        table,
        "| | time to first token, median ms | decode tokens/s | decode ms/token | {LLM_NEW_TOKENS} tokens end to end, median ms |"
    )?;
    writeln!(table, "|---|---|---|---|---|")?;
    for precision in &precisions {
        precision.rows(&mut table)?;
    }
    let (float, bfloat) = (&precisions[0], &precisions[1]);
    writeln!(
        table,
        "| Argus bfloat16 over transformers float32 | {:.2}x | {:.2}x | | {:.2}x |",
        median(&float.hf_first) / median(&bfloat.argus_first),
        decode_rate(
            median(&bfloat.argus_first),
            median(&bfloat.argus_full),
            bfloat.argus_ids.len()
        ) / decode_rate(
            median(&float.hf_first),
            median(&float.hf_full),
            float.hf_ids.len()
        ),
        median(&float.hf_full) / median(&bfloat.argus_full)
    )?;
    table.push('\n');
    print!("{table}");
    Ok(table)
}
