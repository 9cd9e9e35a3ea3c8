//! all-MiniLM-L6-v2 through `tch`, checked against embeddings that an independent PyTorch
//! implementation computed from the same files (reference/make_text_embedding_reference.py).

use std::fs;
use std::path::{Path, PathBuf};

use argus_operators::checkpoint::device_from_name;
use argus_operators::text_embedding::TextEmbedder;
use argus_operators::OperatorError;
use serde::Deserialize;
use tch::{Device, Tensor};

/// float32 against the float64 reference: anything above this is a real difference.
const TOLERANCE: f32 = 1e-4;

fn model_dir() -> PathBuf {
    let root =
        std::env::var_os("ARGUS_MODEL_DIR").expect("ARGUS_MODEL_DIR is set by deploy/env.sh");
    PathBuf::from(root).join("all-minilm-l6-v2")
}

fn embedder() -> TextEmbedder {
    TextEmbedder::load(&model_dir(), Device::Cpu).unwrap()
}

#[derive(Deserialize)]
struct Reference {
    max_tokens: usize,
    sentences: Vec<String>,
    embeddings: Vec<Vec<f32>>,
}

fn reference() -> Reference {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/text_embedding_reference.json");
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn max_abs_error(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The start of a text, for assertion messages.
fn head(text: &str) -> String {
    text.chars().take(60).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn matches_the_pytorch_reference() {
    let reference = reference();
    let model = embedder();
    assert_eq!(model.dimension(), 384);
    assert_eq!(model.max_tokens(), reference.max_tokens);

    let texts: Vec<&str> = reference.sentences.iter().map(String::as_str).collect();
    let embeddings = model.embed(&texts).unwrap();
    assert_eq!(embeddings.len(), texts.len());
    let mut worst = 0.0_f32;
    for ((text, ours), theirs) in texts.iter().zip(&embeddings).zip(&reference.embeddings) {
        let error = max_abs_error(ours, theirs);
        assert!(
            error <= TOLERANCE,
            "max abs error {error} for {:?}",
            head(text)
        );
        assert!(
            (dot(ours, ours) - 1.0).abs() < 1e-5,
            "not unit length: {:?}",
            head(text)
        );
        worst = worst.max(error);
    }
    println!("max abs error against the reference: {worst:e}");
}

#[test]
fn a_text_embeds_the_same_alone_as_in_a_batch() {
    let reference = reference();
    let model = embedder();
    let texts: Vec<&str> = reference.sentences.iter().map(String::as_str).collect();
    let batch = model.embed(&texts).unwrap();
    for (text, batched) in texts.iter().zip(&batch) {
        let alone = model.embed(&[text]).unwrap().remove(0);
        // Padding must not leak into the result: only float noise may differ.
        assert!(max_abs_error(&alone, batched) < 1e-5, "{:?}", head(text));
    }
}

#[test]
fn text_beyond_the_token_limit_is_ignored() {
    let long = reference()
        .sentences
        .into_iter()
        .max_by_key(String::len)
        .unwrap();
    let longer = format!("{long} And then the recipe says to bake the chocolate cake for an hour.");
    let embeddings = embedder().embed(&[&long, &longer]).unwrap();
    assert!(max_abs_error(&embeddings[0], &embeddings[1]) < 1e-6);
}

#[test]
fn similar_sentences_are_closer_than_unrelated_ones() {
    let embeddings = embedder()
        .embed(&[
            "a truck at the gate",
            "a lorry near the entrance",
            "a recipe for chocolate cake",
        ])
        .unwrap();
    let related = dot(&embeddings[0], &embeddings[1]);
    let unrelated = dot(&embeddings[0], &embeddings[2]);
    assert!(
        related > unrelated + 0.3,
        "related {related}, unrelated {unrelated}"
    );
}

#[test]
fn the_embedder_can_move_to_a_worker_thread() {
    fn send<T: Send>() {}
    send::<TextEmbedder>();
}

#[test]
fn no_texts_give_no_embeddings() {
    assert!(embedder().embed(&[]).unwrap().is_empty());
}

#[test]
fn device_names() {
    assert_eq!(device_from_name("cpu").unwrap(), Device::Cpu);
    assert_eq!(device_from_name(" CPU ").unwrap(), Device::Cpu);
    assert_eq!(
        device_from_name("auto").unwrap(),
        Device::cuda_if_available()
    );
    let gpus = tch::Cuda::device_count() as usize;
    let beyond = format!("cuda:{gpus}");
    let error = device_from_name(&beyond).unwrap_err();
    assert!(matches!(error, OperatorError::InvalidInput(_)), "{error}");
    assert!(error.to_string().contains(&beyond), "{error}");
    if gpus > 0 {
        assert_eq!(device_from_name("cuda").unwrap(), Device::Cuda(0));
    }
    for bad in ["gpu", "cuda:", "cuda:x", ""] {
        assert!(
            matches!(device_from_name(bad), Err(OperatorError::InvalidInput(_))),
            "{bad:?}"
        );
    }
}

/// A scratch checkpoint folder: the real files linked in, so each test changes only one.
struct ScratchModel(PathBuf);

impl ScratchModel {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "argus-text-embedding-{}-{test}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("1_Pooling")).unwrap();
        for file in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "sentence_bert_config.json",
            "1_Pooling/config.json",
        ] {
            std::os::unix::fs::symlink(model_dir().join(file), dir.join(file)).unwrap();
        }
        Self(dir)
    }

    /// Replaces `file` with new contents.
    fn write(&self, file: &str, contents: &str) {
        fs::remove_file(self.0.join(file)).unwrap();
        fs::write(self.0.join(file), contents).unwrap();
    }

    /// Replaces the weights with the real ones passed through `edit`.
    fn edit_weights(&self, edit: impl FnOnce(Vec<(String, Tensor)>) -> Vec<(String, Tensor)>) {
        let tensors =
            edit(Tensor::read_safetensors(model_dir().join("model.safetensors")).unwrap());
        fs::remove_file(self.0.join("model.safetensors")).unwrap();
        Tensor::write_safetensors(&tensors, self.0.join("model.safetensors")).unwrap();
    }

    fn load(&self) -> Result<TextEmbedder, OperatorError> {
        TextEmbedder::load(&self.0, Device::Cpu)
    }
}

impl Drop for ScratchModel {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_missing_folder_names_config_json() {
    let missing = model_dir().join("no-such-model");
    let error = TextEmbedder::load(&missing, Device::Cpu).err().unwrap();
    let expected = missing.join("config.json");
    assert!(matches!(&error, OperatorError::MissingModel { path, .. } if *path == expected));
    assert!(
        error.to_string().contains("no-such-model/config.json"),
        "{error}"
    );
}

#[test]
fn a_missing_tokenizer_is_named() {
    let scratch = ScratchModel::new("no-tokenizer");
    fs::remove_file(scratch.0.join("tokenizer.json")).unwrap();
    let error = scratch.load().err().unwrap();
    assert!(error.to_string().contains("tokenizer.json"), "{error}");
}

#[test]
fn a_missing_tensor_names_the_tensor_and_the_file() {
    let scratch = ScratchModel::new("missing-tensor");
    let name = "encoder.layer.3.attention.self.key.weight";
    scratch.edit_weights(|tensors| tensors.into_iter().filter(|(n, _)| n != name).collect());
    let error = scratch.load().err().unwrap();
    assert!(
        matches!(&error, OperatorError::MissingTensor { name: n, .. } if n == name),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(name) && message.contains("model.safetensors"),
        "{message}"
    );
}

#[test]
fn a_wrongly_shaped_tensor_names_the_tensor_and_both_shapes() {
    let scratch = ScratchModel::new("wrong-shape");
    let name = "encoder.layer.0.output.dense.weight";
    scratch.edit_weights(|tensors| {
        tensors
            .into_iter()
            .map(|(n, t)| {
                if n == name {
                    (n, t.transpose(0, 1).contiguous())
                } else {
                    (n, t)
                }
            })
            .collect()
    });
    let error = scratch.load().err().unwrap();
    assert!(
        matches!(&error, OperatorError::TensorShape { name: n, expected, actual, .. }
            if n == name && expected == &[384, 1536] && actual == &[1536, 384]),
        "{error}"
    );
    assert!(error.to_string().contains("model.safetensors"), "{error}");
}

#[test]
fn weights_saved_from_a_task_model_load_under_the_bert_prefix() {
    let scratch = ScratchModel::new("bert-prefix");
    scratch.edit_weights(|tensors| {
        tensors
            .into_iter()
            .map(|(n, t)| (format!("bert.{n}"), t))
            .collect()
    });
    let text = ["a truck at the gate"];
    let prefixed = scratch.load().unwrap().embed(&text).unwrap();
    assert!(max_abs_error(&prefixed[0], &embedder().embed(&text).unwrap()[0]) == 0.0);

    // Missing tensors are then named as the file would hold them.
    scratch.edit_weights(|tensors| {
        tensors
            .into_iter()
            .filter(|(n, _)| n != "embeddings.LayerNorm.bias")
            .map(|(n, t)| (format!("bert.{n}"), t))
            .collect()
    });
    let error = scratch.load().err().unwrap();
    assert!(
        error.to_string().contains("bert.embeddings.LayerNorm.bias"),
        "{error}"
    );
}

#[test]
fn a_model_other_than_bert_is_refused() {
    let scratch = ScratchModel::new("gpt2");
    let config = fs::read_to_string(model_dir().join("config.json")).unwrap();
    scratch.write("config.json", &config.replace("\"bert\"", "\"gpt2\""));
    let error = scratch.load().err().unwrap();
    assert!(
        matches!(error, OperatorError::UnsupportedModel { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("config.json") && error.to_string().contains("gpt2"),
        "{error}"
    );

    scratch.write(
        "config.json",
        &config.replace("\"BertModel\"", "\"RobertaModel\""),
    );
    let error = scratch.load().err().unwrap();
    assert!(error.to_string().contains("RobertaModel"), "{error}");
}

#[test]
fn pooling_other_than_the_mean_is_refused() {
    let scratch = ScratchModel::new("cls-pooling");
    let pooling = fs::read_to_string(model_dir().join("1_Pooling/config.json")).unwrap();
    scratch.write(
        "1_Pooling/config.json",
        &pooling
            .replace(
                "\"pooling_mode_cls_token\": false",
                "\"pooling_mode_cls_token\": true",
            )
            .replace(
                "\"pooling_mode_mean_tokens\": true",
                "\"pooling_mode_mean_tokens\": false",
            ),
    );
    let error = scratch.load().err().unwrap();
    let expected = scratch.0.join("1_Pooling/config.json");
    assert!(
        matches!(&error, OperatorError::UnsupportedModel { path, .. } if *path == expected),
        "{error}"
    );
    assert!(
        error.to_string().contains("pooling_mode_cls_token"),
        "{error}"
    );
}
