//! `GET /metrics`: off by default; on, Prometheus text with what the dashboards need, readable
//! from this machine or with the token, and from nowhere else.

use crate::support::{Server, fixture, metric_sample, send};

/// The value of the first sample line that starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> f64 {
    metric_sample(text, series).unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

#[test]
fn metrics_are_off_unless_enabled() {
    let server = Server::start();
    send(server.req("GET", "/metrics"), None).assert_error(404, "not_found");
}

#[test]
fn metrics_count_requests_uploads_and_what_is_stored() {
    let server = Server::start_with(|c| c.metrics.enabled = true);
    let token = server.signup("alice");
    let wav = fixture("speech.wav");
    let id = server.upload_id(&token, "a.wav", &wav);
    for _ in 0..3 {
        assert_eq!(send(server.auth("GET", "/api/v1/recordings", &token), None).status, 200);
    }
    assert_eq!(send(server.auth("DELETE", &format!("/api/v1/recordings/{id}"), &token), None).status, 204);
    server.upload_id(&token, "b.wav", &wav);
    send(server.req("GET", "/no/such/page.php"), None);
    send(server.req("GET", "/api/v1/nothing-here"), None);

    let r = send(server.req("GET", "/metrics"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type").is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{:?}",
        r.header("content-type")
    );
    let text = r.text();
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    let requests = |method: &str, route: &str, status: u16| {
        sample(
            &text,
            &format!("recorder_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}"),
        )
    };
    assert_eq!(requests("POST", "/api/v1/recordings", 201), 2.0);
    assert_eq!(requests("GET", "/api/v1/recordings", 200), 3.0);
    assert_eq!(requests("DELETE", "/api/v1/recordings/<id>", 204), 1.0);
    assert_eq!(requests("POST", "/api/v1/auth/signup", 201), 1.0);
    // Unknown paths fall to the catch-all route: its pattern is the label, never the raw path.
    assert_eq!(requests("GET", "/<path..>", 404), 2.0);
    assert!(!text.contains("page.php"), "{text}");
    assert!(!text.contains(&id), "no id or path ever becomes a label");
    assert!(!text.contains("nothing-here"), "{text}");
    assert_eq!(sample(&text, "recorder_upload_bytes_total"), 2.0 * wav.len() as f64);
    assert_eq!(sample(&text, "recorder_upload_duration_seconds_count"), 2.0);
    assert_eq!(sample(&text, "recorder_list_duration_seconds_count"), 3.0);
    assert_eq!(sample(&text, "recorder_recordings"), 1.0);
    assert_eq!(sample(&text, "recorder_recordings_bytes"), wav.len() as f64);
    assert_eq!(sample(&text, "recorder_trash_recordings"), 1.0);
    assert_eq!(sample(&text, "recorder_trash_bytes"), wav.len() as f64);
    assert_eq!(sample(&text, "recorder_users"), 1.0);
    assert!(sample(&text, "recorder_disk_free_bytes") > 0.0, "{text}");
    assert!(sample(&text, "recorder_process_resident_bytes") > 0.0, "{text}");
    assert!(sample(&text, "recorder_process_threads") >= 1.0, "{text}");
}

#[test]
fn metrics_from_another_address_need_the_token() {
    let server = Server::start_with(|c| {
        c.metrics.enabled = true;
        c.metrics.token = Some("scrape-secret".into());
        // As behind a proxy: the client's address comes from this header.
        c.server.client_ip_header = Some("X-Real-IP".into());
    });
    let remote = || server.req("GET", "/metrics").set("X-Real-IP", "203.0.113.9");
    let refused = send(remote(), None);
    refused.assert_error(401, "unauthorized");
    send(remote().set("Authorization", "Bearer wrong"), None).assert_error(401, "unauthorized");
    let allowed = send(remote().set("Authorization", "Bearer scrape-secret"), None);
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    let local = send(server.req("GET", "/metrics").set("X-Real-IP", "127.0.0.1"), None);
    assert_eq!(local.status, 200, "{}", local.text());
}
