//! Frames to model input, as the checkpoint's `transformers` image processor does it:
//! resize (CLIP: the shortest edge, aspect kept; SigLIP: straight to the square input), centre
//! crop (CLIP), rescale to 0–1, normalise per RGB channel. The settings come from
//! `preprocessor_config.json` with each family's processor defaults for what it leaves out.
//!
//! Resizing is OpenCV's, which differs from the processor's (Pillow, or torchvision's copy of
//! it) when shrinking: those widen the bicubic kernel by the scale factor (antialiasing),
//! OpenCV's bicubic does not and aliases. Camera frames shrink 3–5× to a model's input, so
//! frames that shrink on both sides are resized with OpenCV's area filter instead, which
//! antialiases: on photographs shrunk 1.3–5× it came within 0.7–2.2 grey levels (mean) of the
//! processor's pixels where bicubic was 0.6–14 away, the gap growing with the factor. Enlarged
//! frames use the configured filter; frames that need no resampling match exactly.

use std::path::Path;

use opencv::core::{Mat, Size};
use opencv::imgproc;
use opencv::prelude::*;
use serde_json::Value;

use super::ImageTextFamily;
use crate::checkpoint::read_json;
use crate::{BgrImage, OperatorError};

/// `transformers`' `OPENAI_CLIP_MEAN` / `OPENAI_CLIP_STD`, CLIPImageProcessor's defaults.
const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];
/// SiglipImageProcessor's defaults (`IMAGENET_STANDARD_MEAN` / `_STD`).
const SIGLIP_MEAN: [f32; 3] = [0.5; 3];
const SIGLIP_STD: [f32; 3] = [0.5; 3];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resize {
    /// The shorter side to this many pixels, the longer one scaled alike (rounded down).
    ShortestEdge(i32),
    /// Both sides to these, aspect not kept.
    Exact { height: i32, width: i32 },
}

/// The preprocessing of one model.
#[derive(Debug, Clone)]
pub(super) struct ImageProcessor {
    resize: Option<Resize>,
    /// Height and width of the centre crop.
    crop: Option<(i32, i32)>,
    interpolation: i32,
    /// Per RGB channel in 0–255 pixel units, with the rescale folded in (as `transformers`'
    /// torchvision backend does): input = (pixel - mean) / std.
    mean: [f32; 3],
    std: [f32; 3],
    /// Height and width of what the model receives.
    output: (i32, i32),
}

impl ImageProcessor {
    /// The processor of `path` (a `preprocessor_config.json`), or the family's defaults for a
    /// model taking `image_size` square frames when there is none.
    pub(super) fn load(
        path: &Path,
        family: ImageTextFamily,
        image_size: i64,
    ) -> Result<Self, OperatorError> {
        let json = if path.is_file() {
            read_json(path)?
        } else {
            Value::Object(Default::default())
        };
        let invalid = |message: String| OperatorError::UnsupportedModel {
            path: path.to_owned(),
            message,
        };
        let side = i32::try_from(image_size)
            .map_err(|_| invalid(format!("image_size {image_size} is out of range")))?;
        let clip = family == ImageTextFamily::Clip;
        let flag =
            |key: &str, default: bool| json.get(key).and_then(Value::as_bool).unwrap_or(default);

        let resize = if flag("do_resize", true) {
            Some(match json.get("size") {
                None | Some(Value::Null) if clip => Resize::ShortestEdge(side),
                None | Some(Value::Null) => Resize::Exact {
                    height: side,
                    width: side,
                },
                Some(size) => parse_resize(size).map_err(|m| invalid(format!("size: {m}")))?,
            })
        } else {
            None
        };
        let crop = if flag("do_center_crop", clip) {
            Some(match json.get("crop_size") {
                None | Some(Value::Null) => (side, side),
                Some(size) => parse_crop(size).map_err(|m| invalid(format!("crop_size: {m}")))?,
            })
        } else {
            None
        };
        let interpolation = match json.get("resample").and_then(Value::as_i64).unwrap_or(3) {
            0 => imgproc::INTER_NEAREST,
            2 => imgproc::INTER_LINEAR,
            3 => imgproc::INTER_CUBIC,
            other => {
                return Err(invalid(format!(
                    "resample {other}; only 0 (nearest), 2 (bilinear) and 3 (bicubic) are \
                     implemented"
                )))
            }
        };
        let rescale = if flag("do_rescale", true) {
            json.get("rescale_factor")
                .and_then(Value::as_f64)
                .unwrap_or(1.0 / 255.0)
        } else {
            1.0
        };
        let (mean, std) = if flag("do_normalize", true) {
            let (mean, std) = if clip {
                (CLIP_MEAN, CLIP_STD)
            } else {
                (SIGLIP_MEAN, SIGLIP_STD)
            };
            (
                channels(&json, "image_mean", mean).map_err(invalid)?,
                channels(&json, "image_std", std).map_err(invalid)?,
            )
        } else {
            ([0.0; 3], [1.0; 3])
        };
        if std.iter().any(|&s| s <= 0.0) || rescale <= 0.0 {
            return Err(invalid(format!(
                "image_std {std:?} and rescale_factor {rescale} must be positive"
            )));
        }
        let output = match (crop, resize) {
            (Some(crop), _) => crop,
            (None, Some(Resize::Exact { height, width })) => (height, width),
            _ => {
                return Err(invalid(
                    "without a centre crop or a fixed resize, frames would reach the model in \
                     their own sizes"
                        .into(),
                ))
            }
        };
        if output != (side, side) {
            return Err(invalid(format!(
                "frames come out {}x{} (height x width) but the vision tower takes \
                 {side}x{side}",
                output.0, output.1
            )));
        }
        let scale = |values: [f32; 3]| values.map(|v| (f64::from(v) / rescale) as f32);
        Ok(Self {
            resize,
            crop,
            interpolation,
            mean: scale(mean),
            std: scale(std),
            output,
        })
    }

