//! How the UI's files are served: types, caching, the page's security headers, and the line
//! between pages and the API.

use crate::support::{Server, send};

#[test]
fn the_page_is_served_with_a_strict_policy_and_revalidates_with_304() {
    let server = Server::start();
    let page = send(server.req("GET", "/"), None);
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = page.header("content-security-policy").expect("CSP").to_string();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "media-src 'self' blob:",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("referrer-policy"), Some("same-origin"));
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    let etag = page.header("etag").expect("ETag").to_string();
    let html = page.text();
    assert!(html.contains("<script type=\"module\" src=\"/js/main.js\">"), "{html}");
    assert!(!html.contains("<style") && !html.contains(" style=") && !html.contains(" onclick="), "nothing inline");

    let again = send(server.req("GET", "/").set("If-None-Match", &etag), None);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());

    let script = send(server.req("GET", "/js/main.js"), None);
    assert_eq!(script.status, 200);
    assert_eq!(script.header("content-type"), Some("text/javascript; charset=utf-8"));
    let script_etag = script.header("etag").expect("ETag").to_string();
    assert_ne!(script_etag, etag);
    assert_eq!(send(server.req("GET", "/js/main.js").set("If-None-Match", &script_etag), None).status, 304);
    let css = send(server.req("GET", "/app.css"), None);
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    let head = send(server.req("HEAD", "/app.css"), None);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

#[test]
fn the_ui_views_serve_the_index_and_other_unknown_paths_are_json_404s() {
    let server = Server::start();
    let index = send(server.req("GET", "/"), None).text();
    let page = send(server.req("GET", "/trash"), None);
    assert_eq!(page.status, 200);
    assert_eq!(page.text(), index);
    send(server.req("GET", "/somewhere/else"), None).assert_error(404, "not_found");
    send(server.req("GET", "/api/v1/nothing-here"), None).assert_error(404, "not_found");
    send(server.req("GET", "/api"), None).assert_error(404, "not_found");
    send(server.req("GET", "/js/missing.js"), None).assert_error(404, "not_found");
    send(server.req("GET", "/../Cargo.toml"), None).assert_error(404, "not_found");
    // Pages are read-only.
    let post = send(server.req("POST", "/"), None);
    assert!(post.status == 404 || post.status == 405, "{}", post.status);
    assert!(post.header("content-type").is_some_and(|c| c.starts_with("application/json")));
}
