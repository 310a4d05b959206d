//! Getting a phone onto HTTPS: the local CA's certificate (`/ca.crt`, `/ca.pem`,
//! `/ca.mobileconfig`, never its key) and the `/setup` page, served on both ports without an
//! account.

use crate::http::error::ApiError;
use crate::http::shares::escape_html;
use crate::state::AppState;
use base64::Engine;
use rocket::http::{ContentType, Header};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::{self, Responder, Response};
use rocket::{State, get, routes};
use sha2::{Digest, Sha256};
use std::io::Cursor;

/// The setup page's policy: its stylesheet, its inline QR code (SVG), nothing else.
const SETUP_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; \
                         form-action 'none'; frame-ancestors 'none'";

/// A file or page with its type and headers.
pub struct Download {
    body: Vec<u8>,
    content_type: ContentType,
    filename: Option<&'static str>,
    csp: Option<&'static str>,
}

impl<'r> Responder<'r, 'static> for Download {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let mut response = Response::build();
        response.header(self.content_type).header(Header::new("Cache-Control", "no-cache"));
        if let Some(name) = self.filename {
            response.header(Header::new("Content-Disposition", format!("attachment; filename=\"{name}\"")));
        }
        if let Some(csp) = self.csp {
            response.header(Header::new("Content-Security-Policy", csp));
        }
        response.sized_body(self.body.len(), Cursor::new(self.body));
        Ok(response.finalize())
    }
}

/// The local authority, or 404 when the mode is not `"auto"`.
fn authority(state: &AppState) -> Result<&crate::tls::Authority, ApiError> {
    state
        .tls
        .as_ref()
        .and_then(|t| t.authority())
        .ok_or_else(|| ApiError::not_found("this server has no local certificate authority (tls.mode is not \"auto\")"))
}

/// One of the CA's downloads: an attachment named `filename`.
fn attachment(body: Vec<u8>, content_type: ContentType, filename: &'static str) -> Download {
    Download { body, content_type, filename: Some(filename), csp: None }
}

#[get("/ca.crt")]
fn ca_crt(state: &State<AppState>) -> Result<Download, ApiError> {
    let der = authority(state)?.cert_der().to_vec();
    Ok(attachment(der, ContentType::new("application", "x-x509-ca-cert"), "recorder-ca.crt"))
}

#[get("/ca.pem")]
fn ca_pem(state: &State<AppState>) -> Result<Download, ApiError> {
    let pem = authority(state)?.cert_pem().as_bytes().to_vec();
    Ok(attachment(pem, ContentType::new("application", "x-pem-file"), "recorder-ca.pem"))
}

#[get("/ca.mobileconfig")]
fn ca_mobileconfig(state: &State<AppState>) -> Result<Download, ApiError> {
    let der = authority(state)?.cert_der();
    let host = state.tls.as_ref().map(|t| t.hostname()).unwrap_or_default();
    let profile = mobileconfig(der, &host).into_bytes();
    Ok(attachment(profile, ContentType::new("application", "x-apple-aspen-config"), "recorder-ca.mobileconfig"))
}

/// The host the page was asked for, without its port (to put the same host in the QR code).
pub struct RequestHost(pub Option<String>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for RequestHost {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(RequestHost(req.host().map(|h| h.domain().as_str().to_ascii_lowercase())))
    }
}

#[get("/setup")]
fn setup(state: &State<AppState>, host: RequestHost) -> Download {
    Download {
        body: setup_page(state, host.0.as_deref()).into_bytes(),
        content_type: ContentType::HTML,
        filename: None,
        csp: Some(SETUP_CSP),
    }
}

pub fn routes() -> Vec<rocket::Route> {
    routes![ca_crt, ca_pem, ca_mobileconfig, setup]
}

/// The HTTPS port actually served (0 in the config means one was picked at startup).
pub fn https_port(state: &AppState) -> Option<u16> {
    state.tls.as_ref().map(|t| t.port())
}

