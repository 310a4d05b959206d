//! The one error type at the HTTP edge: a status, a stable machine code and a human message,
//! always answered as `{"error": {"code", "message"}}`. Internal causes go to the log, never to
//! the client. The JSON catchers give Rocket's own failures the same shape.

use crate::answer::Answer;
use crate::error::Error;
use rocket::http::{ContentType, Header, Method, Status};
use rocket::response::{self, Responder, Response};
use rocket::{Request, catch};
use std::borrow::Cow;
use std::fmt::Display;
use std::io::Cursor;

/// An error answered to the client: its status, and the answer (code, message, headers) that
/// `answer.rs` builds for domain errors too.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: Status,
    answer: Answer,
}

impl ApiError {
    pub fn new(status: Status, code: &'static str, message: impl Into<Cow<'static, str>>) -> ApiError {
        ApiError { status, answer: Answer::new(status.code, code, message.into()) }
    }

    /// Adds a response header (Retry-After, Content-Range, …).
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> ApiError {
        self.answer.headers.push((name, value.into()));
        self
    }

    /// The message a person reads.
    pub fn message(&self) -> &str {
        &self.answer.message
    }

    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> ApiError {
        Error::invalid(message).into()
    }

    pub fn not_found(message: impl Into<Cow<'static, str>>) -> ApiError {
        Error::not_found(message).into()
    }

    pub fn unauthorized() -> ApiError {
        Error::Unauthenticated.into()
    }

    pub fn invalid_credentials() -> ApiError {
        Error::BadCredentials.into()
    }

    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> ApiError {
        Error::forbidden(message).into()
    }

    /// A bug or an I/O failure: logged with its cause, answered as a bare 500.
    pub fn internal(context: &str, cause: impl Display) -> ApiError {
        Error::internal(context, cause).into()
    }

    pub fn payload_too_large(message: impl Into<Cow<'static, str>>) -> ApiError {
        Error::too_large(message).into()
    }

    /// A request body of a type the route does not take.
    pub fn unsupported_media_type(message: impl Into<Cow<'static, str>>) -> ApiError {
        ApiError::new(Status::UnsupportedMediaType, "unsupported_media_type", message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let answer = Answer::from(&e);
        ApiError { status: Status::new(answer.status), answer }
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> ApiError {
        Error::from(e).into()
    }
}

impl<'r> Responder<'r, 'static> for ApiError {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let body = self.answer.body();
        let mut response = Response::build();
        response
            .status(self.status)
            .header(ContentType::JSON)
            .raw_header("Cache-Control", "no-store")
            .sized_body(body.len(), Cursor::new(body));
        for (name, value) in self.answer.headers {
            response.header(Header::new(name, value));
        }
        Ok(response.finalize())
    }
}

/// The exact error a request guard failed with, kept for the catcher (Rocket passes on only the
/// status).
#[derive(Default)]
pub struct GuardError(pub Option<ApiError>);

/// The code and message for a status Rocket produced by itself.
fn for_status(status: Status) -> ApiError {
    match status.code {
        400 | 422 => ApiError::bad_request("the request is malformed"),
        401 => ApiError::unauthorized(),
        403 => ApiError::forbidden("this request is not allowed from another site"),
        404 => ApiError::not_found("no such resource"),
        405 => ApiError::new(status, "method_not_allowed", "this path does not take that method"),
        413 => ApiError::payload_too_large("the request body is too large"),
        415 => ApiError::unsupported_media_type("unsupported content type"),
        503 => ApiError::new(status, "unavailable", "the server's storage is unavailable; try again later"),
        code if code >= 500 => ApiError::new(Status::InternalServerError, "internal", "internal error"),
        _ => ApiError::new(status, "error", status.reason_lossy().to_string()),
    }
}

/// Every error Rocket raises itself (no route, a guard refusing, a bad body) as JSON. A path
/// that some route serves with another method answers 405 with `Allow`.
#[catch(default)]
pub fn json_catcher(status: Status, req: &Request<'_>) -> ApiError {
    if let Some(error) = &req.local_cache(|| GuardError(None)).0
        && error.status == status
    {
        return error.clone();
    }
    if status == Status::NotFound {
        let allowed = methods_for_path(req);
        if !allowed.is_empty() && !allowed.contains(&req.method()) {
            let allow = allowed.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
            return for_status(Status::MethodNotAllowed).with_header("Allow", allow);
        }
    }
    for_status(status)
}

/// The methods of the mounted routes whose path pattern matches the request's path most
/// literally: `/recordings/archive` is that path's own, not one of `/recordings/<id>`'s.
fn methods_for_path(req: &Request<'_>) -> Vec<Method> {
    let path: Vec<&str> = req.uri().path().segments().collect();
    let matching: Vec<_> = req
        .rocket()
        .routes()
        // Catch-all routes (the web UI's client-side paths) say nothing about which methods a path takes.
        .filter(|route| !route.uri.path().contains("..>") && pattern_matches(route.uri.path(), &path))
        .map(|route| (literal_segments(route.uri.path()), route.method))
        .collect();
    let most = matching.iter().map(|(literal, _)| *literal).max().unwrap_or(0);
    let mut methods: Vec<Method> =
        matching.into_iter().filter(|(literal, _)| *literal == most).map(|(_, method)| method).collect();
    if methods.contains(&Method::Get) {
        methods.push(Method::Head);
    }
    methods.sort_by_key(|m| m.as_str());
    methods.dedup();
    methods
}

/// How many segments of a route's path pattern are literal (not `<param>`).
fn literal_segments(pattern: &str) -> usize {
    pattern.split('/').filter(|s| !s.is_empty()).filter(|s| !(s.starts_with('<') && s.ends_with('>'))).count()
}

fn pattern_matches(pattern: &str, path: &[&str]) -> bool {
    let pattern: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    for (i, segment) in pattern.iter().enumerate() {
        match path.get(i) {
            None => return false,
            Some(actual) => {
                if !(segment.starts_with('<') && segment.ends_with('>')) && segment != actual {
                    return false;
                }
            }
        }
    }
    pattern.len() == path.len()
}

#[cfg(test)]
mod tests {
    use super::{literal_segments, pattern_matches};

    #[test]
    fn route_patterns_match_paths() {
        assert_eq!(literal_segments("/api/v1/recordings/archive"), 4);
        assert_eq!(literal_segments("/api/v1/recordings/<id>"), 3);
        assert!(pattern_matches("/api/v1/recordings/<id>", &["api", "v1", "recordings", "x"]));
        assert!(!pattern_matches("/api/v1/recordings/<id>", &["api", "v1", "recordings"]));
        assert!(!pattern_matches("/api/v1/me", &["api", "v1", "you"]));
    }
}