    /// Values per frame in the model input: channels × height × width.
    pub(super) fn frame_len(&self) -> usize {
        3 * self.output.0 as usize * self.output.1 as usize
    }

    /// Height and width of every preprocessed frame.
    pub(super) fn output_size(&self) -> (i32, i32) {
        self.output
    }

    /// `images` as one `[N, 3, height, width]` float32 batch, RGB, row-major.
    pub(super) fn pixels(&self, images: &[&BgrImage]) -> Result<Vec<f32>, OperatorError> {
        let mut out = Vec::with_capacity(images.len() * self.frame_len());
        for image in images {
            self.append(image, &mut out)?;
        }
        Ok(out)
    }

    fn append(&self, image: &BgrImage, out: &mut Vec<f32>) -> Result<(), OperatorError> {
        let source = image.as_mat()?;
        let (height, width) = (image.height() as i32, image.width() as i32);
        let target = match self.resize {
            Some(Resize::ShortestEdge(short)) => shortest_edge(height, width, short),
            Some(Resize::Exact { height, width }) => (height, width),
            None => (height, width),
        };
        let mut resized = Mat::default();
        let (pixels, height, width) = if target == (height, width) {
            (source.data_bytes()?, height, width)
        } else {
            let shrinking = target.0 <= height && target.1 <= width;
            let interpolation = if shrinking && self.interpolation != imgproc::INTER_NEAREST {
                imgproc::INTER_AREA
            } else {
                self.interpolation
            };
            imgproc::resize(
                &source,
                &mut resized,
                Size::new(target.1, target.0),
                0.0,
                0.0,
                interpolation,
            )?;
            (resized.data_bytes()?, target.0, target.1)
        };
        let (out_height, out_width) = self.output;
        // `transformers`' centre crop: the top-left corner at half the excess, rounded down;
        // a crop larger than the frame pads it with zeros around it.
        let offset = |size: i32, crop: i32| {
            if crop > size {
                -((crop - size) / 2)
            } else {
                (size - crop) / 2
            }
        };
        let (top, left) = match self.crop {
            Some((crop_h, crop_w)) => (offset(height, crop_h), offset(width, crop_w)),
            None => (0, 0),
        };
        for channel in 0..3 {
            let bgr = 2 - channel;
            let (mean, std) = (self.mean[channel], self.std[channel]);
            for y in 0..out_height {
                let row = y + top;
                for x in 0..out_width {
                    let column = x + left;
                    let value = if (0..height).contains(&row) && (0..width).contains(&column) {
                        f32::from(pixels[((row * width + column) * 3) as usize + bgr])
                    } else {
                        0.0
                    };
                    out.push((value - mean) / std);
                }
            }
        }
        Ok(())
    }
}

