//! HTTPS on the LAN: the local CA and its downloads, the HTTPS listener and WebDAV over TLS,
//! a certificate issued again or read again without a restart, and the setup page.

use crate::support::process::{Running, recorder, run};
use crate::support::tls::{handshake, request, sans};
use crate::support::*;
use serde_json::json;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

/// The CA's certificate (DER), as a phone downloads it over plain HTTP.
fn ca(server: &Server) -> Vec<u8> {
    let r = send(server.req("GET", "/ca.crt"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/x-x509-ca-cert"));
    r.body
}

fn https(server: &Server) -> &str {
    server.https.as_deref().expect("HTTPS is on by default")
}

/// Waits until a new handshake shows a certificate that `accept` accepts; the last one seen.
fn served_until(base: &str, name: &str, roots: &[&[u8]], accept: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = handshake(base, name, roots).map(|chain| chain[0].clone());
        match seen {
            Ok(leaf) if accept(&leaf) => return leaf,
            other if Instant::now() > deadline => {
                panic!("the served certificate never changed as expected: {:?}", other.map(|l| sans(&l)))
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[test]
fn https_serves_the_api_with_a_certificate_only_the_local_ca_vouches_for() {
    let s = Server::start();
    let ca = ca(&s);
    let base = https(&s);
    // The server's own certificate, chained to the CA, names the loopback address and localhost.
    for name in ["127.0.0.1", "localhost"] {
        let r = request(base, name, &[&ca], "GET", "/healthz", &[], b"").expect("a handshake trusting the CA");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.chain.len(), 2, "the server presents its certificate and the CA's");
        assert_eq!(r.chain[1], ca);
        let hsts = r.headers_named("strict-transport-security");
        assert!(hsts.iter().all(|h| h.trim() == "max-age=0"), "no HSTS, so the plain port stays usable: {hsts:?}");
    }
    let leaf = handshake(base, "127.0.0.1", &[&ca]).expect("handshake");
    let (dns, ips) = sans(&leaf[0]);
    assert!(dns.contains(&"localhost".to_string()), "{dns:?}");
    assert!(ips.contains(&IpAddr::from([127, 0, 0, 1])), "{ips:?}");
    // A client trusting another authority refuses it.
    let other = tempfile::tempdir().expect("tempdir");
    let stranger = recorder::tls::Authority::open(other.path(), "elsewhere", &[], time::OffsetDateTime::now_utc())
        .expect("another CA");
    assert!(handshake(base, "127.0.0.1", &[stranger.cert_der()]).is_err(), "only the local CA vouches for it");

    // The same CA in PEM and in an iOS profile; the key never leaves the data directory.
    let pem = send(s.req("GET", "/ca.pem"), None);
    assert_eq!(pem.status, 200);
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem.body).expect("PEM");
    assert_eq!(block.contents, ca);
    let profile = send(s.req("GET", "/ca.mobileconfig"), None);
    assert_eq!(profile.status, 200);
    assert_eq!(profile.header("content-type"), Some("application/x-apple-aspen-config"));
    use base64::Engine as _;
    assert!(profile.text().contains(&base64::engine::general_purpose::STANDARD.encode(&ca)));
    assert!(profile.text().contains("com.apple.security.root"));
    let setup = send(s.req("GET", "/setup"), None);
    for (what, body) in
        [("ca.crt", &ca), ("ca.pem", &pem.body), ("mobileconfig", &profile.body), ("setup", &setup.body)]
    {
        assert!(!String::from_utf8_lossy(body).contains("PRIVATE KEY"), "{what} holds no key");
    }
    for key in ["ca-key.pem", "server-key.pem"] {
        let mode = std::fs::metadata(s.data().join("tls").join(key)).expect(key).permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
    let dir_mode = std::fs::metadata(s.data().join("tls")).expect("tls dir").permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
    // The private files are not served by any path the UI serves.
    for path in ["/tls/ca-key.pem", "/ca-key.pem", "/server-key.pem", "/../tls/ca-key.pem"] {
        let r = request(base, "127.0.0.1", &[&ca], "GET", path, &[], b"").expect("request");
        assert_eq!(r.status, 404, "{path}");
    }
}

#[test]
fn a_session_started_over_https_has_a_secure_cookie_and_the_api_answers_there_too() {
    let s = Server::start();
    let ca = ca(&s);
    let body = json!({"username": "alice", "password": "password123"}).to_string();
    let r = request(
        https(&s),
        "localhost",
        &[&ca],
        "POST",
        "/api/v1/auth/signup",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .expect("signup over HTTPS");
    assert_eq!(r.status, 201, "{}", r.text());
    let cookie =
        r.headers_named("set-cookie").into_iter().find(|c| c.starts_with("recorder_session=")).expect("cookie");
    assert!(cookie.split(';').any(|p| p.trim().eq_ignore_ascii_case("secure")), "{cookie}");
    let token = serde_json::from_slice::<serde_json::Value>(&r.body).expect("JSON")["token"]
        .as_str()
        .expect("token")
        .to_string();
    // The same account, over plain HTTP: its cookie is not Secure (an http:// app keeps working).
    let plain =
        send_json(s.req("POST", "/api/v1/auth/login"), &json!({"username": "alice", "password": "password123"}));
    assert_eq!(plain.status, 200);
    let plain_cookie = plain.header("set-cookie").expect("cookie");
    assert!(!plain_cookie.to_ascii_lowercase().contains("secure"), "{plain_cookie}");
    let me = request(https(&s), "localhost", &[&ca], "GET", "/api/v1/me", &[("Authorization", &bearer(&token))], b"")
        .expect("me");
    assert_eq!(me.status, 200);
    // The page's own changes over HTTPS: its Origin is the https:// one (another is refused).
    let port_text = https(&s).rsplit(':').next().expect("port").to_string();
    let session = cookie.split(';').next().expect("name=value");
    for (origin, status) in
        [(format!("http://localhost:{port_text}"), 403), (format!("https://localhost:{port_text}"), 204)]
    {
        let r = request(
            https(&s),
            "localhost",
            &[&ca],
            "POST",
            "/api/v1/auth/logout",
            &[("Cookie", session), ("Origin", &origin)],
            b"",
        )
        .expect("logout");
        assert_eq!(r.status, status, "Origin {origin}: {}", r.text());
    }
    // The server's description names the secure address and the fingerprint.
    let info = send(s.req("GET", "/api/v1/server"), None).json();
    let port = https(&s).rsplit(':').next().expect("port").parse::<u64>().expect("port");
    assert_eq!(info["https"]["port"], port, "{info}");
    let fingerprint = sha256_hex(&ca).to_ascii_uppercase();
    let shown = info["https"]["ca_fingerprint"].as_str().expect("fingerprint").replace(':', "");
    assert_eq!(shown, fingerprint);
}

#[test]
fn a_new_address_gets_a_new_certificate_without_a_restart() {
    let s = Server::start_with(|c| c.tls.refresh = Duration::from_millis(100));
    let ca = ca(&s);
    let added: IpAddr = [10, 77, 0, 9].into();
    let before = handshake(https(&s), "127.0.0.1", &[&ca]).expect("handshake")[0].clone();
    assert!(!sans(&before).1.contains(&added));
    s.tls.as_ref().expect("TLS on").add_address(added);
    // The listener is relaunched with the new certificate; the CA stays the same.
    let after = served_until(https(&s), "127.0.0.1", &[&ca], |leaf| sans(leaf).1.contains(&added));
    assert_ne!(after, before);
    assert_eq!(ca, send(s.req("GET", "/ca.crt"), None).body, "the authority is kept");
    let r = request(https(&s), "127.0.0.1", &[&ca], "GET", "/healthz", &[], b"").expect("request");
    assert_eq!(r.status, 200);
    // Kept on disk: the next start presents it without issuing another.
    let kept = std::fs::read_to_string(s.data().join("tls/server.pem")).expect("server.pem");
    let (_, block) = x509_parser::pem::parse_x509_pem(kept.as_bytes()).expect("PEM");
    assert_eq!(block.contents, after);
}

#[test]
fn files_mode_serves_the_given_certificate_and_reads_it_again_when_it_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = time::OffsetDateTime::now_utc();
    let authority =
        recorder::tls::Authority::open(&dir.path().join("ca"), "pi", &["files.test".into()], now).expect("CA");
    let names = |extra: &[&str]| recorder::tls::Names {
        dns: extra.iter().map(|n| n.to_string()).chain(["localhost".to_string()]).collect(),
        ips: vec![IpAddr::from([127, 0, 0, 1])],
    };
    let (cert, key) = (dir.path().join("chain.pem"), dir.path().join("key.pem"));
    let first = authority.issue(&names(&[]), now).expect("leaf");
    std::fs::write(&cert, &first.chain_pem).expect("write");
    std::fs::write(&key, &first.key_pem).expect("write");
    let s = Server::start_with(|c| {
        c.tls.mode = recorder::tls::Mode::Files;
        c.tls.cert = Some(cert.clone());
        c.tls.key = Some(key.clone());
        c.tls.refresh = Duration::from_millis(100);
    });
    let root = authority.cert_der().to_vec();
    let served = handshake(https(&s), "localhost", &[&root]).expect("handshake")[0].clone();
    assert_eq!(served, first.cert_der);
    assert!(handshake(https(&s), "files.test", &[&root]).is_err(), "the first certificate does not name files.test");
    // No local CA in this mode.
    send(s.req("GET", "/ca.crt"), None).assert_error(404, "not_found");
    // A renewed certificate (as an ACME client writes it) is served without a restart.
    let second = authority.issue(&names(&["files.test"]), now).expect("leaf");
    std::fs::write(&key, &second.key_pem).expect("write");
    std::fs::write(&cert, &second.chain_pem).expect("write");
    served_until(https(&s), "localhost", &[&root], |leaf| leaf == second.cert_der.as_slice());
    let r = request(https(&s), "files.test", &[&root], "GET", "/healthz", &[], b"").expect("the new name is served");
    assert_eq!(r.status, 200);
}

#[test]
fn webdav_is_served_over_tls_with_the_same_certificate() {
    let s = Server::start_dav();
    let ca = ca(&s);
    let session = s.signup("alice");
    let token = s.app_token(&session, "files");
    s.upload_id(&session, "memo.wav", &fixture("speech.wav"));
    let base = s.dav_tls.as_deref().expect("WebDAV over TLS");
    let r = request(
        base,
        "127.0.0.1",
        &[&ca],
        "PROPFIND",
        "/",
        &[("Depth", "1"), ("Authorization", &basic("alice", &token))],
        b"",
    )
    .expect("PROPFIND over TLS");
    assert_eq!(r.status, 207, "{}", r.text());
    assert!(r.text().contains("memo.wav"), "{}", r.text());
    let https_leaf = handshake(https(&s), "127.0.0.1", &[&ca]).expect("handshake")[0].clone();
    assert_eq!(r.chain[0], https_leaf);
}

#[test]
fn with_tls_off_there_is_no_https_and_the_setup_page_says_how_to_turn_it_on() {
    let s = Server::start_with(|c| c.tls.mode = recorder::tls::Mode::Off);
    assert!(s.https.is_none());
    send(s.req("GET", "/ca.crt"), None).assert_error(404, "not_found");
    send(s.req("GET", "/ca.mobileconfig"), None).assert_error(404, "not_found");
    let setup = send(s.req("GET", "/setup"), None);
    assert_eq!(setup.status, 200);
    assert!(setup.text().contains("tls.mode"), "{}", setup.text());
    assert!(send(s.req("GET", "/api/v1/server"), None).json()["https"].is_null());
    assert!(!s.data().join("tls").exists(), "no authority is made when TLS is off");
}

#[test]
fn the_setup_page_shows_the_fingerprint_the_log_printed_and_a_qr_code_of_the_secure_address() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    let mut cmd = recorder(home.path());
    cmd.arg("--data-dir").arg(&data).arg("--port").arg("0");
    let server = Running::start(cmd);
    let deadline = Instant::now() + Duration::from_secs(20);
    let (fingerprint, secure) = loop {
        let log = server.log().clone();
        let fingerprint =
            log.iter().find_map(|l| l.split("local CA fingerprint (SHA-256): ").nth(1).map(str::to_string));
        let secure = log.iter().find_map(|l| {
            l.split("secure address: ").nth(1).and_then(|r| r.split_whitespace().next()).map(str::to_string)
        });
        if let (Some(f), Some(u)) = (fingerprint, secure) {
            break (f, u);
        }
        assert!(Instant::now() < deadline, "the log names the secure address and the fingerprint: {log:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(secure.starts_with("https://"), "{secure}");
    let page = server.req("GET", "/setup").call().expect("setup");
    assert!(page.header("content-security-policy").is_some_and(|c| c.contains("default-src 'none'")));
    let html = page.into_string().expect("HTML");
    assert!(html.contains(&fingerprint), "the page shows the logged fingerprint");
    assert!(html.contains("<svg"), "a QR code");
    for platform in ["Android", "iPhone", "macOS", "Windows", "Linux"] {
        assert!(html.contains(platform), "steps for {platform}");
    }
    let ca = server.req("GET", "/ca.crt").call().expect("ca");
    let mut der = Vec::new();
    std::io::Read::read_to_end(&mut ca.into_reader(), &mut der).expect("read");
    let hex: String = sha256_hex(&der).to_ascii_uppercase();
    assert_eq!(fingerprint.replace(':', ""), hex, "the fingerprint is the CA certificate's SHA-256");
    // The QR code's address is served (over loopback here) with a certificate the CA vouches for.
    let port = secure.rsplit(':').next().expect("port").trim_end_matches('/');
    let r = request(&format!("https://127.0.0.1:{port}"), "127.0.0.1", &[&der], "GET", "/healthz", &[], b"")
        .expect("HTTPS");
    assert_eq!(r.status, 200);
}

#[test]
fn a_tls_port_that_cannot_be_bound_stops_startup_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = recorder(home.path());
    cmd.arg("--data-dir").arg(home.path().join("data")).args(["--port", "0", "--address", "127.0.0.1"]);
    cmd.env("RECORDER_TLS_PORT", port.to_string());
    let (code, _, err) = run(cmd, "");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("tls.port") && err.contains(&port.to_string()), "{err}");
}

#[test]
fn files_mode_without_usable_files_is_refused_at_startup() {
    let home = tempfile::tempdir().expect("tempdir");
    let start = |env: &[(&str, &str)]| {
        let mut cmd = recorder(home.path());
        cmd.arg("--data-dir").arg(home.path().join("data")).args(["--port", "0", "--address", "127.0.0.1"]);
        cmd.envs(env.iter().copied());
        run(cmd, "")
    };
    // A configuration mistake: exit 2, naming the key.
    let (code, _, err) = start(&[("RECORDER_TLS_MODE", "files")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("tls.cert"), "{err}");
    let (code, _, err) = start(&[("RECORDER_TLS_MODE", "sometimes")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("tls.mode"), "{err}");
    // Files that are missing or not a certificate: exit 1, naming the file.
    let missing = home.path().join("missing.pem");
    let missing = missing.to_str().expect("path");
    let (code, _, err) =
        start(&[("RECORDER_TLS_MODE", "files"), ("RECORDER_TLS_CERT", missing), ("RECORDER_TLS_KEY", missing)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("missing.pem"), "{err}");
    let junk = home.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").expect("write");
    let junk = junk.to_str().expect("path");
    let (code, _, err) =
        start(&[("RECORDER_TLS_MODE", "files"), ("RECORDER_TLS_CERT", junk), ("RECORDER_TLS_KEY", junk)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("junk.pem"), "{err}");
}
