//! Captions and answers about a chunk of video written by a video-LLM from the frames
//! themselves: the full path, when vision-language weights are installed. It is
//! [`crate::video_qa`]'s twin: the same [`Task`], [`RoundOptions`] and CyberV [`Candidate`]s,
//! so the same sensor and controller read either.
//!
//! The model is Video-CCAM's chain: a SigLIP or CLIP tower ([`crate::vision`], with ToMe
//! inside it) encodes each frame; the CCAM projector ([`crate::ccam`]) turns the chunk's
//! frames, fed in time order, into a fixed number of LLM input embeddings; a Llama-family
//! decoder ([`crate::llm`]) answers from a chat prompt with those embeddings spliced into the
//! user message. Frames are pushed through the projector as a stream, so each frame's query
//! block is computed once, when the frame arrives, from that frame and the ones before it:
//! how a live stream is computed incrementally, and why a later frame never changes what
//! an earlier segment contributed.
//!
//! The chunk comes as segments (the frames of each, in time order). Segment `s` owns the
//! CCAM query blocks of its frames ([`crate::ccam::query_block`]), so the decoder's attention
//! to those prompt positions says how much an answer leaned on that segment: CyberV's
//! attention drift then points at the segments to look at again, and the correction round
//! ([`VideoLlm::answer`]) gives those segments more frames, hence more queries.
//!
//! The folder [`VideoLlm::load`] reads:
//!
//! ```text
//! vision/          a SigLIP or CLIP checkpoint (config.json, safetensors)
//! projector/       a CCAM projector (ccam_config.json, model.safetensors)
//! llm/             a Llama-family checkpoint (config.json, safetensors, tokenizer.json,
//!                  a chat template)
//! video_llm.json   optional, see VideoLlmConfig
//! ```

use std::ops::Range;
use std::path::{Path, PathBuf};

use opencv::core::{Mat, Size};
use opencv::imgproc;
use opencv::prelude::*;
use serde::Deserialize;
use tch::{Device, Kind, Tensor};

use crate::ccam::{self, Ccam};
use crate::checkpoint::{self, read_json};
use crate::llm::{ChatMessage, GenerationOptions, Llm, Sampling};
use crate::self_correction::Candidate;
use crate::video_qa::{answer_key, Evidence, Observation, RoundOptions, Task};
use crate::vision::tome::MergeSchedule;
use crate::vision::{FeatureLayer, VisionFamily, VisionTower};
use crate::{BgrImage, OperatorError};

/// The vision tower's subfolder.
pub const VISION_DIR: &str = "vision";
/// The CCAM projector's subfolder.
pub const PROJECTOR_DIR: &str = "projector";
/// The decoder's subfolder.
pub const LLM_DIR: &str = "llm";
/// The optional settings file beside the subfolders ([`VideoLlmConfig`]).
pub const CONFIG_FILE: &str = "video_llm.json";

const MISSING_HINT: &str = "a video-LLM folder holds vision/ (a SigLIP or CLIP checkpoint), \
                            projector/ (a CCAM projector) and llm/ (a Llama-family checkpoint)";

/// Where the visual embeddings go in the user message. Alone on its line, so the text on
/// either side tokenizes the same as it would without it.
const VIDEO_MARKER: &str = "<video>";
const SYSTEM_PROMPT: &str = "Answer the question about the camera video. If the video does not \
                             show the answer, say unknown.";

