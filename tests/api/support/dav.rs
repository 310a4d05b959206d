//! WebDAV from the client's side: request bodies as real clients send them, and an account with
//! an app token for WebDAV.

use super::http::urlencode;
use super::server::Server;

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
