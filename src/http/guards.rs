//! Who is asking: the session cookie, the signed-in user of a request (a Bearer token or the
//! cookie, with the same-origin rule for cookie-authenticated changes), and how a guard that
//! refuses keeps its exact error for the catcher.

use crate::auth::{COOKIE, plausible_token, token_hash};
use crate::error::Error;
use crate::http::error::{ApiError, GuardError};
use crate::state::AppState;
use crate::users::{self, User};
use rocket::http::{Cookie, CookieJar, Method, SameSite};
use rocket::request::{FromRequest, Outcome, Request};

/// Sets the session cookie on a response.
pub fn set_session_cookie(req_secure: bool, jar: &CookieJar<'_>, token: &str, session_days: u32) {
    let cookie = Cookie::build((COOKIE, token.to_string()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .secure(req_secure)
        .max_age(time::Duration::days(i64::from(session_days)));
    jar.add(cookie);
}

/// Removes the session cookie.
pub fn clear_session_cookie(req_secure: bool, jar: &CookieJar<'_>) {
    let cookie = Cookie::build(COOKIE).http_only(true).same_site(SameSite::Strict).path("/").secure(req_secure);
    jar.remove(cookie);
}

/// Whether cookies set for this request must be `Secure`.
pub fn wants_secure_cookie(req: &Request<'_>, state: &AppState) -> bool {
    state.config.server.secure_cookies
        || req.rocket().config().tls_enabled()
        || req.headers().get_one("X-Forwarded-Proto").is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// A signed-in user, from a Bearer token or the session cookie.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user: User,
    /// Hash of the token this request used (logout revokes it; a password change keeps it).
    pub token_hash: Vec<u8>,
    /// The id of the credential (session or app token) this request used.
    pub token_id: String,
}

/// Where a request's token came from.
enum Credential {
    Bearer(String),
    Cookie(String),
}

fn credential(req: &Request<'_>) -> Option<Credential> {
    if let Some(value) = req.headers().get_one("Authorization") {
        let mut parts = value.split_whitespace();
        let scheme = parts.next().unwrap_or("");
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(Credential::Bearer(parts.next().unwrap_or("").to_string()));
        }
    }
    req.cookies().get(COOKIE).map(|c| Credential::Cookie(c.value().to_string()))
}

/// A cookie-authenticated state change must come from this server's own pages: the `Origin`
/// must be this server's origin, scheme included. The forwarded headers say where the browser
/// was only when a proxy is configured (`server.client_ip_header`); otherwise anyone could send
/// them.
fn same_origin(req: &Request<'_>, state: &AppState) -> bool {
    if req.headers().get_one("Sec-Fetch-Site").is_some_and(|s| s.eq_ignore_ascii_case("cross-site")) {
        return false;
    }
    let Some(origin) = req.headers().get_one("Origin") else {
        // No Origin (an older browser, or not a browser): SameSite=Strict keeps the cookie
        // off cross-site requests.
        return true;
    };
    let Some((scheme, authority)) = origin.trim().split_once("://") else {
        return false; // "null" and other opaque origins
    };
    let proxied = state.config.server.client_ip_header.is_some();
    let forwarded = |name: &str| if proxied { req.headers().get_one(name) } else { None };
    let own_scheme = match forwarded("X-Forwarded-Proto") {
        Some(proto) => proto.trim(),
        // This listener's own scheme: the HTTPS one, or a proxy terminating TLS for it.
        None if state.config.server.secure_cookies || req.rocket().config().tls_enabled() => "https",
        None => "http",
    };
    // HTTP/2 (over TLS) names the host in `:authority`, which Rocket gives as the request's host.
    let own_host = match forwarded("X-Forwarded-Host") {
        Some(host) => host.trim().to_string(),
        None => match req.host() {
            Some(host) => host.to_string(),
            None => return false,
        },
    };
    scheme.eq_ignore_ascii_case(own_scheme) && own_host.eq_ignore_ascii_case(authority.trim_end_matches('/'))
}

pub fn guard_fail<T>(req: &Request<'_>, error: impl Into<ApiError>) -> Outcome<T, ApiError> {
    let error = error.into();
    let status = error.status;
    req.local_cache(|| GuardError(Some(error.clone())));
    Outcome::Error((status, error))
}

/// The live session a token belongs to, if any (and notes the user for the request log).
pub async fn session(req: &Request<'_>, state: &AppState, token: &str) -> Result<Option<AuthUser>, Error> {
    if !plausible_token(token) {
        return Ok(None);
    }
    let hash = token_hash(token);
    let now = state.clock.now_ms();
    let lookup = hash.clone();
    let user = state.db.run(move |conn| users::session_user(conn, &lookup, now)).await?;
    Ok(user.map(|(user, token_id)| {
        req.local_cache(|| crate::http::RequestUser(Some(user.id.clone())));
        AuthUser { user, token_hash: hash, token_id }
    }))
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AuthUser {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ApiError> {
        let Some(state) = req.rocket().state::<AppState>() else {
            return guard_fail(req, Error::internal("state", "application state missing"));
        };
        let (token, via_cookie) = match credential(req) {
            Some(Credential::Bearer(t)) => (t, false),
            Some(Credential::Cookie(t)) => (t, true),
            None => return guard_fail(req, Error::Unauthenticated),
        };
        let state_changing = matches!(req.method(), Method::Post | Method::Put | Method::Patch | Method::Delete);
        if via_cookie && state_changing && !same_origin(req, state) {
            return guard_fail(
                req,
                Error::forbidden("cookie-authenticated changes must come from this server's own pages"),
            );
        }
        match session(req, state, &token).await {
            Ok(Some(auth)) => Outcome::Success(auth),
            Ok(None) => guard_fail(req, Error::Unauthenticated),
            Err(e) => guard_fail(req, e),
        }
    }
}