/// SigLIP's processor maps pixels to `[-1, 1]`.
const SIGLIP_MEAN: [f32; 3] = [0.5, 0.5, 0.5];
const SIGLIP_STD: [f32; 3] = [0.5, 0.5, 0.5];
/// CLIP's processor uses OpenAI's dataset statistics (`OPENAI_CLIP_MEAN` / `_STD`).
const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// `video_llm.json`: how the three parts are run together. Every field is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VideoLlmConfig {
    /// The tower layer the projector reads, as `transformers`' `hidden_states` index
    /// (negative counts from the end). Video-CCAM reads the second-to-last (−2).
    pub feature_layer: i64,
    /// ToMe: tokens merged away in each tower layer that runs (0: the plain tower).
    pub tome_r: i64,
    /// The most frames one call takes over all segments: the projector's queries are shared
    /// among the frames, so far beyond what it was trained and evaluated on (Video-CCAM: up
    /// to 96) each frame gets too few. The caller samples frames down to this.
    pub max_frames: usize,
}

impl Default for VideoLlmConfig {
    fn default() -> Self {
        Self {
            feature_layer: -2,
            tome_r: 0,
            max_frames: 96,
        }
    }
}

/// Where and when the chunk was recorded: the prompt tells the model.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChunkContext {
    pub camera: String,
    /// Labels of the chunk's first and last instants, e.g. `14:03:10`.
    pub from: String,
    pub to: String,
}

/// A prompt as embeddings, and where each segment's visual queries sit in it.
struct Prompt {
    /// `[positions, hidden]` on the model's device.
    embeddings: Tensor,
    /// Per segment, its query rows' prompt positions.
    segment_positions: Vec<Range<i64>>,
}

/// The full-path captioner and answerer: vision tower, CCAM projector and decoder. `Send`
/// but not `Sync`, as `tch` tensors are.
pub struct VideoLlm {
    /// The folder it was loaded from, for error messages.
    dir: PathBuf,
    config: VideoLlmConfig,
    tower: VisionTower,
    projector: Ccam,
    llm: Llm,
    device: Device,
}

impl VideoLlm {
    /// Loads the folder `dir` (see the module documentation) onto `device`, refusing parts
    /// that do not chain: the tower's width must be the projector's `visual_size`, and the
    /// projector's `output_size` the decoder's hidden size.
    pub fn load(dir: &Path, device: Device) -> Result<Self, OperatorError> {
        let part = |name: &str| -> Result<PathBuf, OperatorError> {
            let path = dir.join(name);
            if path.is_dir() {
                Ok(path)
            } else {
                Err(OperatorError::MissingModel {
                    path,
                    hint: MISSING_HINT.into(),
                })
            }
        };
        let (vision_dir, projector_dir, llm_dir) =
            (part(VISION_DIR)?, part(PROJECTOR_DIR)?, part(LLM_DIR)?);
        let config_path = dir.join(CONFIG_FILE);
        let config = if config_path.is_file() {
            read_json(&config_path)?
        } else {
            VideoLlmConfig::default()
        };
        let bad_setting = |message: String| OperatorError::ModelLoad {
            path: config_path.clone(),
            message,
        };
        if config.tome_r < 0 {
            return Err(bad_setting(format!("tome_r {} is negative", config.tome_r)));
        }

        let tower = VisionTower::load(&vision_dir, device)?;
        let projector = Ccam::load(&projector_dir, device)?;
        let llm = Llm::load(&llm_dir, device)?;

        let mismatch = |message: String| OperatorError::ModelLoad {
            path: dir.to_owned(),
            message,
        };
        let layers = tower.config().num_hidden_layers;
        if !(-(layers + 1)..=layers).contains(&config.feature_layer) {
            return Err(bad_setting(format!(
                "feature_layer {} is outside the {} hidden states (-{}..={layers}) of the \
                 tower in {}",
                config.feature_layer,
                layers + 1,
                layers + 1,
                vision_dir.join(checkpoint::CONFIG_FILE).display()
            )));
        }
        let (tower_width, visual_size) =
            (tower.config().hidden_size, projector.config().visual_size);
        if tower_width != visual_size {
            return Err(mismatch(format!(
                "the vision tower's hidden_size {tower_width} ({}) is not the projector's \
                 visual_size {visual_size} ({})",
                vision_dir.join(checkpoint::CONFIG_FILE).display(),
                projector_dir.join(ccam::CONFIG_FILE).display()
            )));
        }
        let (output_size, llm_width) = (projector.config().output_size, llm.hidden_size());
        if output_size != llm_width {
            return Err(mismatch(format!(
                "the projector's output_size {output_size} ({}) is not the decoder's \
                 hidden_size {llm_width} ({})",
                projector_dir.join(ccam::CONFIG_FILE).display(),
                llm_dir.join(checkpoint::CONFIG_FILE).display()
            )));
        }
        Ok(Self {
            dir: dir.to_owned(),
            config,
            tower,
            projector,
            llm,
            device,
        })
    }

