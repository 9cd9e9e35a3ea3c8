//! Chat templates: the Jinja template a checkpoint ships to turn a conversation into the
//! prompt text it was trained on, rendered with `minijinja` the way transformers'
//! `apply_chat_template` renders it with Jinja2.

use std::path::{Path, PathBuf};

use minijinja::{context, Environment, Error, ErrorKind};
use serde::Serialize;

use crate::OperatorError;

/// One turn of a conversation: `role` is `system`, `user` or `assistant` for most templates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

const TEMPLATE_NAME: &str = "chat";

pub(super) struct ChatTemplate {
    /// Where the template came from, for errors.
    path: PathBuf,
    environment: Environment<'static>,
}

impl ChatTemplate {
    pub(super) fn new(path: &Path, source: String) -> Result<Self, OperatorError> {
        let mut environment = Environment::new();
        // transformers compiles templates with these Jinja2 settings; without them the
        // whitespace around `{% %}` blocks, and so the prompt, would differ.
        environment.set_trim_blocks(true);
        environment.set_lstrip_blocks(true);
        // Python string methods (`.strip()`, `.startswith()`, ...) that templates call.
        environment
            .set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        environment.add_function(
            "raise_exception",
            |message: String| -> Result<String, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        environment
            .add_template_owned(TEMPLATE_NAME, source)
            .map_err(|e| OperatorError::ModelLoad {
                path: path.to_owned(),
                message: format!("invalid chat template: {e}"),
            })?;
        Ok(Self {
            path: path.to_owned(),
            environment,
        })
    }

    pub(super) fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<String, OperatorError> {
        self.environment
            .get_template(TEMPLATE_NAME)
            .and_then(|template| {
                template.render(context! {
                    messages => messages,
                    add_generation_prompt => add_generation_prompt,
                    bos_token => bos_token,
                    eos_token => eos_token,
                })
            })
            .map_err(|e| {
                OperatorError::InvalidInput(format!(
                    "chat template of {} failed: {e}",
                    self.path.display()
                ))
            })
    }
}
