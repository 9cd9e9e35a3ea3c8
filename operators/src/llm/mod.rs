//! Text generation with a Llama-family decoder from a Hugging Face checkpoint, run with `tch`.
//!
//! [`Llm`] reads the checkpoint folder as transformers writes it — `config.json`, the
//! safetensors weights (one file or shards), `tokenizer.json`, and the chat template from
//! `chat_template.jinja` or `tokenizer_config.json` — and generates greedily or by seeded
//! sampling, with each generated token's log-probability. Generation can start from
//! embeddings rather than token ids ([`Llm::embed_tokens`], [`Llm::generate_from_embeddings`])
//! so other embeddings (visual tokens) can be spliced into a prompt, and can return how much
//! each generated token attended to each prompt position.

mod chat;
mod config;
mod model;
mod sampling;

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;
use tch::{Device, Kind, TchError, Tensor};
use tokenizers::Tokenizer;

use crate::checkpoint::{read_json, required_file, Checkpoint, CONFIG_FILE, TOKENIZER_FILE};
use crate::OperatorError;
pub use chat::ChatMessage;
use chat::ChatTemplate;
use config::{LlamaConfig, TokenIds};
use model::Llama;
use sampling::Rng;
pub use sampling::Sampling;

/// Tokenizer settings: special tokens and (in older checkpoints) the chat template.
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
/// The chat template as transformers 4.43+ saves it; preferred over the one in
/// [`TOKENIZER_CONFIG_FILE`] when both exist, as transformers does.
pub const CHAT_TEMPLATE_FILE: &str = "chat_template.jinja";
/// Optional generation defaults; only its `eos_token_id` is read (more stop tokens).
pub const GENERATION_CONFIG_FILE: &str = "generation_config.json";

const MISSING_HINT: &str = "a Llama checkpoint folder needs config.json, model.safetensors (or \
                            sharded safetensors with model.safetensors.index.json) and \
                            tokenizer.json; deploy/setup.sh converts SmolLM2-135M-Instruct";

/// How to generate: at most `max_new_tokens` tokens, chosen by `sampling`.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationOptions {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    /// Return [`Generation::attention`]. Costs a copy of every layer's attention row per token,
    /// and attention computed step by step (scores, softmax, weighted sum) instead of
    /// libtorch's fused kernel, which does not return the probabilities.
    pub return_attention: bool,
}

impl Default for GenerationOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 64,
            sampling: Sampling::Greedy,
            return_attention: false,
        }
    }
}

/// One generated token and its log-probability under the model (the plain softmax of the
/// logits, before temperature or top-p), which says how sure the model was of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeneratedToken {
    pub id: u32,
    pub logprob: f32,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced one of [`Llm::stop_tokens`]; it is the last of [`Generation::tokens`].
    StopToken,
    /// `max_new_tokens` tokens were generated.
    MaxTokens,
}

#[derive(Debug)]
pub struct Generation {
    /// The generated tokens in order, the stop token included.
    pub tokens: Vec<GeneratedToken>,
    /// The tokens decoded, special tokens (the stop token among them) left out.
    pub text: String,
    pub stop: StopReason,
    /// With [`GenerationOptions::return_attention`]: float32 on the CPU,
    /// `[generated tokens, layers, heads, prompt positions]`. Row `i` is the attention of the
    /// position whose output chose token `i` (the last prompt position for the first token)
    /// over the prompt positions only.
    pub attention: Option<Tensor>,
}

/// A loaded decoder with its tokenizer. `Send` but not `Sync`, because `tch` tensors are
/// not: move it into the worker that runs it, or put it behind a `Mutex`.
pub struct Llm {
    /// The checkpoint folder's name, for error messages.
    name: String,
    model: Llama,
    tokenizer: Tokenizer,
    template: Option<ChatTemplate>,
    bos_token: String,
    eos_token: String,
    stop_tokens: Vec<u32>,
    max_positions: i64,
    device: Device,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SpecialToken {
    Text(String),
    Added { content: String },
}

#[derive(Deserialize)]
struct NamedTemplate {
    name: String,
    template: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TemplateField {
    One(String),
    Named(Vec<NamedTemplate>),
}

#[derive(Deserialize, Default)]
struct TokenizerConfig {
    chat_template: Option<TemplateField>,
    bos_token: Option<SpecialToken>,
    eos_token: Option<SpecialToken>,
}

#[derive(Deserialize)]
struct GenerationConfig {
    eos_token_id: Option<TokenIds>,
}

fn special_token(token: Option<SpecialToken>) -> String {
    match token {
        Some(SpecialToken::Text(text)) | Some(SpecialToken::Added { content: text }) => text,
        None => String::new(),
    }
}

impl Llm {
    /// Loads the checkpoint in `dir` onto `device`, computing in float32 (what the parity
    /// tests against transformers hold to 1e-4).
    pub fn load(dir: &Path, device: Device) -> Result<Self, OperatorError> {
        Self::load_with(dir, device, Kind::Float)
    }