    pub fn config(&self) -> &VideoLlmConfig {
        &self.config
    }

    /// The user message: where and when, the video (its embeddings replace the `<video>`
    /// line), then the question.
    pub fn user_message(context: &ChunkContext, task: &Task) -> String {
        format!(
            "Video from camera {}, {} to {}:\n{VIDEO_MARKER}\n\nQuestion: {}",
            context.camera,
            context.from,
            context.to,
            task.question()
        )
    }

    /// The decoder input rows each segment contributes, `[rows_s, hidden]` per segment: the
    /// projector's query blocks of its frames (block `t` for the chunk's frame `t`, see
    /// [`crate::ccam::query_block`]; none for a segment without frames), handed back by the
    /// projector stream as the frames are pushed in time order, so a segment's rows never
    /// depend on later segments.
    pub fn visual_queries(&self, segments: &[Vec<BgrImage>]) -> Result<Vec<Tensor>, OperatorError> {
        let total: usize = segments.iter().map(Vec::len).sum();
        if total == 0 {
            return Err(OperatorError::InvalidInput(format!(
                "{} needs at least one frame",
                self.dir.display()
            )));
        }
        if total > self.config.max_frames {
            return Err(OperatorError::InvalidInput(format!(
                "{total} frames exceed max_frames {} of {}; sample fewer",
                self.config.max_frames,
                self.dir.join(CONFIG_FILE).display()
            )));
        }
        let merging = match self.config.tome_r {
            0 => MergeSchedule::None,
            r => MergeSchedule::Constant(r),
        };
        let layer = FeatureLayer::Hidden(self.config.feature_layer);
        let mut stream = self.projector.stream(total)?;
        let empty = Tensor::f_zeros(
            [0, self.projector.config().output_size],
            (Kind::Float, self.device),
        )
        .map_err(|e| self.error(e))?;
        segments
            .iter()
            .map(|frames| {
                if frames.is_empty() {
                    return Ok(empty.shallow_clone());
                }
                // A segment's frames are one tower batch: frames do not interact in the tower.
                let tokens = self
                    .tower
                    .encode(&self.pixels(frames)?, layer, &merging)?
                    .tokens;
                let blocks = (0..frames.len() as i64)
                    .map(|index| {
                        stream.push(&tokens.f_select(0, index).map_err(|e| self.error(e))?)
                    })
                    .collect::<Result<Vec<_>, OperatorError>>()?;
                Tensor::f_cat(&blocks, 0).map_err(|e| self.error(e))
            })
            .collect()
    }

    /// One CyberV round over the chunk's `segments`: `options.candidates` answers, the first
    /// greedy, each with its token log-probabilities and its attention per segment.
    pub fn candidates(
        &self,
        segments: &[Vec<BgrImage>],
        context: &ChunkContext,
        task: &Task,
        options: &RoundOptions,
    ) -> Result<Vec<Candidate>, OperatorError> {
        if options.candidates == 0 {
            return Err(OperatorError::InvalidInput(
                "a round needs at least one candidate".into(),
            ));
        }
        let prompt = self.prompt(segments, context, task)?;
        (0..options.candidates)
            .map(|i| {
                let sampling = if i == 0 {
                    Sampling::Greedy
                } else {
                    Sampling::Sample {
                        temperature: options.temperature,
                        top_p: options.top_p,
                        seed: options.seed.wrapping_add(i as u64),
                    }
                };
                self.generate(&prompt, task, sampling, options.max_new_tokens)
            })
            .collect()
    }