/// `transformers`' `get_resize_output_image_size` without `default_to_square`: the short
/// side becomes `short`, the long one `int(short * long / short_side)`.
fn shortest_edge(height: i32, width: i32, short: i32) -> (i32, i32) {
    let long = |long_side: i32, short_side: i32| {
        (f64::from(short) * f64::from(long_side) / f64::from(short_side)) as i32
    };
    if width <= height {
        (long(height, width), short)
    } else {
        (short, long(width, height))
    }
}

fn positive(value: &Value) -> Option<i32> {
    value
        .as_i64()
        .and_then(|v| i32::try_from(v).ok())
        .filter(|&v| v > 0)
}

/// `size` as `transformers`' `get_size_dict(default_to_square=False)` reads it: a number is
/// the shortest edge, or a `{shortest_edge}` / `{height, width}` object.
fn parse_resize(size: &Value) -> Result<Resize, String> {
    if let Some(short) = positive(size) {
        return Ok(Resize::ShortestEdge(short));
    }
    if let Some(short) = size.get("shortest_edge") {
        if size.get("longest_edge").is_some() {
            return Err("a longest_edge limit is not implemented".into());
        }
        return positive(short)
            .map(Resize::ShortestEdge)
            .ok_or_else(|| format!("shortest_edge {short} is not a positive integer"));
    }
    match (
        size.get("height").and_then(positive),
        size.get("width").and_then(positive),
    ) {
        (Some(height), Some(width)) => Ok(Resize::Exact { height, width }),
        _ => Err(format!(
            "{size} is neither a number, {{shortest_edge}} nor {{height, width}}"
        )),
    }
}

/// `crop_size`: a number (a square) or `{height, width}`.
fn parse_crop(size: &Value) -> Result<(i32, i32), String> {
    if let Some(side) = positive(size) {
        return Ok((side, side));
    }
    match (
        size.get("height").and_then(positive),
        size.get("width").and_then(positive),
    ) {
        (Some(height), Some(width)) => Ok((height, width)),
        _ => Err(format!("{size} is neither a number nor {{height, width}}")),
    }
}

/// A per-channel setting: three numbers, or one for all channels; `default` when absent.
fn channels(json: &Value, key: &str, default: [f32; 3]) -> Result<[f32; 3], String> {
    let number = |v: &Value| v.as_f64().map(|v| v as f32);
    match json.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(value) => {
            if let Some(v) = number(value) {
                return Ok([v; 3]);
            }
            let values: Option<Vec<f32>> = value
                .as_array()
                .map(|items| items.iter().map(number).collect())
                .unwrap_or(None);
            values
                .and_then(|v| <[f32; 3]>::try_from(v).ok())
                .ok_or_else(|| format!("{key} {value} is not one number or three"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_edge_rounds_the_long_side_down_as_transformers_does() {
        assert_eq!(shortest_edge(720, 1280, 224), (224, 398));
        assert_eq!(shortest_edge(53, 41, 32), (41, 32));
        assert_eq!(shortest_edge(32, 32, 32), (32, 32));
    }

    #[test]
    fn sizes_parse_in_every_hub_spelling() {
        let json = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        assert_eq!(parse_resize(&json("224")), Ok(Resize::ShortestEdge(224)));
        assert_eq!(
            parse_resize(&json(r#"{"shortest_edge": 336}"#)),
            Ok(Resize::ShortestEdge(336))
        );
        assert_eq!(
            parse_resize(&json(r#"{"height": 384, "width": 384}"#)),
            Ok(Resize::Exact {
                height: 384,
                width: 384
            })
        );
        assert!(parse_resize(&json(r#"{"height": 384}"#)).is_err());
        assert_eq!(parse_crop(&json("224")), Ok((224, 224)));
        assert_eq!(
            channels(&json(r#"{"image_mean": 0.5}"#), "image_mean", [0.0; 3]),
            Ok([0.5; 3])
        );
        assert!(channels(&json(r#"{"image_mean": [1, 2]}"#), "image_mean", [0.0; 3]).is_err());
    }
}