    /// Loads the checkpoint in `dir` onto `device`, computing in `kind`: [`Kind::Float`], or
    /// [`Kind::BFloat16`] for serving, which halves the bytes each decoded token reads (on
    /// CPUs with bfloat16 instructions, faster decoding) at the cost of float32 parity:
    /// greedy output can part from float32's where two candidates are nearly tied.
    /// Embeddings, logits, log-probabilities and attention are float32 either way.
    pub fn load_with(dir: &Path, device: Device, kind: Kind) -> Result<Self, OperatorError> {
        if !matches!(kind, Kind::Float | Kind::BFloat16) {
            return Err(OperatorError::InvalidInput(format!(
                "the decoder computes in Float or BFloat16, not {kind:?}"
            )));
        }
        let config_path = required_file(dir, CONFIG_FILE, MISSING_HINT)?;
        let tokenizer_path = required_file(dir, TOKENIZER_FILE, MISSING_HINT)?;
        let config = LlamaConfig::load(&config_path)?;
        let mut checkpoint = Checkpoint::open_dir(dir, device, MISSING_HINT)?;
        let model = Llama::load(&config, &mut checkpoint, kind)?;
        let tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| OperatorError::ModelLoad {
                path: tokenizer_path.clone(),
                message: e.to_string(),
            })?;

        let tokenizer_config_path = dir.join(TOKENIZER_CONFIG_FILE);
        let tokenizer_config: TokenizerConfig = if tokenizer_config_path.is_file() {
            read_json(&tokenizer_config_path)?
        } else {
            TokenizerConfig::default()
        };
        let template_path = dir.join(CHAT_TEMPLATE_FILE);
        let template = if template_path.is_file() {
            let source =
                std::fs::read_to_string(&template_path).map_err(|e| OperatorError::ModelLoad {
                    path: template_path.clone(),
                    message: e.to_string(),
                })?;
            Some(ChatTemplate::new(&template_path, source)?)
        } else {
            let source = match tokenizer_config.chat_template {
                Some(TemplateField::One(source)) => Some(source),
                Some(TemplateField::Named(templates)) => templates
                    .into_iter()
                    .find(|t| t.name == "default")
                    .map(|t| t.template),
                None => None,
            };
            source
                .map(|source| ChatTemplate::new(&tokenizer_config_path, source))
                .transpose()?
        };

        let bos_token = special_token(tokenizer_config.bos_token);
        let eos_token = special_token(tokenizer_config.eos_token);
        let mut stop_tokens: BTreeSet<u32> = config
            .eos_token_id
            .iter()
            .flat_map(TokenIds::to_vec)
            .collect();
        let generation_config_path = dir.join(GENERATION_CONFIG_FILE);
        if generation_config_path.is_file() {
            let generation: GenerationConfig = read_json(&generation_config_path)?;
            stop_tokens.extend(generation.eos_token_id.iter().flat_map(TokenIds::to_vec));
        }
        stop_tokens.extend(tokenizer.token_to_id(&eos_token));

        Ok(Self {
            name: dir.file_name().map_or_else(
                || dir.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            model,
            tokenizer,
            template,
            bos_token,
            eos_token,
            stop_tokens: stop_tokens.into_iter().collect(),
            max_positions: config.max_position_embeddings,
            device,
        })
    }

    /// Token ids that end generation: the config's `eos_token_id` (one or a list), the
    /// generation config's, and the tokenizer's end-of-sequence token.
    pub fn stop_tokens(&self) -> &[u32] {
        &self.stop_tokens
    }

