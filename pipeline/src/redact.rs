//! Passwords out of everything Argus shows: logs, errors, the API, the printed config.
//! Camera URLs carry credentials (`rtsp://user:password@host`), and they reach text through
//! many paths (GStreamer's errors quote URIs), so every module may use this one.

use url::Url;

/// A URL as it may be shown: its password, if any, replaced by `***`.
pub fn redact_url(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

/// Redacts `user:password@` in text that may not even parse as a URL.
pub fn redact_text(text: &str) -> String {
    match Url::parse(text) {
        Ok(url) => redact_url(&url),
        Err(_) => match (text.find("://"), text.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                let credentials = &text[scheme_end + 3..at];
                match credentials.find(':') {
                    Some(colon) => format!(
                        "{}{}:***{}",
                        &text[..scheme_end + 3],
                        &credentials[..colon],
                        &text[at..]
                    ),
                    None => text.to_string(),
                }
            }
            _ => text.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_is_not_a_url_is_redacted_too() {
        assert_eq!(
            redact_text("rtsp://u:p@ss w0rd@host:99999/x"),
            "rtsp://u:***@host:99999/x"
        );
    }
}
