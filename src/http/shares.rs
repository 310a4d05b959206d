//! Share links. The owner's side under `/api/v1` (make, list, revoke) and the public side at
//! `/s/<token>`: a small page with a player, the audio and the waveform, no account needed.
//!
//! A dead link (unknown, malformed, expired, revoked, or its recording in the trash or gone) is
//! 404 everywhere: a plain page at `/s/<token>`, the JSON error at its audio and waveform. The
//! page shows the recording's name, duration, player, waveform and (when allowed) a download
//! link, and nothing else of its owner.

use super::recordings::{RangeHeaders, serve_audio, serve_waveform};
use super::{JsonBody, QueryOnce, Reply, flag};
use crate::http::error::ApiError;
use crate::http::guards::AuthUser;
use crate::recordings as rec;
use crate::shares::{self, MAX_EXPIRY_DAYS, Shared};
use crate::state::AppState;
use rocket::http::{ContentType, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use rocket::{State, delete, get, head, post, routes};
use serde::Deserialize;
use std::io::Cursor;

/// The public page's policy: its own script, style and the link's audio, nothing inline,
/// nothing from elsewhere, never in a frame.
pub const SHARE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                             media-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
                             frame-ancestors 'none'";

fn default_download() -> bool {
    true
}

#[derive(Deserialize)]
struct NewLink {
    /// Days until the link dies; absent or null: never. A number, so that `7.0` (the same JSON
    /// integer to most encoders) is taken too; a fraction is refused below.
    #[serde(default)]
    expires_in_days: Option<f64>,
    #[serde(default = "default_download")]
    download: bool,
}

#[post("/recordings/<id>/shares", data = "<body>")]
async fn create(
    state: &State<AppState>,
    auth: AuthUser,
    id: &str,
    body: Result<JsonBody<NewLink>, ApiError>,
) -> Result<Reply, ApiError> {
    let id = rec::parse_id(id)?.hyphenated().to_string();
    let NewLink { expires_in_days, download } = body?.0;
    let expires_in_days = match expires_in_days {
        None => None,
        Some(days) if days.fract() == 0.0 && (1.0..=MAX_EXPIRY_DAYS as f64).contains(&days) => Some(days as i64),
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "`expires_in_days` is a whole number from 1 to {MAX_EXPIRY_DAYS}, or null for a link that does not expire"
            )));
        }
    };
    let now = state.clock.now_ms();
    let made = state
        .db
        .run(move |conn| shares::create(conn, &auth.user.id, &id, download, expires_in_days, now))
        .await?
        .ok_or_else(rec::not_found)?;
    Reply::json(Status::Created, &made)
}

#[get("/shares")]
async fn list(state: &State<AppState>, auth: AuthUser) -> Result<Reply, ApiError> {
    let now = state.clock.now_ms();
    let links = state.db.run(move |conn| shares::list(conn, &auth.user.id, now)).await?;
    Reply::json(Status::Ok, &serde_json::json!({ "shares": links }))
}

fn no_such_link() -> ApiError {
    ApiError::not_found("no share link with that id")
}

#[delete("/shares/<id>")]
async fn revoke(state: &State<AppState>, auth: AuthUser, id: &str) -> Result<Reply, ApiError> {
    let id = uuid::Uuid::parse_str(id).map_err(|_| no_such_link())?.hyphenated().to_string();
    let now = state.clock.now_ms();
    let revoked = state.db.run(move |conn| shares::revoke(conn, &auth.user.id, &id, now)).await?;
    if revoked { Ok(Reply::no_content()) } else { Err(no_such_link()) }
}

/// An HTML answer of the public side.
pub struct Page {
    status: Status,
    html: String,
}

impl<'r> Responder<'r, 'static> for Page {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        Response::build()
            .status(self.status)
            .header(ContentType::HTML)
            .raw_header("Content-Security-Policy", SHARE_CSP)
            // Every load is counted and a revoked link must die at once: nothing keeps a copy.
            .raw_header("Cache-Control", "no-store")
            .raw_header("X-Robots-Tag", "noindex, nofollow")
            .sized_body(self.html.len(), Cursor::new(self.html))
            .ok()
    }
}

/// Text for HTML content and quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `4:05`, or `1:02:03` from an hour on.
fn duration_text(ms: i64) -> String {
    let total = ms.max(0) / 1000;
    let (h, m, s) = (total / 3600, total % 3600 / 60, total % 60);
    if h > 0 { format!("{h}:{m:02}:{s:02}") } else { format!("{m}:{s:02}") }
}

/// The page's frame; `title` and `body` are HTML already.
fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"color-scheme\" content=\"light dark\">\n\
         <meta name=\"robots\" content=\"noindex, nofollow\">\n\
         <title>{title}</title>\n<link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\">\n\
         <link rel=\"stylesheet\" href=\"/share.css\">\n<script type=\"module\" src=\"/share.js\"></script>\n\
         </head>\n<body>\n{body}</body>\n</html>\n"
    )
}