    /// Width of the embeddings [`Llm::generate_from_embeddings`] takes.
    pub fn hidden_size(&self) -> i64 {
        self.model.hidden_size()
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The prompt text for `messages` from the checkpoint's chat template, as transformers'
    /// `apply_chat_template(messages, add_generation_prompt=..., tokenize=False)` renders it.
    pub fn render_chat(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, OperatorError> {
        let template = self.template.as_ref().ok_or_else(|| {
            OperatorError::InvalidInput(format!(
                "{} has no chat template (neither {CHAT_TEMPLATE_FILE} nor chat_template in \
                 {TOKENIZER_CONFIG_FILE})",
                self.name
            ))
        })?;
        template.render(
            messages,
            add_generation_prompt,
            &self.bos_token,
            &self.eos_token,
        )
    }

    /// Token ids of `text`, adding no special tokens: a rendered chat prompt already has them,
    /// and transformers tokenizes it the same way.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, OperatorError> {
        self.tokenizer
            .encode(text, false)
            .map(|encoding| encoding.get_ids().to_vec())
            .map_err(|e| self.inference_error(format!("tokenization failed: {e}")))
    }

    /// The text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String, OperatorError> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| self.inference_error(format!("decoding failed: {e}")))
    }

    /// Renders `messages` with the generation prompt, tokenizes and generates the reply.
    pub fn chat(
        &self,
        messages: &[ChatMessage],
        options: &GenerationOptions,
    ) -> Result<Generation, OperatorError> {
        let ids = self.encode(&self.render_chat(messages, true)?)?;
        self.generate(&ids, options)
    }

    /// Generates a continuation of the prompt `ids`.
    pub fn generate(
        &self,
        ids: &[u32],
        options: &GenerationOptions,
    ) -> Result<Generation, OperatorError> {
        let embeddings = self.embed_tokens(ids)?;
        self.generate_from_embeddings(&embeddings, options)
    }

    /// The input embeddings `[tokens, hidden]` (float32, on the model's device) of `ids`: a
    /// prompt's rows, among which others (visual tokens) can be put before
    /// [`Llm::generate_from_embeddings`].
    pub fn embed_tokens(&self, ids: &[u32]) -> Result<Tensor, OperatorError> {
        let vocab = self.model.vocab_size();
        if let Some(bad) = ids.iter().find(|&&id| i64::from(id) >= vocab) {
            return Err(OperatorError::InvalidInput(format!(
                "token id {bad} is outside the vocabulary of {} ({vocab} tokens)",
                self.name
            )));
        }
        tch::no_grad(|| {
            self.model
                .embed(&self.id_tensor(ids)?)?
                .f_to_kind(Kind::Float)
        })
        .map_err(|e| self.inference_error(e.to_string()))
    }

    /// Logits `[tokens, vocab]` (float32, CPU) for every position of `ids`, from one full pass
    /// without a cache: position `i` predicts token `i + 1`.
    pub fn logits(&self, ids: &[u32]) -> Result<Tensor, OperatorError> {
        let positions = ids.len() as i64;
        if positions > self.max_positions {
            return Err(OperatorError::InvalidInput(format!(
                "{positions} tokens exceed the {} positions of {}",
                self.max_positions, self.name
            )));
        }
        let embeddings = self.embed_tokens(ids)?;
        tch::no_grad(|| {
            let mut cache = self.model.new_cache(positions)?;
            let input = embeddings.f_to_kind(self.model.kind())?;
            let (hidden, _) = self.model.forward(&input, &mut cache, false)?;
            self.model.logits(&hidden)?.f_to_device(Device::Cpu)
        })
        .map_err(|e| self.inference_error(e.to_string()))
    }

