//! Where a stream's video comes from, parsed and checked before GStreamer sees it.

use std::fmt;
use std::path::PathBuf;

use url::Url;

use crate::redact::{redact_text, redact_url};

/// A validated stream location.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A local file (any container and codec `decodebin` handles).
    File(PathBuf),
    /// An RTSP camera; credentials may be in the URL.
    Rtsp(Url),
    /// HTTP(S): progressive files and HLS playlists.
    Http(Url),
    /// A V4L2 capture device, e.g. `/dev/video0`.
    V4l2(PathBuf),
    /// A synthetic live source (GStreamer `videotestsrc`), for trying Argus without a camera.
    Test(TestPattern),
}

/// `test:PATTERN?width=W&height=H&fps=F`; PATTERN is any `videotestsrc` pattern name.
#[derive(Debug, Clone, PartialEq)]
pub struct TestPattern {
    pub pattern: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum SourceError {
    #[error("`{0}` is not a valid URI: {1}")]
    Malformed(String, String),
    #[error("unsupported URI scheme `{0}` (use file://, rtsp://, rtsps://, http://, https://, v4l2:// or test:)")]
    UnsupportedScheme(String),
    #[error("file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("{0} is not a regular file")]
    NotAFile(PathBuf),
    #[error("file {0} is empty")]
    EmptyFile(PathBuf),
    #[error("invalid test source `{0}`: {1}")]
    InvalidTestSource(String, String),
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
            "v4l2" => Ok(Self::V4l2(PathBuf::from(url.path()))),
            "test" => Self::test_pattern(&url),
            other => Err(SourceError::UnsupportedScheme(other.into())),
        }
    }

    fn test_pattern(url: &Url) -> Result<Self, SourceError> {
        let invalid = |why: String| SourceError::InvalidTestSource(url.to_string(), why);
        let pattern = match url.path() {
            "" => "smpte".to_string(),
            name if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => name.to_string(),
            name => return Err(invalid(format!("`{name}` is not a pattern name"))),
        };
        let mut source = TestPattern {
            pattern,
            width: 1280,
            height: 720,
            fps: 10,
        };
        for (key, value) in url.query_pairs() {
            let number = value
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=16384).contains(n))
                .ok_or_else(|| invalid(format!("{key}={value} is not a number in 1..=16384")))?;
            match key.as_ref() {
                "width" => source.width = number,
                "height" => source.height = number,
                "fps" => source.fps = number,
                other => {
                    return Err(invalid(format!(
                        "unknown parameter `{other}` (width, height, fps)"
                    )))
                }
            }
        }
        Ok(Self::Test(source))
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

    /// The URI handed to `uridecodebin`, credentials included; `None` for sources that are
    /// built from their own elements (devices, test patterns).
    pub fn gstreamer_uri(&self) -> Option<String> {
        match self {
            Self::File(path) => Some(
                Url::from_file_path(path)
                    .map(String::from)
                    .unwrap_or_else(|()| format!("file://{}", path.display())),
            ),
            Self::Rtsp(url) | Self::Http(url) => Some(url.to_string()),
            Self::V4l2(_) | Self::Test(_) => None,
        }
    }

    /// Live sources are never waited on; recorded ones are read as fast as analysis allows.
    pub fn is_live(&self) -> bool {
        matches!(self, Self::Rtsp(_) | Self::V4l2(_) | Self::Test(_))
    }

    /// Sources that can go away and come back, and so are reconnected.
    pub fn reconnects(&self) -> bool {
        matches!(self, Self::Rtsp(_) | Self::Http(_) | Self::V4l2(_))
    }
}

/// Shows a source with any password replaced, for logs, metrics and API answers.
impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "file://{}", path.display()),
            Self::Rtsp(url) | Self::Http(url) => f.write_str(&redact_url(url)),
            Self::V4l2(path) => write!(f, "v4l2://{}", path.display()),
            Self::Test(test) => write!(
                f,
                "test:{}?width={}&height={}&fps={}",
                test.pattern, test.width, test.height, test.fps
            ),
        }
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
            source.gstreamer_uri().unwrap().contains("s3cr%40t!"),
            "GStreamer gets the real password"
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
    fn test_sources_take_size_and_rate() {
        let Source::Test(test) = Source::parse("test:ball?width=640&height=360&fps=5").unwrap()
        else {
            panic!("a test source")
        };
        assert_eq!(
            (test.pattern.as_str(), test.width, test.height, test.fps),
            ("ball", 640, 360, 5)
        );
        assert!(matches!(
            Source::parse("test:ball?fps=0"),
            Err(SourceError::InvalidTestSource(..))
        ));
        assert!(matches!(
            Source::parse("test:ball?depth=3"),
            Err(SourceError::InvalidTestSource(..))
        ));
        assert!(Source::parse("test:smpte").unwrap().is_live());
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
