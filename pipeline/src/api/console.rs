//! The operator console (stream grid, live results): static files compiled into the binary.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/` | the console's page |
//! | GET | `/console.js` | its script |
//! | GET | `/console.css` | its styles |

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::ApiState;

pub(super) fn router() -> Router<ApiState> {
    Router::new()
        .route("/", get(console_page))
        .route("/console.js", get(console_script))
        .route("/console.css", get(console_style))
}

/// The console is three static files compiled into the binary; the page may load scripts,
/// styles and images from Argus only.
const CONSOLE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn console_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONSOLE_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn console_page() -> Response {
    console_file(
        "text/html; charset=utf-8",
        include_str!("../../console/index.html"),
    )
}

async fn console_script() -> Response {
    console_file(
        "text/javascript; charset=utf-8",
        include_str!("../../console/console.js"),
    )
}

async fn console_style() -> Response {
    console_file(
        "text/css; charset=utf-8",
        include_str!("../../console/console.css"),
    )
}
