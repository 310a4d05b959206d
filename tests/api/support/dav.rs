//! WebDAV from the client's side: request bodies as real clients send them, an account with an
//! app token for WebDAV, and a reader of the multistatus answers.

use super::http::urlencode;
use super::server::Server;
use std::collections::HashMap;

/// The WebDAV path of a shown name in the user's folder: `/` and the name, percent-encoded.
pub fn dav_path(name: &str) -> String {
    format!("/{}", urlencode(name))
}

/// What a PROPFIND for every property sends.
pub const ALLPROP: &str =
    r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"#;

/// What rclone sends to list (its `--webdav-vendor other` body), with another prefix.
pub const NAMED_PROPS: &str = r#"<?xml version="1.0"?>
<d:propfind xmlns:d="DAV:">
 <d:prop>
  <d:displayname/>
  <d:getlastmodified/>
  <d:getcontentlength/>
  <d:resourcetype/>
 </d:prop>
</d:propfind>
"#;

/// A LOCK for an exclusive write lock.
pub const LOCKINFO: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>the tests</D:href></D:owner></D:lockinfo>"#;

/// An account with its browser session and an app token for WebDAV.
pub struct DavUser {
    pub name: String,
    pub session: String,
    pub app: String,
}

impl DavUser {
    pub fn new(s: &Server, name: &str) -> DavUser {
        let session = s.signup(name);
        let app = s.app_token(&session, "webdav");
        DavUser { name: name.to_string(), session, app }
    }

    /// A WebDAV request with this user's name and app token.
    pub fn dav(&self, s: &Server, method: &str, path: &str) -> ureq::Request {
        s.dav(method, path, &self.name, &self.app)
    }
}

// A minimal reader of multistatus XML: elements by local name, whatever the namespace prefix.

/// The contents of each element named `local` (any prefix), in document order; "" for an empty
/// element. Elements of one name are not nested in what a multistatus holds.
pub fn elements<'a>(xml: &'a str, local: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(open) = xml[at..].find('<') {
        let start = at + open;
        at = start + 1;
        let rest = &xml[start + 1..];
        let name_len = rest.find(|c: char| c.is_whitespace() || c == '>' || c == '/').unwrap_or(rest.len());
        let name = &rest[..name_len];
        if name.is_empty() || name.starts_with(['?', '!']) || name.rsplit(':').next() != Some(local) {
            continue;
        }
        let Some(tag_len) = rest.find('>') else { break };
        let content = start + 1 + tag_len + 1;
        if rest[..tag_len].ends_with('/') {
            out.push("");
            at = content;
            continue;
        }
        // The closing tag of this name, not of a longer one (`</D:prop` is not `</D:propstat>`).
        let closing = format!("</{name}");
        let mut from = content;
        let end = loop {
            let Some(found) = xml[from..].find(&closing) else { break None };
            let after = from + found + closing.len();
            if xml[after..].starts_with(|c: char| c == '>' || c.is_whitespace()) {
                break Some((from + found, after));
            }
            from = after;
        };
        match end {
            Some((stop, after)) => {
                out.push(&xml[content..stop]);
                at = after;
            }
            None => break,
        }
    }
    out
}

pub fn first<'a>(xml: &'a str, local: &str) -> Option<&'a str> {
    elements(xml, local).into_iter().next()
}

/// XML character references and the five predefined entities.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let Some(semi) = after.find(';') else {
            out.push_str(after);
            return out;
        };
        let entity = &after[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push_str(&after[..=semi]),
        }
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = text.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|e| panic!("an href is not UTF-8 once decoded: {text}: {e}"))
}

/// One `<response>` of a multistatus.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The href's path, percent-decoded ("/", "/memo.wav", "/Trash/", "/Trash/old.wav").
    pub path: String,
    /// The last segment of the path ("" for the root).
    pub name: String,
    pub collection: bool,
    /// The properties found (status 200), by local name, unescaped.
    pub props: HashMap<String, String>,
}

impl Entry {
    pub fn prop(&self, name: &str) -> &str {
        self.props.get(name).map_or_else(|| panic!("{} has no {name}: {:?}", self.path, self.props), String::as_str)
    }
}

pub fn multistatus(xml: &str) -> Vec<Entry> {
    let props = [
        "getcontentlength",
        "getlastmodified",
        "creationdate",
        "getetag",
        "getcontenttype",
        "displayname",
        "resourcetype",
    ];
    elements(xml, "response")
        .into_iter()
        .map(|response| {
            let href =
                unescape(first(response, "href").unwrap_or_else(|| panic!("a response without href: {response}")));
            // An absolute URL or an absolute path.
            let raw_path = match href.split_once("://") {
                Some((_, rest)) => rest.find('/').map_or("/", |slash| &rest[slash..]).to_string(),
                None => href.clone(),
            };
            let path = percent_decode(&raw_path);
            let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or("").to_string();
            let mut found = HashMap::new();
            let mut collection = false;
            for propstat in elements(response, "propstat") {
                let ok = first(propstat, "status").is_none_or(|status| status.contains(" 200"));
                if !ok {
                    continue;
                }
                for prop in elements(propstat, "prop") {
                    for key in props {
                        if let Some(value) = first(prop, key) {
                            if key == "resourcetype" {
                                collection |= !elements(value, "collection").is_empty();
                            }
                            found.insert(key.to_string(), unescape(value.trim()));
                        }
                    }
                }
            }
            Entry { path, name, collection, props: found }
        })
        .collect()
}
