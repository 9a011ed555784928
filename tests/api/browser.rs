//! Headless Chromium driven over WebDriver (W3C, through Debian's `chromedriver`): the handful
//! of commands the console's tests (and its benchmark, `benches/console.rs`) use, over the
//! reqwest client the tests already have.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

/// The W3C element reference's key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    http: reqwest::Client,
    session: String,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

fn find_program(names: &[&str]) -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .chain(["/usr/bin".into(), "/usr/lib/chromium".into()])
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
            .map(|p| p.to_string_lossy().into_owned())
    })
}

impl Browser {
    /// Chromium and chromedriver, headless; Err says why there is none (not installed).
    pub async fn start() -> Result<Self, String> {
        kubegate::install_crypto_provider();
        let driver = find_program(&["chromedriver"]).ok_or(
            "chromedriver is not installed (Debian: apt-get install chromium chromium-driver)",
        )?;
        let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"])
            .ok_or("chromium is not installed (Debian: apt-get install chromium)")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let child = tokio::process::Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{driver}: {e}"))?;
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let mut ready = false;
        for _ in 0..300 {
            if let Ok(res) = http.get(format!("{base}/status")).send().await
                && let Ok(v) = res.json::<Value>().await
                && v["value"]["ready"] == true
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !ready {
            return Err(format!("{driver} did not answer within 30 s"));
        }
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                         format!("--user-data-dir={}", profile.path().display())],
            },
        }}});
        let res: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let session = res["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| format!("chromedriver did not start a session: {res}"))?;
        Ok(Self {
            http,
            session: format!("{base}/session/{session}"),
            _driver: child,
            _profile: profile,
        })
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res: Value = req.send().await.unwrap().json().await.unwrap();
        res["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.command(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    pub async fn set_size(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({"width": width, "height": height}))
            .await;
    }

    /// The elements matching a CSS selector (none: empty).
    pub async fn all(&self, css: &str) -> Vec<String> {
        let v = self
            .post("/elements", json!({"using": "css selector", "value": css}))
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn text(&self, element: &str) -> String {
        self.command(
            reqwest::Method::GET,
            &format!("/element/{element}/text"),
            None,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Wait until an element matching `css` shows text containing `contains`; returns it. On
    /// time out the panic shows the page's text (and a screenshot is left in target/).
    pub async fn wait_for(&self, css: &str, contains: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            for e in self.all(css).await {
                if self.text(&e).await.contains(contains) {
                    return e;
                }
            }
            if tokio::time::Instant::now() > deadline {
                let body = self.all("body").await;
                let text = match body.first() {
                    Some(b) => self.text(b).await,
                    None => String::new(),
                };
                let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("target/console-screenshots/timed-out.png");
                let _ = std::fs::create_dir_all(shot.parent().unwrap());
                let _ = std::fs::write(&shot, self.screenshot().await);
                panic!("waited 30s for {css} showing {contains:?}; the page says:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Click the element matching `css`, once it is there and can take a click (a dialog that is
    /// still opening, or a button a re-render replaced, is waited for as a person would).
    pub async fn click(&self, css: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let e = self.wait_for(css, "").await;
            let v = self.post(&format!("/element/{e}/click"), json!({})).await;
            if v.is_null() {
                return;
            }
            let transient = matches!(
                v["error"].as_str(),
                Some(
                    "element not interactable"
                        | "element click intercepted"
                        | "stale element reference"
                )
            );
            assert!(
                transient && tokio::time::Instant::now() < deadline,
                "click on {css}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Replace an input's value with `text` (typed, as a person would).
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.wait_for(css, "").await;
        self.post(&format!("/element/{e}/clear"), json!({})).await;
        let v = self
            .post(&format!("/element/{e}/value"), json!({"text": text}))
            .await;
        assert!(v.is_null(), "typing into {css}: {v}");
    }

    /// Run `script` (an async function body: its last argument is the callback) in the page.
    pub async fn run(&self, script: &str, args: Vec<Value>) -> Value {
        self.post("/execute/async", json!({"script": script, "args": args}))
            .await
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let v = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap()
    }
}

impl Drop for Browser {
    /// Ends the session (Chromium exits with it), also when a test panics: a plain blocking
    /// request, as the test's runtime may be gone; chromedriver is killed with its handle.
    fn drop(&mut self) {
        use std::io::{Read as _, Write as _};
        let Some(rest) = self.session.strip_prefix("http://") else {
            return;
        };
        let Some((host, path)) = rest.split_once('/') else {
            return;
        };
        if let Ok(mut s) = std::net::TcpStream::connect(host) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                s,
                "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = s.read(&mut [0u8; 512]);
        }
    }
}
