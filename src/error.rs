//! The domain's one error type: what went wrong, in words a person can be shown, with a stable
//! machine code, and nothing of HTTP. Each face maps it: `http::error` to a status and the JSON
//! shape, WebDAV to its own answers, the command line to an exit code. Internal causes are
//! logged where they happen and never carried to a client.

use std::borrow::Cow;
use std::fmt::Display;

/// A message for a person.
pub type Msg = Cow<'static, str>;

/// Why a domain operation did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The input breaks a rule; `code` names the rule (`bad_request`, `invalid_name`, …).
    #[error("{message}")]
    Invalid { code: &'static str, message: Msg },
    /// No credentials, or unknown or expired ones.
    #[error("sign in first: the token is missing, unknown or expired")]
    Unauthenticated,
    /// A username and password that do not match.
    #[error("wrong username or password")]
    BadCredentials,
    /// Known credentials that may not do this.
    #[error("{0}")]
    Forbidden(Msg),
    /// Nothing of that id that this user may see.
    #[error("{0}")]
    NotFound(Msg),
    /// The state the request expected is not the state there is (`code`: `conflict`,
    /// `username_taken`, …).
    #[error("{message}")]
    Conflict { code: &'static str, message: Msg },
    /// A resumable upload is at another offset than the request said: continue from `offset`.
    /// `complete` when the upload has all its bytes.
    #[error("Upload-Offset does not match the upload's offset, {offset}: continue from there")]
    OffsetMismatch { offset: u64, complete: bool },
    /// What the request refers to is no longer kept.
    #[error("{0}")]
    Gone(Msg),
    /// Past a size limit.
    #[error("{0}")]
    TooLarge(Msg),
    /// Bytes that are not a recording this server can read.
    #[error("{0}")]
    NotAudio(Msg),
    /// Too many attempts or too much at once; `retry_after` seconds, when known.
    #[error("{message}")]
    TooMany { message: Msg, retry_after: Option<u64> },
    /// A checksum the client sent does not match the bytes.
    #[error("Upload-Checksum does not match the request's bytes; they were dropped, send them again")]
    ChecksumMismatch,
    /// The disk (or the store) has no room.
    #[error("{0}")]
    InsufficientStorage(Msg),
    /// The database or storage cannot be used now.
    #[error("the server's storage is unavailable; try again later")]
    Unavailable,
    /// A bug or an I/O failure; its cause is in the log.
    #[error("internal error; the server log has the details")]
    Internal,
}

/// A domain result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A broken rule with the general code `bad_request`.
    pub fn invalid(message: impl Into<Msg>) -> Error {
        Error::Invalid { code: "bad_request", message: message.into() }
    }

    /// A broken rule with a code of its own.
    pub fn rule(code: &'static str, message: impl Into<Msg>) -> Error {
        Error::Invalid { code, message: message.into() }
    }

    pub fn not_found(message: impl Into<Msg>) -> Error {
        Error::NotFound(message.into())
    }

    pub fn forbidden(message: impl Into<Msg>) -> Error {
        Error::Forbidden(message.into())
    }

    pub fn too_large(message: impl Into<Msg>) -> Error {
        Error::TooLarge(message.into())
    }

    pub fn not_audio(message: impl Into<Msg>) -> Error {
        Error::NotAudio(message.into())
    }

    /// A bug or an I/O failure: logged with its context and cause.
    pub fn internal(context: &str, cause: impl Display) -> Error {
        log::error!("{context}: {cause}");
        Error::Internal
    }

    /// The database or storage cannot be used: logged with its context and cause.
    pub fn unavailable(context: &str, cause: impl Display) -> Error {
        log::error!("{context}: {cause}");
        Error::Unavailable
    }

    /// The stable machine code a client can act on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid { code, .. } | Error::Conflict { code, .. } => code,
            Error::Unauthenticated => "unauthorized",
            Error::BadCredentials => "invalid_credentials",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::OffsetMismatch { .. } => "conflict",
            Error::Gone(_) => "gone",
            Error::TooLarge(_) => "payload_too_large",
            Error::NotAudio(_) => "unsupported_media_type",
            Error::TooMany { .. } => "too_many_requests",
            Error::ChecksumMismatch => "checksum_mismatch",
            Error::InsufficientStorage(_) => "insufficient_storage",
            Error::Unavailable => "unavailable",
            Error::Internal => "internal",
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        match e {
            rusqlite::Error::SqliteFailure(ref f, _)
                if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) =>
            {
                Error::unavailable("database busy", e)
            }
            // A full disk is the server's state, not a bug: every write through the database
            // (a rename, a signup, a trash) answers as an upload on a full disk does.
            rusqlite::Error::SqliteFailure(ref f, _) if f.code == rusqlite::ErrorCode::DiskFull => {
                log::warn!("database write refused, the disk is full: {e}");
                Error::InsufficientStorage("the server's disk is full".into())
            }
            _ => Error::internal("database", e),
        }
    }
}