    /// One answer with `sampling`: the correction round's, where the key segments carry
    /// more frames than the others (and so more of the projector's queries).
    pub fn answer(
        &self,
        segments: &[Vec<BgrImage>],
        context: &ChunkContext,
        task: &Task,
        sampling: Sampling,
        max_new_tokens: usize,
    ) -> Result<Candidate, OperatorError> {
        let prompt = self.prompt(segments, context, task)?;
        self.generate(&prompt, task, sampling, max_new_tokens)
    }

    /// Frames as the tower's input `[N, 3, S, S]`: the whole frame squeezed into the square
    /// (a crop would never see what happens at a wide frame's sides; SigLIP's own processor
    /// squeezes too), RGB, normalised with the family's processor statistics.
    fn pixels(&self, frames: &[BgrImage]) -> Result<Tensor, OperatorError> {
        let config = self.tower.config();
        let (mean, std) = match config.family {
            VisionFamily::Siglip => (SIGLIP_MEAN, SIGLIP_STD),
            VisionFamily::Clip => (CLIP_MEAN, CLIP_STD),
        };
        let side = config.image_size as usize;
        let plane = side * side;
        let mut values = vec![0.0_f32; frames.len() * 3 * plane];
        for (frame, slot) in frames.iter().zip(values.chunks_exact_mut(3 * plane)) {
            let mut resized = Mat::default();
            imgproc::resize(
                &frame.as_mat()?,
                &mut resized,
                Size::new(side as i32, side as i32),
                0.0,
                0.0,
                // camera frames are shrunk several times over: area averaging does not alias
                imgproc::INTER_AREA,
            )?;
            for (index, bgr) in resized.data_bytes()?.chunks_exact(3).enumerate() {
                for (channel, &value) in bgr.iter().rev().enumerate() {
                    slot[channel * plane + index] =
                        (f32::from(value) / 255.0 - mean[channel]) / std[channel];
                }
            }
        }
        Tensor::f_from_slice(&values)
            .and_then(|t| t.f_view([frames.len() as i64, 3, side as i64, side as i64]))
            .map_err(|e| self.error(e))
    }

    /// The chat prompt with the visual queries spliced in at the marker: the text on each
    /// side embedded by the decoder, the queries between them, in segment order.
    fn prompt(
        &self,
        segments: &[Vec<BgrImage>],
        context: &ChunkContext,
        task: &Task,
    ) -> Result<Prompt, OperatorError> {
        let queries = self.visual_queries(segments)?;
        let rendered = self.llm.render_chat(
            &[
                ChatMessage::new("system", SYSTEM_PROMPT),
                ChatMessage::new("user", Self::user_message(context, task)),
            ],
            true,
        )?;
        let (before, after) = rendered.split_once(VIDEO_MARKER).ok_or_else(|| {
            OperatorError::InvalidInput(format!(
                "the chat template of {} dropped the video marker {VIDEO_MARKER} from the user \
                 message",
                self.dir.display()
            ))
        })?;
        let before = self.llm.encode(before)?;
        let after = self.llm.encode(after)?;
        let mut parts = Vec::with_capacity(queries.len() + 2);
        if !before.is_empty() {
            parts.push(self.llm.embed_tokens(&before)?);
        }
        let mut position = before.len() as i64;
        let mut segment_positions = Vec::with_capacity(queries.len());
        for rows in queries {
            let count = rows.size()[0];
            segment_positions.push(position..position + count);
            position += count;
            parts.push(rows);
        }
        if !after.is_empty() {
            parts.push(self.llm.embed_tokens(&after)?);
        }
        let embeddings = Tensor::f_cat(&parts, 0).map_err(|e| self.error(e))?;
        Ok(Prompt {
            embeddings,
            segment_positions,
        })
    }

