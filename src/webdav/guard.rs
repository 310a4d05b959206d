//! What a WebDAV request may do, decided before the WebDAV library sees it.
//!
//! - Bodies other than a PUT's are read whole within a size and time bound, and their XML depth
//!   is checked (see [`super::xml`]): the library's recursive parser overflows the stack on a
//!   body nested a few thousand deep.
//! - DELETE, MOVE and COPY get a [`Scope`]: the one file the request names, which is all it may
//!   remove. The library clears an existing destination *folder* before a MOVE or COPY onto it
//!   and walks a folder it is asked to DELETE; paths are read here with the library's own
//!   normaliser, so no spelling of `/` or `/Trash/` gets past.

use super::meta::{Spot, spot};
use crate::answer::Answer;
use crate::error::Error;
use crate::recordings::Folder;
use dav_server::davpath::DavPath;
use http::{HeaderValue, header};
use hyper::body::Incoming;
use std::time::Duration;

/// The body of every answer and of a bounded request: the library's, or ours.
pub(super) type AnyBody = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, std::io::Error>;

/// WebDAV bodies other than a PUT's are XML (PROPFIND, PROPPATCH, LOCK) or nothing: read whole,
/// at most this many bytes (the library's own limit too).
const MAX_XML_BODY: usize = 64 * 1024;
/// How deep an XML body may nest elements. Real clients send 3 to 5 levels; the library's
/// recursive parser overflows the stack at a few thousand.
const MAX_XML_DEPTH: usize = 64;
/// How long a request's XML body may take to arrive.
const XML_BODY_TIME: Duration = Duration::from_secs(30);

/// A non-PUT request's body, read whole within the size and time bounds and checked for depth
/// before any parser sees it.
pub(super) async fn bounded_body(body: Incoming) -> Result<AnyBody, Error> {
    use http_body_util::{BodyExt, Full, Limited};
    let read = tokio::time::timeout(XML_BODY_TIME, Limited::new(body, MAX_XML_BODY).collect()).await;
    let bytes = match read {
        Err(_) => return Err(Error::invalid("the request body did not arrive in time")),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Error::too_large(format!(
                "WebDAV request bodies other than a PUT's are at most {} KiB",
                MAX_XML_BODY / 1024
            )));
        }
        Ok(Err(_)) => return Err(Error::invalid("the request body broke off")),
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    if let Err(refusal) = super::xml::check(&bytes, MAX_XML_DEPTH) {
        return Err(Error::invalid(refusal.message(MAX_XML_DEPTH)));
    }
    Ok(Full::new(bytes).map_err(|never| match never {}).boxed_unsync())
}

/// What one request may remove: at most the one file it names, never a folder.
#[derive(Debug, Clone, Default)]
pub(super) struct Scope {
    /// DELETE: the file at its path. MOVE: the destination, which `Overwrite: T` replaces.
    pub(super) removable: Option<(Folder, String)>,
    /// A MOVE: an existing destination in the trash is kept beside the moved file, not purged.
    pub(super) moving: bool,
}

/// Where a request path points, normalised as the library normalises it (percent-decoding,
/// dot segments, repeated slashes).
fn target(path: &str) -> Spot {
    DavPath::new(path).map(|p| spot(&p)).unwrap_or(Spot::Nowhere)
}