/// The address a phone should open: the host this page was asked for when the certificate
/// names it (an address or `.local` name on the LAN), else the first of the server's own.
pub fn secure_url(state: &AppState, host: Option<&str>) -> Option<String> {
    let port = https_port(state)?;
    let urls = super::https::urls(state, port);
    // A phone cannot use this machine's own loopback name or address.
    let loopback = |h: &str| {
        h == "localhost"
            || h.trim_matches(|c| c == '[' || c == ']').parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    };
    let host = host.filter(|h| !h.is_empty() && !loopback(h));
    if let Some(host) = host {
        let shown = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_string() };
        let url = format!("https://{shown}:{port}");
        let named = urls.contains(&url)
            || state.tls.as_ref().is_some_and(|t| t.names_host(host.trim_matches(|c| c == '[' || c == ']')));
        if named {
            return Some(url);
        }
    }
    urls.into_iter().next()
}

fn setup_page(state: &AppState, host: Option<&str>) -> String {
    let authority = state.tls.as_ref().and_then(|t| t.authority());
    let url = secure_url(state, host);
    let mut body = String::from("<main class=\"share setup\">\n<h1>Record from your phone</h1>\n");
    let Some(url) = url else {
        body.push_str(
            "<p>HTTPS is turned off on this server (<code>tls.mode = \"off\"</code>). Browsers let a page use \
             the microphone only over HTTPS or on <code>localhost</code>: turn it on in <code>recorder.toml</code> \
             (<code>[tls] mode = \"auto\"</code>) and restart the server.</p>\n</main>\n",
        );
        return document("Set up HTTPS", &body);
    };
    let shown = escape_html(&url);
    let qr = qrcode::QrCode::with_error_correction_level(url.as_bytes(), qrcode::EcLevel::M)
        .map(|code| code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).quiet_zone(true).build())
        .unwrap_or_default();
    body.push_str(&format!(
        "<p>The secure address of this server is <a class=\"setup-url\" data-test=\"setup-url\" href=\"{shown}/\">{shown}</a>. \
         Scan it with the phone's camera:</p>\n<figure class=\"setup-qr\" data-test=\"setup-qr\">{qr}</figure>\n"
    ));
    let Some(authority) = authority else {
        body.push_str("<p>Its certificate is the one configured for it (<code>tls.mode = \"files\"</code>): no further step is needed.</p>\n</main>\n");
        return document("Set up HTTPS", &body);
    };
    let fingerprint = escape_html(&authority.fingerprint());
    body.push_str(&format!(
        "<p>First, your device must trust this server's own certificate authority, once. It can vouch only for \
         addresses on your home network and <code>.local</code> names, nothing on the internet. Check that its \
         fingerprint is the one the server printed when it started:</p>\n\
         <p class=\"setup-fingerprint\"><code data-test=\"ca-fingerprint\">SHA-256 {fingerprint}</code></p>\n\
         <h2>Android</h2>\n<ol>\n<li>Download <a href=\"/ca.crt\">the certificate</a>.</li>\n\
         <li>Settings → Security → More security settings → Encryption &amp; credentials → Install a certificate → \
         CA certificate, and pick <i>recorder-ca.crt</i>.</li>\n<li>Open {shown} in Chrome, then ⋮ → Install app.</li>\n</ol>\n\
         <h2>iPhone and iPad</h2>\n<ol>\n<li>Open <a href=\"/ca.mobileconfig\">the profile</a> in Safari and allow the download.</li>\n\
         <li>Settings → Profile Downloaded → Install.</li>\n\
         <li>Settings → General → About → Certificate Trust Settings: turn on <i>recorder local CA</i>.</li>\n\
         <li>Open {shown} in Safari, then Share → Add to Home Screen.</li>\n</ol>\n\
         <h2>macOS</h2>\n<ol>\n<li>Download <a href=\"/ca.crt\">the certificate</a> and open it: Keychain Access adds it.</li>\n\
         <li>Double-click <i>recorder local CA</i> in the System keychain → Trust → Always Trust.</li>\n</ol>\n\
         <h2>Windows</h2>\n<ol>\n<li>Download <a href=\"/ca.crt\">the certificate</a> and open it → Install Certificate.</li>\n\
         <li>Choose “Place all certificates in the following store” → Trusted Root Certification Authorities.</li>\n</ol>\n\
         <h2>Linux</h2>\n<ol>\n<li>Download <a href=\"/ca.pem\">the certificate (PEM)</a>.</li>\n\
         <li>Debian and Ubuntu: copy it to <code>/usr/local/share/ca-certificates/recorder-ca.crt</code> and run \
         <code>sudo update-ca-certificates</code>. Chrome and Firefox: Settings → Certificates → Authorities → Import.</li>\n</ol>\n</main>\n"
    ));
    document("Set up HTTPS", &body)
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"color-scheme\" content=\"light dark\">\n<title>{title} · Recorder</title>\n\
         <link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\">\n<link rel=\"stylesheet\" href=\"/share.css\">\n\
         </head>\n<body>\n{body}</body>\n</html>\n"
    )
}