    fn generate(
        &self,
        prompt: &Prompt,
        task: &Task,
        sampling: Sampling,
        max_new_tokens: usize,
    ) -> Result<Candidate, OperatorError> {
        let generation = self.llm.generate_from_embeddings(
            &prompt.embeddings,
            &GenerationOptions {
                max_new_tokens,
                sampling,
                return_attention: true,
            },
        )?;
        Candidate::from_generation(
            &generation,
            sampling,
            |text| full_path_key(task, text),
            |attention, answer_tokens| {
                self.segment_attention(attention, answer_tokens, &prompt.segment_positions)
            },
        )
    }

    /// The answer tokens' attention (mean over layers, heads and answer tokens) summed over
    /// each segment's query positions, normalised to shares.
    fn segment_attention(
        &self,
        attention: &Tensor,
        answer_tokens: usize,
        segment_positions: &[Range<i64>],
    ) -> Result<Vec<f32>, OperatorError> {
        // [generated, layers, heads, prompt] → mean over the answer rows, layers and heads.
        let per_position = attention
            .f_narrow(0, 0, answer_tokens as i64)
            .and_then(|a| a.f_mean_dim([0i64, 1, 2].as_slice(), false, Kind::Float))
            .and_then(Vec::<f32>::try_from)
            .map_err(|e| self.error(e))?;
        let mut shares: Vec<f32> = segment_positions
            .iter()
            .map(|positions| {
                positions
                    .clone()
                    .filter_map(|p| per_position.get(p as usize))
                    .sum()
            })
            .collect();
        let total: f32 = shares.iter().sum();
        if total > 0.0 {
            shares.iter_mut().for_each(|s| *s /= total);
        }
        Ok(shares)
    }

    fn error(&self, e: tch::TchError) -> OperatorError {
        OperatorError::Inference {
            model: self.dir.display().to_string(),
            message: e.to_string(),
        }
    }
}

/// The comparable form of a full-path answer: [`answer_key`] with every content word of the
/// answer counting as grounded. `answer_key` keeps only the words its evidence contains, to
/// tell observed facts from invention; here the model looked at the frames themselves and
/// there is no observation text, so the answer is its own evidence. Yes/no questions still
/// key on `yes`/`no`/`unknown`, and a declined answer on `unknown`. (Empty evidence would
/// key every caption to the same empty set, and the controller would count any two
/// captions as agreeing.)
fn full_path_key(task: &Task, text: &str) -> String {
    let evidence = Evidence {
        observations: vec![Observation {
            segment: 0,
            time: String::new(),
            text: text.into(),
            confidence: 1.0,
            key_frame: false,
        }],
        ..Evidence::default()
    };
    answer_key(task, text, &evidence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_places_the_video_before_the_question() {
        let context = ChunkContext {
            camera: "gate-3".into(),
            from: "14:03:10".into(),
            to: "14:03:20".into(),
        };
        let message = VideoLlm::user_message(&context, &Task::Question("Is the gate open?".into()));
        assert_eq!(
            message,
            "Video from camera gate-3, 14:03:10 to 14:03:20:\n<video>\n\nQuestion: Is the gate \
             open? Answer yes or no."
        );
        assert!(
            VideoLlm::user_message(&context, &Task::Caption).ends_with(&Task::Caption.question())
        );
    }

    #[test]
    fn answers_key_on_all_their_content_words() {
        let caption = |text: &str| full_path_key(&Task::Caption, text);
        assert_eq!(
            caption("A streetcar passes gate 3."),
            "3 gate passes streetcar"
        );
        assert_ne!(caption("A streetcar passes."), caption("A truck waits."));
        assert_eq!(caption("Unknown."), "unknown");
        let question = Task::Question("Is the gate open?".into());
        assert_eq!(full_path_key(&question, "Yes, it is."), "yes");
    }
}