    /// Generates a continuation of a prompt given as embeddings `[tokens, hidden]`, such as
    /// [`Llm::embed_tokens`] rows with other rows spliced in (converted to the model's
    /// precision).
    pub fn generate_from_embeddings(
        &self,
        embeddings: &Tensor,
        options: &GenerationOptions,
    ) -> Result<Generation, OperatorError> {
        let size = embeddings.size();
        if size.len() != 2 || size[0] == 0 || size[1] != self.hidden_size() {
            return Err(OperatorError::InvalidInput(format!(
                "prompt embeddings have shape {size:?}; {} needs [tokens > 0, {}]",
                self.name,
                self.hidden_size()
            )));
        }
        let positions = size[0] + options.max_new_tokens as i64;
        if positions > self.max_positions {
            return Err(OperatorError::InvalidInput(format!(
                "{} prompt tokens and {} new tokens exceed the {} positions of {}",
                size[0], options.max_new_tokens, self.max_positions, self.name
            )));
        }
        if let Sampling::Sample {
            temperature, top_p, ..
        } = options.sampling
        {
            if !(temperature > 0.0 && top_p > 0.0 && top_p <= 1.0) {
                return Err(OperatorError::InvalidInput(format!(
                    "sampling needs temperature > 0 and 0 < top_p <= 1, got {temperature} and {top_p}"
                )));
            }
        }
        let (tokens, stop, attention) = tch::no_grad(|| self.run(embeddings, options))
            .map_err(|e| self.inference_error(e.to_string()))?;
        let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
        Ok(Generation {
            text: self.decode(&ids)?,
            tokens,
            stop,
            attention,
        })
    }

    /// The decoding loop: one pass over the prompt, then one cached pass per new token.
    fn run(
        &self,
        embeddings: &Tensor,
        options: &GenerationOptions,
    ) -> Result<(Vec<GeneratedToken>, StopReason, Option<Tensor>), TchError> {
        let prompt = embeddings.size()[0];
        let mut rng = match options.sampling {
            Sampling::Sample { seed, .. } => Some(Rng::new(seed)),
            Sampling::Greedy => None,
        };
        // Room for every position generation can reach, so the cache never grows.
        let mut cache = self
            .model
            .new_cache(prompt + options.max_new_tokens as i64)?;
        let mut input = embeddings
            .f_to_device(self.device)?
            .f_to_kind(self.model.kind())?;
        let mut tokens = Vec::new();
        let mut rows = Vec::new();
        let mut stop = StopReason::MaxTokens;
        while tokens.len() < options.max_new_tokens {
            let (hidden, attentions) =
                self.model
                    .forward(&input, &mut cache, options.return_attention)?;
            let last = hidden.f_narrow(0, -1, 1)?;
            if options.return_attention {
                // Each layer's `[1, heads, queries, positions]`: the last query, prompt keys.
                let layers = attentions
                    .iter()
                    .map(|a| a.f_select(0, 0)?.f_select(1, -1)?.f_narrow(1, 0, prompt))
                    .collect::<Result<Vec<_>, TchError>>()?;
                rows.push(Tensor::f_stack(&layers, 0)?.f_to_device(Device::Cpu)?);
            }
            let logits = self.model.logits(&last)?.f_squeeze_dim(0)?;
            let logprobs = Vec::<f32>::try_from(
                logits
                    .f_log_softmax(-1, Kind::Float)?
                    .f_to_device(Device::Cpu)?,
            )?;
            let logits = Vec::<f32>::try_from(logits.f_to_device(Device::Cpu)?)?;
            let index = match (options.sampling, rng.as_mut()) {
                (
                    Sampling::Sample {
                        temperature, top_p, ..
                    },
                    Some(rng),
                ) => sampling::sample(&logits, temperature, top_p, rng),
                _ => sampling::argmax(&logits),
            };
            // Below the vocabulary size, which is a tokenizer's u32 id range.
            let id = index as u32;
            tokens.push(GeneratedToken {
                id,
                logprob: logprobs[index],
            });
            if self.stop_tokens.contains(&id) {
                stop = StopReason::StopToken;
                break;
            }
            input = self.model.embed(&self.id_tensor(&[id])?)?;
        }
        let attention = if options.return_attention && !rows.is_empty() {
            Some(Tensor::f_stack(&rows, 0)?)
        } else {
            None
        };
        Ok((tokens, stop, attention))
    }

    fn id_tensor(&self, ids: &[u32]) -> Result<Tensor, TchError> {
        let ids: Vec<i64> = ids.iter().map(|&id| i64::from(id)).collect();
        Tensor::f_from_slice(&ids)?.f_to_device(self.device)
    }

    fn inference_error(&self, message: String) -> OperatorError {
        OperatorError::Inference {
            model: self.name.clone(),
            message,
        }
    }
}
