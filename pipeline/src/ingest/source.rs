//! Where a stream's video comes from, parsed and checked before GStreamer sees it.

use std::fmt;
use std::path::PathBuf;

use url::Url;

/// A validated stream location.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A local file (any container and codec `decodebin` handles).
    File(PathBuf),
    /// An RTSP camera; credentials may be in the URL.
    Rtsp(Url),
    /// HTTP(S): progressive files and HLS playlists.
    Http(Url),
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum SourceError {
    #[error("`{0}` is not a valid URI: {1}")]
    Malformed(String, String),
    #[error("unsupported URI scheme `{0}` (use file://, rtsp://, rtsps://, http:// or https://)")]
    UnsupportedScheme(String),
    #[error("file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("{0} is not a regular file")]
    NotAFile(PathBuf),
    #[error("file {0} is empty")]
    EmptyFile(PathBuf),
}

impl Source {
    /// Parses a configured URI; plain paths are files. Files are checked to exist here, so
    /// the user gets "does not exist" instead of GStreamer's generic "resource not found".
    pub fn parse(uri: &str) -> Result<Self, SourceError> {
        let uri = uri.trim();
        if uri.starts_with('/') || uri.starts_with("./") {
            return Self::file(PathBuf::from(uri));
        }
        let url =
            Url::parse(uri).map_err(|e| SourceError::Malformed(redact_text(uri), e.to_string()))?;
        match url.scheme() {
            "file" => {
                let path = url.to_file_path().map_err(|()| {
                    SourceError::Malformed(uri.into(), "not a local file path".into())
                })?;
                Self::file(path)
            }
            "rtsp" | "rtsps" | "rtspt" => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(SourceError::Malformed(redact_text(uri), "no host".into()));
                }
                Ok(Self::Rtsp(url))
            }
            "http" | "https" => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(SourceError::Malformed(redact_text(uri), "no host".into()));
                }
                Ok(Self::Http(url))
            }
            other => Err(SourceError::UnsupportedScheme(other.into())),
        }
    }

    fn file(path: PathBuf) -> Result<Self, SourceError> {
        let metadata =
            std::fs::metadata(&path).map_err(|_| SourceError::MissingFile(path.clone()))?;
        if !metadata.is_file() {
            return Err(SourceError::NotAFile(path));
        }
        if metadata.len() == 0 {
            return Err(SourceError::EmptyFile(path));
        }
        Ok(Self::File(path))
    }

    /// The URI handed to GStreamer, credentials included.
    pub fn gstreamer_uri(&self) -> String {
        match self {
            Self::File(path) => Url::from_file_path(path)
                .map(String::from)
                .unwrap_or_else(|()| format!("file://{}", path.display())),
            Self::Rtsp(url) | Self::Http(url) => url.to_string(),
        }
    }

    /// Live sources are never waited on; recorded ones are read as fast as analysis allows.
    pub fn is_live(&self) -> bool {
        matches!(self, Self::Rtsp(_))
    }
}

/// Shows a source with any password replaced, for logs, metrics and API answers.
impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "file://{}", path.display()),
            Self::Rtsp(url) | Self::Http(url) => f.write_str(&redact_url(url)),
        }
    }
}

fn redact_url(url: &Url) -> String {
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
    fn rtsp_passwords_never_show() {
        let source = Source::parse("rtsp://admin:s3cr%40t!@10.0.0.7:554/stream1").unwrap();
        let shown = source.to_string();
        assert!(!shown.contains("s3cr"), "{shown}");
        assert!(shown.contains("admin:***@10.0.0.7:554/stream1"), "{shown}");
        assert!(
            source.gstreamer_uri().contains("s3cr%40t!"),
            "GStreamer gets the real password"
        );
    }

    #[test]
    fn text_that_is_not_a_url_is_redacted_too() {
        assert_eq!(
            redact_text("rtsp://u:p@ss w0rd@host:99999/x"),
            "rtsp://u:***@host:99999/x"
        );
    }

    #[test]
    fn files_are_checked() {
        assert_eq!(
            Source::parse("/definitely/not/here.mp4"),
            Err(SourceError::MissingFile("/definitely/not/here.mp4".into()))
        );
        assert!(matches!(
            Source::parse("file:///tmp"),
            Err(SourceError::NotAFile(_))
        ));
    }

    #[test]
    fn malformed_uris_are_refused() {
        assert!(matches!(
            Source::parse("rtsp//camera"),
            Err(SourceError::Malformed(..))
        ));
        assert!(matches!(
            Source::parse("rtsp://"),
            Err(SourceError::Malformed(..))
        ));
        assert_eq!(
            Source::parse("ftp://x/y"),
            Err(SourceError::UnsupportedScheme("ftp".into()))
        );
    }
}
