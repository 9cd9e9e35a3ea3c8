//! Questions about a camera's video, answered by the captioner's LLM.
//!
//! | method | path | |
//! |---|---|---|
//! | POST | `/api/v1/questions` | answer a question about a camera's video (reads: the read token suffices) |

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use super::error::error;
use super::ApiState;
use crate::access;
use crate::captions::questions::{QuestionError, QuestionRequest};

pub(super) fn router() -> Router<ApiState> {
    Router::new().route(access::QUESTIONS_PATH, post(ask_question))
}

impl IntoResponse for QuestionError {
    fn into_response(self) -> Response {
        let status = match &self {
            QuestionError::Empty | QuestionError::BadRange(_) => StatusCode::BAD_REQUEST,
            QuestionError::TooLong(_) => StatusCode::PAYLOAD_TOO_LARGE,
            QuestionError::UnknownCamera(_) => StatusCode::NOT_FOUND,
            QuestionError::OutsideVideo { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            QuestionError::Disabled | QuestionError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            QuestionError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "question failed");
        }
        error(status, self.to_string())
    }
}

/// `POST /api/v1/questions` `{"camera", "question", "from"?, "to"?}`: the answer, after
/// self-correction when the controller asked for it; `answers` holds every published
/// revision, the first one first.
async fn ask_question(
    State(state): State<ApiState>,
    body: Result<Json<QuestionRequest>, JsonRejection>,
) -> Response {
    let Some(questions) = &state.questions else {
        return QuestionError::Disabled.into_response();
    };
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => {
            let status = match rejection {
                JsonRejection::BytesRejection(_) => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            };
            return error(
                status,
                format!("invalid question: {}", rejection.body_text()),
            );
        }
    };
    match questions.ask(request).await {
        Ok(answers) => {
            let last = answers.last().expect("at least one answer");
            Json(json!({
                "text": last.text,
                "revision": last.revision,
                "missing": last.missing,
                "answers": answers,
            }))
            .into_response()
        }
        Err(error) => error.into_response(),
    }
}
