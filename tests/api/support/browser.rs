//! Headless Chromium, driven through chromedriver (WebDriver), for the tests of the web UI
//! against a real server. Without Chromium a browser test says loudly that it skipped, and fails
//! instead when `RECORDER_REQUIRE_BROWSER=1` (as in CI).

use super::http::send_json;
use super::server::Server;
use super::{find_program, free_port, skip};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a browser test waits for the page to show what it expects.
pub const WAIT: Duration = Duration::from_secs(15);

/// One browser at a time: two Chromiums on two cores make every wait a race, and chromedriver
/// ports picked at once could collide.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A headless Chromium session. Dropping it ends the session and chromedriver.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    /// chromedriver's address, for the commands fantoccini does not have (DevTools).
    driver_url: String,
    _profile: tempfile::TempDir,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl Browser {
    /// Starts Chromium, or returns `None` after saying why (panics instead when required).
    pub fn start(test: &str) -> Option<Browser> {
        Browser::start_with(test, &[])
    }

    /// Starts Chromium trusting the server's local CA (DER) for HTTPS, as a phone that
    /// installed it does: Chromium accepts certificates whose chain holds that key.
    pub fn start_trusting(test: &str, ca_der: &[u8]) -> Option<Browser> {
        let flag = format!("--ignore-certificate-errors-spki-list={}", spki_hash(ca_der));
        Browser::start_with(test, &[&flag])
    }

    /// Starts Chromium with extra command-line switches.
    pub fn start_with(test: &str, extra_args: &[&str]) -> Option<Browser> {
        let chromium = find_program(
            "RECORDER_CHROMIUM",
            &["/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"],
        );
        let driver = find_program("RECORDER_CHROMEDRIVER", &["/usr/bin/chromedriver", "chromedriver"]);
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            let why = "Chromium and chromedriver were not found. Install them with \
                       `sudo apt-get install chromium chromium-driver` (Debian/Ubuntu), or point \
                       RECORDER_CHROMIUM and RECORDER_CHROMEDRIVER at them";
            skip("RECORDER_REQUIRE_BROWSER", "browser", test, why);
            return None;
        };
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let port = free_port();
        let mut driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("profile dir");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-quic".into(),
            "--autoplay-policy=no-user-gesture-required".into(),
            "--use-fake-ui-for-media-stream".into(),
            "--use-fake-device-for-media-stream".into(),
            "--window-size=1280,800".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        args.extend(extra_args.iter().map(|a| a.to_string()));
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), json!({"binary": chromium, "args": args}));
        let url = format!("http://127.0.0.1:{port}");
        let client = rt.block_on(async {
            let started = Instant::now();
            loop {
                let connector = hyper_util::client::legacy::connect::HttpConnector::new();
                match ClientBuilder::new(connector).capabilities(caps.clone()).connect(&url).await {
                    Ok(client) => return client,
                    Err(e) if started.elapsed() < Duration::from_secs(30) => {
                        if let Ok(Some(status)) = driver.try_wait() {
                            panic!("chromedriver exited ({status}) before it took a session: {e}");
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("cannot start a Chromium session through chromedriver: {e}"),
                }
            }
        });
        Some(Browser { rt, client: Some(client), driver, driver_url: url, _profile: profile, _turn: turn })
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("session open")
    }

    pub fn goto(&self, url: &str) {
        self.rt.block_on(self.client().goto(url)).unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// Runs a script (a function body; `arguments` are the args) and returns its value.
    pub fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.rt.block_on(self.client().execute(script, args)).unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    /// Waits until the script returns something truthy; returns it.
    pub fn wait_js(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        let started = Instant::now();
        loop {
            let value = self.js(script, args.clone());
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            if started.elapsed() > WAIT {
                let html = self.js("return document.body ? document.body.innerText : ''", vec![]);
                panic!("timed out waiting for {what}; the page shows:\n{}", html.as_str().unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for an element to be present and visible.
    pub fn wait_for(&self, css: &str) {
        self.wait_js(
            &format!("{css} to be visible"),
            "const e = document.querySelector(arguments[0]); \
             return !!e && !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);",
            vec![json!(css)],
        );
    }

    pub fn wait_gone(&self, css: &str) {
        self.wait_js(
            &format!("{css} to go away"),
            "return document.querySelector(arguments[0]) === null;",
            vec![json!(css)],
        );
    }

    pub fn count(&self, css: &str) -> usize {
        self.js("return document.querySelectorAll(arguments[0]).length;", vec![json!(css)]).as_u64().unwrap_or(0)
            as usize
    }

    pub fn exists(&self, css: &str) -> bool {
        self.count(css) > 0
    }

    pub fn click(&self, css: &str) {
        self.wait_for(css);
        self.rt
            .block_on(async { self.client().find(Locator::Css(css)).await?.click().await })
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Types into a field (after clearing it).
    pub fn fill(&self, css: &str, text: &str) {
        self.wait_for(css);
        self.rt
            .block_on(async {
                let field = self.client().find(Locator::Css(css)).await?;
                field.clear().await?;
                field.send_keys(text).await
            })
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Replaces a field's text the way a person does (select all, type), without the blur that
    /// a WebDriver clear causes.
    pub fn retype(&self, css: &str, text: &str) {
        self.wait_for(css);
        self.send_keys(css, &format!("\u{E009}a\u{E000}{text}"));
    }

    /// Sends keys without clearing (file inputs take paths joined by newlines).
    pub fn send_keys(&self, css: &str, keys: &str) {
        self.rt
            .block_on(async { self.client().find(Locator::Css(css)).await?.send_keys(keys).await })
            .unwrap_or_else(|e| panic!("send keys to {css}: {e}"));
    }

    pub fn text(&self, css: &str) -> String {
        self.wait_for(css);
        self.js("return document.querySelector(arguments[0]).textContent;", vec![json!(css)])
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// Types into whatever has the keyboard focus (Tab is `\u{E004}`, Enter `\u{E007}`).
    pub fn keys(&self, keys: &str) {
        self.rt
            .block_on(async { self.client().active_element().await?.send_keys(keys).await })
            .unwrap_or_else(|e| panic!("keys {keys:?}: {e}"));
    }

    /// The `data-test` (or tag and name) of the focused element.
    pub fn focused(&self) -> String {
        self.js(
            "const e = document.activeElement;              return e ? (e.dataset.test || e.tagName.toLowerCase() + (e.name ? '[name=' + e.name + ']' : '')) : '';",
            vec![],
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Whether a JavaScript dialog (alert, confirm) is open.
    pub fn alert_open(&self) -> bool {
        self.rt.block_on(self.client().get_alert_text()).is_ok()
    }

    /// Resizes the window and lets layout settle on the new size (two animation frames).
    pub fn resize(&self, width: u32, height: u32) {
        self.rt.block_on(self.client().set_window_size(width, height)).expect("resize");
        self.js_async(
            "requestAnimationFrame(() => requestAnimationFrame(() => arguments[arguments.length - 1](true)));",
        );
    }

    pub fn screenshot(&self, width: u32, height: u32, name: &str) -> PathBuf {
        self.resize(width, height);
        let png = self.rt.block_on(self.client().screenshot()).expect("screenshot");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(name);
        std::fs::write(&path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// Sends a Chrome DevTools Protocol command to the current page (chromedriver's
    /// `goog/cdp/execute`) and returns its result.
    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        let session = self
            .rt
            .block_on(self.client().session_id())
            .unwrap_or_else(|e| panic!("session id: {e}"))
            .expect("a session");
        let url = format!("{}/session/{session}/goog/cdp/execute", self.driver_url);
        let body = json!({"cmd": cmd, "params": params});
        let r = send_json(ureq::post(&url), &body);
        assert_eq!(r.status, 200, "DevTools {cmd}: {}", r.text());
        r.json()["value"].clone()
    }

    /// The page's network as DevTools emulates it: offline, or uploads at most this many bytes a
    /// second (`None`: as fast as it goes).
    pub fn network(&self, offline: bool, upload_bytes_per_second: Option<u64>) {
        self.cdp("Network.enable", json!({}));
        let upload = upload_bytes_per_second.map_or(-1.0, |b| b as f64);
        self.cdp(
            "Network.emulateNetworkConditions",
            json!({"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": upload}),
        );
    }

    /// Opens a new window, switches to it and returns the handle of the window it left.
    pub fn open_window(&self) -> fantoccini::wd::WindowHandle {
        self.rt
            .block_on(async {
                let old = self.client().window().await?;
                let fresh = self.client().new_window(false).await?;
                self.client().switch_to_window(fresh.handle).await?;
                Ok::<_, fantoccini::error::CmdError>(old)
            })
            .unwrap_or_else(|e| panic!("open a window: {e}"))
    }

    pub fn window(&self) -> fantoccini::wd::WindowHandle {
        self.rt.block_on(self.client().window()).unwrap_or_else(|e| panic!("current window: {e}"))
    }

    pub fn switch_to(&self, window: fantoccini::wd::WindowHandle) {
        self.rt.block_on(self.client().switch_to_window(window)).unwrap_or_else(|e| panic!("switch window: {e}"));
    }

    /// Closes the current window (its page gets no say), and switches to `next`.
    pub fn close_window(&self, next: fantoccini::wd::WindowHandle) {
        self.rt.block_on(self.client().close_window()).unwrap_or_else(|e| panic!("close window: {e}"));
        self.switch_to(next);
    }

    /// Moves a pointer (a mouse, or a finger when `touch`) through `steps`, in CSS pixels of the
    /// viewport. A press stays down across calls until a `Pointer::Up`, so a drag can be
    /// looked at halfway.
    pub fn pointer(&self, touch: bool, steps: &[Pointer]) {
        use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction, TouchActions};
        let actions: Vec<PointerAction> = steps
            .iter()
            .map(|step| match *step {
                Pointer::Move(x, y) => {
                    PointerAction::MoveTo { duration: Some(Duration::from_millis(50)), x: x.round(), y: y.round() }
                }
                Pointer::Down => PointerAction::Down { button: MOUSE_BUTTON_LEFT },
                Pointer::Up => PointerAction::Up { button: MOUSE_BUTTON_LEFT },
            })
            .collect();
        let result = if touch {
            let seq = actions.into_iter().fold(TouchActions::new("finger".into()), |s, a| s.then(a));
            self.rt.block_on(self.client().perform_actions(seq))
        } else {
            let seq = actions.into_iter().fold(MouseActions::new("mouse".into()), |s, a| s.then(a));
            self.rt.block_on(self.client().perform_actions(seq))
        };
        result.unwrap_or_else(|e| panic!("pointer actions {steps:?}: {e}"));
    }

    /// Runs an asynchronous script, which hands back its value with `done(value)`.
    pub fn js_await(&self, script: &str) -> Value {
        self.js_async(&format!("const done = arguments[arguments.length - 1];\n{script}"))
    }

    fn js_async(&self, script: &str) -> Value {
        self.rt.block_on(self.client().execute_async(script, vec![])).unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    /// Clicks the play button of the listed recording `id` and waits until the player plays it.
    pub fn play(&self, id: &str) {
        self.click(&format!("{} [data-test=play]", item(id)));
        self.wait_js(
            "the player to play",
            "const a = document.querySelector('audio[data-test=player]'); \
             return !a.paused && a.currentTime > 0 && a.src.includes(arguments[0]);",
            vec![json!(id)],
        );
    }

    /// Waits until the player is paused.
    pub fn wait_paused(&self) {
        self.wait_js("the player to pause", "return document.querySelector('audio[data-test=player]').paused;", vec![]);
    }

    /// Waits until no transition or finite animation is running, so colours are final.
    pub fn wait_settled(&self) {
        self.wait_js(
            "transitions and animations to end",
            "return document.getAnimations().every(a => a.playState !== 'running' || \
               !isFinite(a.effect.getComputedTiming().endTime));",
            vec![],
        );
    }

    /// Runs axe-core over the page with the WCAG 2 A and AA rules and returns its violations.
    /// Panics when axe fails, or when its colour-contrast rule found no text to check: an audit
    /// that looked at nothing must not pass.
    pub fn axe_violations(&self) -> Vec<Value> {
        self.wait_settled();
        // WebDriver runs the script as a function body, outside the page's Content-Security-Policy.
        let script = format!("{AXE_SOURCE}\n;\n{AXE_RUN}");
        let result = self
            .rt
            .block_on(self.client().execute_async(&script, vec![]))
            .unwrap_or_else(|e| panic!("running axe-core: {e}"));
        if let Some(error) = result.get("error") {
            panic!("axe-core failed: {}", error.as_str().unwrap_or_default());
        }
        assert_eq!(result["contrast_checked"], json!(true), "axe-core checked the contrast of some text: {result}");
        result["violations"].as_array().cloned().unwrap_or_default()
    }
}

/// One step of `Browser::pointer`.
#[derive(Debug, Clone, Copy)]
pub enum Pointer {
    /// To this point of the viewport (CSS pixels).
    Move(f64, f64),
    Down,
    Up,
}

/// axe-core, vendored (see tests/vendor/axe-core/README.md).
const AXE_SOURCE: &str = include_str!("../../vendor/axe-core/axe.min.js");

/// Runs axe (defined by `AXE_SOURCE` just before) and hands back what a failure message needs.
const AXE_RUN: &str = "
const done = arguments[arguments.length - 1];
axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] }, resultTypes: ['violations'] })
  .then(r => done({
    violations: r.violations.map(v => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.map(n => ({ target: n.target.join(' '), summary: n.failureSummary })),
    })),
    contrast_checked: r.passes.concat(r.violations).some(x => x.id === 'color-contrast'),
  }), e => done({ error: String((e && e.stack) || e) }));
";

/// Fails with every violation axe-core finds on the page: rule, impact, elements and why.
pub fn assert_accessible(b: &Browser, what: &str) {
    let violations = b.axe_violations();
    let mut report = String::new();
    for v in &violations {
        let text = |key: &str| v[key].as_str().unwrap_or_default().to_string();
        report.push_str(&format!("- {} ({}): {}\n", text("id"), text("impact"), text("help")));
        for node in v["nodes"].as_array().into_iter().flatten() {
            let summary = node["summary"].as_str().unwrap_or_default().replace('\n', "\n      ");
            report.push_str(&format!("    {}\n      {summary}\n", node["target"].as_str().unwrap_or_default()));
        }
    }
    assert!(violations.is_empty(), "axe-core finds {} WCAG 2 A/AA violations in {what}:\n{report}", violations.len());
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.rt.block_on(client.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

pub fn item(id: &str) -> String {
    format!("li[data-test=recording][data-id=\"{id}\"]")
}

/// The base64 SHA-256 of a certificate's public key (SubjectPublicKeyInfo), as Chromium's SPKI
/// list takes it.
pub fn spki_hash(cert_der: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).expect("a certificate");
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(cert.public_key().raw))
}

/// Signs up through the page and waits for the (empty) list.
pub fn sign_up(b: &Browser, server: &Server, username: &str) {
    sign_up_at(b, &server.base, username);
}

/// Signs up through the page, then leaves it for a blank one, so that the list, opened later,
/// loads after the test's uploads (an open list would show them as they come); returns a session
/// token of the new account.
pub fn sign_up_and_leave(b: &Browser, server: &Server, username: &str) -> String {
    sign_up(b, server, username);
    b.goto("about:blank");
    server.login(username)
}

/// Signs up through the page at `base` (the server, or a proxy in front of it).
pub fn sign_up_at(b: &Browser, base: &str, username: &str) {
    b.goto(base);
    b.wait_js("the page to be ready", "return document.body.dataset.ready === '1';", vec![]);
    b.click("[data-test=show-signup]");
    b.fill("form[data-test=signup-form] input[name=username]", username);
    b.fill("form[data-test=signup-form] input[name=password]", "password123");
    b.click("form[data-test=signup-form] [type=submit]");
    b.wait_for("[data-test=app]");
}
