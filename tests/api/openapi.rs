//! The OpenAPI document: served by the binary, and in step with the routes actually mounted.

use crate::support::{Server, send};
use recorder::{Clock, Config};
use std::collections::BTreeSet;

/// `/api/v1/recordings/<id>/audio?<download>` → `/api/v1/recordings/{id}/audio`
fn openapi_path(rocket_path: &str) -> String {
    rocket_path
        .split('/')
        .map(|segment| match segment.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
            Some(name) => format!("{{{name}}}"),
            None => segment.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_mounted_route_is_documented_and_every_documented_route_is_mounted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::with_data_dir(dir.path().join("data"));
    config.tls.port = 0;
    let server = recorder::Server::open(config, Clock::default()).expect("server");
    let rocket = recorder::rocket(server);
    let mounted: BTreeSet<(String, String)> = rocket
        .routes()
        // The UI's files are pages, not API.
        .filter(|route| !route.uri.path().contains("..>"))
        .map(|route| (route.method.as_str().to_lowercase(), openapi_path(route.uri.path())))
        .collect();

    let doc: serde_json::Value = serde_json::from_str(include_str!("../../src/openapi.json")).expect("valid JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if ["get", "put", "post", "delete", "patch", "head", "options"].contains(&method.as_str()) {
                assert!(operation["operationId"].is_string(), "{method} {path} has an operationId");
                assert!(operation["responses"].is_object(), "{method} {path} lists its responses");
                documented.insert((method.clone(), path.clone()));
            }
        }
    }
    let missing: Vec<_> = mounted.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&mounted).collect();
    assert!(missing.is_empty(), "mounted but not in openapi.json: {missing:?}");
    assert!(extra.is_empty(), "in openapi.json but not mounted: {extra:?}");
    assert!(mounted.len() >= 20, "the routes were collected: {mounted:?}");
}

#[test]
fn the_document_is_served_without_authentication() {
    let server = Server::start();
    let r = send(server.req("GET", "/api/v1/openapi.json"), None);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/json")));
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/v1/recordings/{id}/audio"]["get"].is_object());
    // Every error code the server can answer is in the Error schema.
    let codes = doc["components"]["schemas"]["Error"].to_string();
    for code in ["bad_request", "not_found", "payload_too_large", "insufficient_storage", "too_many_requests"] {
        assert!(codes.contains(code), "{code}");
    }
}