/// A UUID-shaped identifier derived from the certificate, so a profile downloaded again
/// replaces the installed one instead of adding a second.
fn stable_uuid(der: &[u8], salt: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(salt.as_bytes());
    hash.update(der);
    let h = hash.finalize();
    let hex: String = h.iter().take(16).map(|b| format!("{b:02X}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// An iOS configuration profile holding the authority as a trusted root.
fn mobileconfig(der: &[u8], hostname: &str) -> String {
    let data = base64::engine::general_purpose::STANDARD.encode(der);
    let name = escape_html(&format!(
        "recorder local CA ({})",
        if hostname.trim().is_empty() { "this server" } else { hostname.trim() }
    ));
    let (inner, outer) = (stable_uuid(der, "certificate"), stable_uuid(der, "profile"));
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <plist version=\"1.0\">\n<dict>\n\
         <key>PayloadContent</key>\n<array>\n<dict>\n\
         <key>PayloadCertificateFileName</key><string>recorder-ca.crt</string>\n\
         <key>PayloadContent</key><data>{data}</data>\n\
         <key>PayloadDescription</key><string>Lets this device reach the recorder server over HTTPS on the home network.</string>\n\
         <key>PayloadDisplayName</key><string>{name}</string>\n\
         <key>PayloadIdentifier</key><string>local.recorder.ca.{inner}</string>\n\
         <key>PayloadType</key><string>com.apple.security.root</string>\n\
         <key>PayloadUUID</key><string>{inner}</string>\n\
         <key>PayloadVersion</key><integer>1</integer>\n\
         </dict>\n</array>\n\
         <key>PayloadDisplayName</key><string>{name}</string>\n\
         <key>PayloadIdentifier</key><string>local.recorder.{outer}</string>\n\
         <key>PayloadRemovalDisallowed</key><false/>\n\
         <key>PayloadType</key><string>Configuration</string>\n\
         <key>PayloadUUID</key><string>{outer}</string>\n\
         <key>PayloadVersion</key><integer>1</integer>\n\
         </dict>\n</plist>\n"
    )
}

/// What `/api/v1/server` says of HTTPS: `null` when off.
pub fn server_info(state: &AppState, host: Option<&str>) -> serde_json::Value {
    let Some(port) = https_port(state) else { return serde_json::Value::Null };
    serde_json::json!({
        "port": port,
        "url": secure_url(state, host),
        "ca_fingerprint": state.tls.as_ref().and_then(|t| t.authority()).map(|a| a.fingerprint()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_identifiers_are_stable_and_distinct() {
        let a = mobileconfig(b"one", "pi");
        assert_eq!(a, mobileconfig(b"one", "pi"));
        assert_ne!(stable_uuid(b"one", "certificate"), stable_uuid(b"one", "profile"));
        assert!(a.contains("com.apple.security.root"));
        assert!(mobileconfig(b"x", "<host>").contains("&lt;host&gt;"));
    }
}