/// Refuses, before the library is called, what could change more than one file: COPY (never
/// supported), DELETE or MOVE of a folder, MOVE onto a folder, and MOVE to another server.
pub(super) fn scope(parts: &http::request::Parts) -> Result<Scope, Answer> {
    let method = parts.method.as_str();
    // PATCH is the library's partial update of a file: recordings are never rewritten.
    if method == "PATCH" {
        return Err(Answer::new(
            405,
            "method_not_allowed",
            "recordings are never rewritten in part; PUT a new file instead",
        ));
    }
    // The folders are fixed: there is nothing to lock in them, and the library's lock table
    // panics when a lock on `/` is released.
    if method == "LOCK" && matches!(target(parts.uri.path()), Spot::Root | Spot::TrashFolder) {
        return Err(forbidden("the folders cannot be locked; lock a file instead"));
    }
    if method != "DELETE" && method != "MOVE" && method != "COPY" {
        return Ok(Scope::default());
    }
    // Another server first (502, as RFC 4918 has it for both), then what this one refuses.
    let destination = match parts.headers.get("Destination") {
        Some(value) if method != "DELETE" => Some(destination(value, &parts.headers)?),
        _ => None,
    };
    if method == "COPY" {
        return Err(forbidden("recordings cannot be copied on the server; download and upload instead"));
    }
    let source = match target(parts.uri.path()) {
        Spot::Root | Spot::TrashFolder => {
            return Err(forbidden("the folders themselves cannot be deleted or moved"));
        }
        // The library answers it (404, or 400 for a path it cannot read): nothing to remove.
        Spot::Nowhere => return Ok(Scope::default()),
        Spot::File(folder, name) => (folder, name),
    };
    if method == "DELETE" {
        return Ok(Scope { removable: Some(source), moving: false });
    }
    // No Destination: the library answers 400.
    let Some(destination) = destination else { return Ok(Scope { removable: None, moving: true }) };
    match destination {
        Spot::File(folder, name) => Ok(Scope { removable: Some((folder, name)), moving: true }),
        Spot::Root | Spot::TrashFolder => Err(forbidden("a recording cannot be moved onto a folder")),
        Spot::Nowhere => Ok(Scope { removable: None, moving: true }),
    }
}

/// Where a `Destination` header points on this server; 502 for another server (RFC 4918 9.9.4).
fn destination(value: &HeaderValue, headers: &http::HeaderMap) -> Result<Spot, Answer> {
    let text = value.to_str().map_err(|_| Answer::from(&Error::invalid("the Destination header is not a URL")))?;
    if text.starts_with('/') {
        return Ok(target(text));
    }
    let url =
        url::Url::parse(text).map_err(|_| Answer::from(&Error::invalid("the Destination header is not a URL")))?;
    if !matches!(url.scheme(), "http" | "https") || !same_authority(&url, headers) {
        return Err(Answer::new(
            502,
            "bad_gateway",
            "the destination is on another server; recordings move within this one only",
        ));
    }
    Ok(target(url.path()))
}

/// A refusal of this face's own rules, answered as the domain's `forbidden`.
fn forbidden(message: &'static str) -> Answer {
    Answer::from(&Error::forbidden(message))
}

/// Whether `url` names the host and port the request was sent to (its `Host` header).
fn same_authority(url: &url::Url, headers: &http::HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else { return false };
    let Ok(own) = url::Url::parse(&format!("{}://{}/", url.scheme(), host.trim())) else { return false };
    own.host_str().is_some()
        && own.host_str() == url.host_str()
        && own.port_or_known_default() == url.port_or_known_default()
}

#[cfg(test)]
mod tests {
    use super::super::meta::TRASH;
    use super::*;
    use http::Request;

    /// An independent reading of a request path: percent-decoding, dot segments, repeated
    /// slashes, then which of the two folders or their files it names.
    fn model(raw: &str) -> Spot {
        let raw = raw.split('?').next().unwrap_or("");
        if !raw.starts_with('/') || raw.contains('#') || raw.bytes().any(|b| !(32..=126).contains(&b)) {
            return Spot::Nowhere;
        }
        let mut parts: Vec<Vec<u8>> = Vec::new();
        for segment in raw.split('/') {
            let mut bytes = Vec::new();
            let b = segment.as_bytes();
            let mut i = 0;
            while i < b.len() {
                let hex = |c: u8| (c as char).to_digit(16);
                if b[i] == b'%'
                    && i + 2 < b.len()
                    && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
                {
                    bytes.push((h * 16 + l) as u8);
                    i += 3;
                } else {
                    bytes.push(b[i]);
                    i += 1;
                }
            }
            match &bytes[..] {
                b"" | b"." => {}
                b".." => {
                    if parts.pop().is_none() {
                        return Spot::Nowhere;
                    }
                }
                other => {
                    if other.contains(&0) || other.contains(&b'/') {
                        return Spot::Nowhere;
                    }
                    parts.push(other.to_vec());
                }
            }
        }
        let Ok(parts) = parts.into_iter().map(String::from_utf8).collect::<Result<Vec<_>, _>>() else {
            return Spot::Nowhere;
        };
        match parts.as_slice() {
            [] => Spot::Root,
            [folder] if folder == TRASH => Spot::TrashFolder,
            [name] => Spot::File(Folder::Live, name.clone()),
            [folder, name] if folder == TRASH => Spot::File(Folder::Trash, name.clone()),
            _ => Spot::Nowhere,
        }
    }

