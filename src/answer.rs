//! How the faces that speak HTTP (the API and WebDAV) answer a domain error: one status, one
//! JSON body `{"error": {"code", "message"}}` and the headers a client acts on. Plain numbers
//! and strings, so each face builds its own response from the same mapping.

use crate::error::Error;

/// An error as answered over HTTP.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Answer {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Answer {
        Answer { status, code, message: message.into(), headers: Vec::new() }
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::json!({"error": {"code": self.code, "message": self.message}}).to_string()
    }
}

impl From<&Error> for Answer {
    fn from(e: &Error) -> Answer {
        let mut answer = Answer::new(status_of(e), e.code(), e.to_string());
        match *e {
            Error::Unauthenticated => answer.headers.push(("WWW-Authenticate", "Bearer".into())),
            Error::OffsetMismatch { offset, complete } => {
                answer.headers.push(("Upload-Offset", offset.to_string()));
                if complete {
                    answer.headers.push(("Upload-Complete", "?1".into()));
                }
            }
            Error::TooMany { retry_after: Some(seconds), .. } => {
                answer.headers.push(("Retry-After", seconds.to_string()))
            }
            _ => {}
        }
        answer
    }
}

/// The status a domain error is answered with.
fn status_of(e: &Error) -> u16 {
    match e {
        Error::Invalid { .. } => 400,
        Error::Unauthenticated | Error::BadCredentials => 401,
        Error::Forbidden(_) => 403,
        Error::NotFound(_) => 404,
        Error::Conflict { .. } | Error::OffsetMismatch { .. } => 409,
        Error::Gone(_) => 410,
        Error::TooLarge(_) => 413,
        Error::NotAudio(_) => 415,
        Error::TooMany { .. } => 429,
        // tus' checksum extension: the request's bytes did not match their checksum.
        Error::ChecksumMismatch => 460,
        Error::Unavailable => 503,
        Error::InsufficientStorage(_) => 507,
        Error::Internal => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_error_keeps_its_code_and_gets_its_headers() {
        let answer = Answer::from(&Error::OffsetMismatch { offset: 42, complete: true });
        assert_eq!((answer.status, answer.code), (409, "conflict"));
        assert_eq!(answer.headers, vec![("Upload-Offset", "42".to_string()), ("Upload-Complete", "?1".to_string())]);
        let answer = Answer::from(&Error::TooMany { message: "slow down".into(), retry_after: Some(7) });
        assert_eq!((answer.status, answer.message.as_str()), (429, "slow down"));
        assert_eq!(answer.headers, vec![("Retry-After", "7".to_string())]);
        assert_eq!(Answer::from(&Error::ChecksumMismatch).status, 460);
    }
}