/// The page of a live link. Every piece of user data in it goes through `escape_html`.
fn share_page(shared: &Shared, token: &str) -> String {
    let r = &shared.recording;
    let name = escape_html(&r.name);
    let base = escape_html(&shares::url(token));
    let waveform = if r.waveform == "ready" { format!(" data-waveform=\"{base}/waveform\"") } else { String::new() };
    let duration = match r.duration_ms {
        Some(ms) => {
            format!("<p class=\"share-meta\"><time class=\"share-duration\">{}</time></p>\n", duration_text(ms))
        }
        None => String::new(),
    };
    let download = if shared.download {
        format!(
            "<p class=\"share-actions\"><a class=\"share-download\" href=\"{base}/audio?download=1\" download>Download</a></p>\n"
        )
    } else {
        String::new()
    };
    let body = format!(
        "<main class=\"share\"{waveform}>\n<h1 class=\"share-name\">{name}</h1>\n{duration}\
         <canvas class=\"share-waveform\" aria-hidden=\"true\" hidden></canvas>\n\
         <audio class=\"share-audio\" controls preload=\"metadata\" src=\"{base}/audio\"></audio>\n{download}</main>\n"
    );
    document(&name, &body)
}

fn dead_link_page() -> Page {
    let body = "<main class=\"share share-dead\">\n<h1>Link not found</h1>\n\
                <p>This link does not exist, has expired or was turned off by the person who shared it.</p>\n</main>\n";
    Page { status: Status::NotFound, html: document("Link not found", body) }
}

fn error_page(error: &ApiError) -> Page {
    let body = "<main class=\"share share-dead\">\n<h1>Something went wrong</h1>\n\
                <p>The recording cannot be shown right now. Try again later.</p>\n</main>\n";
    Page { status: error.status, html: document("Something went wrong", body) }
}

/// The live link a token opens; counts a page load when asked.
async fn open(state: &AppState, token: &str, count: bool) -> Result<Option<Shared>, ApiError> {
    let (token, now) = (token.to_string(), state.clock.now_ms());
    state
        .db
        .run(move |conn| {
            let shared = shares::find(conn, &token, now)?;
            if count && let Some(s) = &shared {
                shares::count_open(conn, &s.share_id)?;
            }
            Ok(shared)
        })
        .await
        .map_err(ApiError::from)
}

fn dead_link() -> ApiError {
    ApiError::not_found("no such link, or it has expired or been turned off")
}

async fn answer_page(state: &AppState, token: &str, count: bool) -> Page {
    match open(state, token, count).await {
        Ok(Some(shared)) => Page { status: Status::Ok, html: share_page(&shared, token) },
        Ok(None) => dead_link_page(),
        Err(e) => error_page(&e),
    }
}

/// A page load: counted.
#[get("/s/<token>")]
async fn page(state: &State<AppState>, token: &str) -> Page {
    answer_page(state, token, true).await
}

/// The same answer without a body, not counted (link previews and monitors ask this way; the
/// framework would otherwise answer HEAD with the GET route, counting it).
#[head("/s/<token>")]
async fn page_head(state: &State<AppState>, token: &str) -> Page {
    answer_page(state, token, false).await
}

#[get("/s/<token>/audio?<download>")]
async fn audio(
    state: &State<AppState>,
    _once: QueryOnce,
    token: &str,
    download: Option<&str>,
    conditions: RangeHeaders,
) -> Result<super::recordings::Audio, ApiError> {
    let shared = open(state, token, false).await?.ok_or_else(dead_link)?;
    let download = flag(download);
    if download && !shared.download {
        return Err(ApiError::not_found("this link does not offer a download"));
    }
    serve_audio(state, &shared.recording, download, &conditions).await
}

#[get("/s/<token>/waveform")]
async fn waveform(state: &State<AppState>, token: &str, conditions: RangeHeaders) -> Result<Reply, ApiError> {
    let shared = open(state, token, false).await?.ok_or_else(dead_link)?;
    serve_waveform(state, &shared.recording, &conditions).await
}

/// The owner's routes, under `/api/v1`.
pub fn routes() -> Vec<rocket::Route> {
    routes![create, list, revoke]
}

/// The public routes, at the root.
pub fn public_routes() -> Vec<rocket::Route> {
    routes![page, page_head, audio, waveform]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped_in_text_and_attributes() {
        assert_eq!(
            escape_html("<script>alert(1)</script> & \"x\" 'y'.m4a"),
            "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot; &#39;y&#39;.m4a"
        );
    }

    #[test]
    fn durations_read_like_a_player() {
        assert_eq!(duration_text(4179), "0:04");
        assert_eq!(duration_text(65_000), "1:05");
        assert_eq!(duration_text(3_723_000), "1:02:03");
    }
}