    fn parts(method: &str, path: &str, destination: Option<&str>) -> Option<http::request::Parts> {
        let mut req = Request::builder().method(method).uri(path).header(header::HOST, "127.0.0.1:8081");
        if let Some(d) = destination {
            req = req.header("Destination", d);
        }
        Some(req.body(()).ok()?.into_parts().0)
    }

    /// Property: however a path is spelled, the guard reads it as the model does (and as the
    /// library, whose normaliser it uses), so no spelling of `/` or `/Trash/` gets past it.
    #[test]
    fn every_spelling_of_a_folder_is_refused() {
        use rand::{Rng, SeedableRng};
        const PIECES: &[&str] = &[
            "",
            ".",
            "..",
            "Trash",
            "%54rash",
            "%54%72%61%73%68",
            "T%72ash",
            "trash",
            "a",
            "b.wav",
            "%2E",
            "%2e%2e",
            "%2E%2E",
            "x%2Fy",
            "%00",
            "%C3%A9.m4a",
            "%C3",
            "memo%20(2).wav",
            "Trash%2F",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_da7a);
        let mut folders = 0;
        for _ in 0..20_000 {
            let n = rng.gen_range(0..5);
            let mut path = String::new();
            for _ in 0..n {
                path.push_str(if rng.gen_bool(0.2) { "//" } else { "/" });
                path.push_str(PIECES[rng.gen_range(0..PIECES.len())]);
            }
            if path.is_empty() || rng.gen_bool(0.3) {
                path.push('/');
            }
            if rng.gen_bool(0.05) {
                path.push_str("?x=1");
            }
            let expected = model(&path);
            assert_eq!(target(&path), expected, "{path}");
            // An absolute Destination is read as a URL first (dot segments the URL way), as the
            // library reads it, then normalised.
            let absolute = format!("http://127.0.0.1:8081{path}");
            if let Ok(url) = url::Url::parse(&absolute)
                && matches!(model(url.path()), Spot::Root | Spot::TrashFolder)
                && let Some(moved) = parts("MOVE", "/a.wav", Some(&absolute))
            {
                assert!(scope(&moved).is_err(), "MOVE onto {absolute} must be refused");
            }
            let Some(delete) = parts("DELETE", &path, None) else { continue };
            let scoped = scope(&delete);
            if matches!(expected, Spot::Root | Spot::TrashFolder) {
                folders += 1;
                assert!(scoped.is_err(), "DELETE {path} must be refused");
                let moved = parts("MOVE", "/a.wav", Some(&path)).map(|p| scope(&p));
                assert!(moved.is_none_or(|m| m.is_err()), "MOVE onto {path} must be refused");
            } else if let Ok(scope) = scoped {
                let named = match expected {
                    Spot::File(folder, name) => Some((folder, name)),
                    _ => None,
                };
                assert_eq!(scope.removable, named, "DELETE {path} may remove only what it names");
            }
        }
        assert!(folders > 1_000, "the generator reaches the folders often enough: {folders}");
    }

    #[test]
    fn moves_to_another_server_are_refused_and_copies_always() {
        let other = parts("MOVE", "/a.wav", Some("http://elsewhere.example/b.wav")).expect("parts");
        assert_eq!(scope(&other).map_err(|e| e.status).err(), Some(502));
        let port = parts("MOVE", "/a.wav", Some("http://127.0.0.1:9999/b.wav")).expect("parts");
        assert_eq!(scope(&port).map_err(|e| e.status).err(), Some(502));
        let own = parts("MOVE", "/a.wav", Some("http://127.0.0.1:8081/b%20c.wav")).expect("parts");
        let allowed = scope(&own).map(|s| s.removable);
        assert_eq!(allowed.ok().flatten(), Some((Folder::Live, "b c.wav".to_string())));
        let copy = parts("COPY", "/a.wav", Some("/b.wav")).expect("parts");
        assert_eq!(scope(&copy).map_err(|e| e.status).err(), Some(403));
    }
}
