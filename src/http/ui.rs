//! The browser UI: the files under `static/`, embedded in the binary at build time.
//!
//! Every asset is answered with its SHA-256 as the ETag and `Cache-Control: no-cache`, so a
//! reload revalidates and costs 304s. The page gets a strict Content-Security-Policy: scripts,
//! styles and media from this origin only (plus `blob:` media for recordings made in the
//! browser), nothing inline, no framing.

use crate::http::error::ApiError;
use rocket::http::{ContentType, Header, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::{self, Responder, Response};
use rocket::{get, routes};
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::io::Cursor;
use std::path::PathBuf;

#[derive(RustEmbed)]
#[folder = "static/"]
struct Assets;

/// The page's policy: the UI is plain files from this origin and the JSON API.
pub const UI_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                          media-src 'self' blob:; connect-src 'self'; manifest-src 'self'; base-uri 'none'; \
                          form-action 'self'; frame-ancestors 'none'";

/// The service worker's policy: it may fetch from this origin and nothing else.
const WORKER_CSP: &str = "default-src 'none'; connect-src 'self'";

/// Paths that are views of the UI: they serve the index.
const CLIENT_ROUTES: [&str; 3] = ["recordings", "trash", "account"];

/// The `If-None-Match` header, if any.
pub struct IfNoneMatch(Option<String>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for IfNoneMatch {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(IfNoneMatch(req.headers().get_one("If-None-Match").map(str::to_string)))
    }
}

/// One embedded file, or a 304 for it.
pub struct Asset {
    body: Option<Cow<'static, [u8]>>,
    content_type: ContentType,
    etag: String,
    html: bool,
    /// The service worker: its own policy (it fetches the shell from this origin).
    worker: bool,
}

impl<'r> Responder<'r, 'static> for Asset {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let mut response = Response::build();
        response.header(self.content_type);
        response.header(Header::new("ETag", self.etag));
        response.header(Header::new("Cache-Control", "no-cache"));
        if self.html {
            response.header(Header::new("Content-Security-Policy", UI_CSP));
        }
        if self.worker {
            response.header(Header::new("Content-Security-Policy", WORKER_CSP));
        }
        match self.body {
            Some(body) => {
                response.sized_body(body.len(), Cursor::new(body));
            }
            None => {
                response.status(Status::NotModified);
            }
        }
        Ok(response.finalize())
    }
}

/// The files the service worker keeps for offline use: the page and everything it loads (not
/// the share page's files, nor the worker itself).
fn shell() -> Vec<String> {
    let mut paths: Vec<String> = Assets::iter()
        .filter(|p| !p.starts_with("share.") && *p != SERVICE_WORKER && *p != "index.html")
        .map(|p| format!("/{p}"))
        .collect();
    paths.push("/".into());
    paths.sort();
    paths
}

const SERVICE_WORKER: &str = "sw.js";

/// The service worker with its version (a hash of every file of the UI) and its shell filled
/// in: a new UI is a new worker.
fn service_worker() -> Option<Cow<'static, [u8]>> {
    let source = Assets::get(SERVICE_WORKER)?;
    let text = std::str::from_utf8(&source.data).ok()?;
    let mut version = Sha256::new();
    for path in Assets::iter() {
        if let Some(file) = Assets::get(&path) {
            version.update(path.as_bytes());
            version.update(file.metadata.sha256_hash());
        }
    }
    let version = crate::storage::hex(&version.finalize()[..8]);
    let shell = serde_json::to_string(&shell()).ok()?;
    let filled = text.replacen("const VERSION = 'dev';", &format!("const VERSION = '{version}';"), 1).replacen(
        "const SHELL = [];",
        &format!("const SHELL = {shell};"),
        1,
    );
    Some(Cow::Owned(filled.into_bytes()))
}

fn asset(path: &str, if_none_match: &IfNoneMatch) -> Option<Asset> {
    if path == SERVICE_WORKER {
        let body = service_worker()?;
        let etag = format!("\"{}\"", crate::storage::hex(&Sha256::digest(&body)));
        let fresh = if_none_match.0.as_deref().is_some_and(|h| super::etag_matches(h, &etag));
        let content_type = ContentType::new("text", "javascript").with_params(("charset", "utf-8"));
        return Some(Asset { body: (!fresh).then_some(body), content_type, etag, html: false, worker: true });
    }
    let file = Assets::get(path)?;
    let etag = format!("\"{}\"", crate::storage::hex(&file.metadata.sha256_hash()));
    let extension = path.rsplit_once('.').map_or("", |(_, ext)| ext);
    let content_type = match extension {
        "js" | "mjs" => ContentType::new("text", "javascript").with_params(("charset", "utf-8")),
        "webmanifest" => ContentType::new("application", "manifest+json"),
        other => ContentType::from_extension(other).unwrap_or(ContentType::Binary),
    };
    let fresh = if_none_match.0.as_deref().is_some_and(|h| super::etag_matches(h, &etag));
    Some(Asset { body: (!fresh).then_some(file.data), content_type, etag, html: extension == "html", worker: false })
}

/// `/`, the assets, and the index for the UI's views. API paths never get HTML.
#[get("/<path..>", rank = 20)]
fn ui(path: PathBuf, if_none_match: IfNoneMatch) -> Result<Asset, ApiError> {
    let not_found = || ApiError::not_found("no such page");
    let path = path.to_str().ok_or_else(not_found)?.to_string();
    if path == "api" || path.starts_with("api/") {
        return Err(ApiError::not_found("no such API route"));
    }
    if path.is_empty() {
        return asset("index.html", &if_none_match).ok_or_else(not_found);
    }
    if let Some(found) = asset(&path, &if_none_match) {
        return Ok(found);
    }
    // The UI's own views, typed or bookmarked without the `#`: the page shows the right one.
    if CLIENT_ROUTES.contains(&path.trim_end_matches('/')) {
        return asset("index.html", &if_none_match).ok_or_else(not_found);
    }
    Err(not_found())
}

pub fn routes() -> Vec<rocket::Route> {
    routes![ui]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_and_its_scripts_are_embedded() {
        assert!(Assets::get("index.html").is_some());
        assert!(Assets::iter().any(|p| p.ends_with(".js")));
        assert!(Assets::iter().any(|p| p.ends_with(".css")));
    }

    #[test]
    fn the_service_worker_names_its_version_and_every_file_of_the_shell() {
        let body = service_worker().expect("sw.js");
        let text = String::from_utf8(body.into_owned()).expect("UTF-8");
        assert!(!text.contains("const VERSION = 'dev';") && !text.contains("const SHELL = [];"), "filled in");
        for path in ["\"/\"", "\"/app.css\"", "\"/js/main.js\"", "\"/manifest.webmanifest\"", "\"/icons/icon-192.png\""]
        {
            assert!(text.contains(path), "{path} is in the shell");
        }
        assert!(!text.contains("\"/sw.js\"") && !text.contains("\"/share.js\""));
    }
}
