//! The inspector page in a real browser: Debian's chromium, headless, driven through
//! chromedriver (WebDriver). It opens the page, sees rows appear live as requests go through the
//! tunnel, opens one and sees its JSON body pretty-printed, clicks Replay and sees the app hit
//! again and the new row; the dark theme follows the system setting.
//!
//! Needs `chromium` and `chromedriver` (Debian packages `chromium` and `chromium-driver`;
//! `.ci/run` installs them). Set `UNDERPASS_SCREENSHOTS=DIR` to keep screenshots of the page.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use http::{header, Method, Response, StatusCode};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port. When dropped (also when a test fails half-way) the chromium it
/// started is killed by its id, then chromedriver: a browser must not outlive its test, and
/// chromedriver killed first leaves it running.
struct Driver {
    child: Child,
    url: String,
    profile: std::path::PathBuf,
}

/// The processes `pid` started (from `/proc/PID/task/*/children`).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromium's main process; its zygotes, renderers and crash handlers end with it.
        for browser in children_of(self.child.id()) {
            let _ = Command::new("kill")
                .args(["-KILL", &browser.to_string()])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Fails (never skips) without the browser, naming the packages to install.
fn require(path: &str) {
    assert!(
        std::path::Path::new(path).exists(),
        "{path} is missing: this test drives a real browser. Install Debian's `chromium` and \
         `chromium-driver` packages (apt-get install chromium chromium-driver; .ci/run does)"
    );
}

async fn driver(name: &str) -> Driver {
    require(CHROMIUM);
    require(CHROMEDRIVER);
    let port = unused_addr().port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let profile = std::env::temp_dir().join(format!(
        "underpass-browser-{name}-{}-{port}",
        std::process::id()
    ));
    let url = format!("http://127.0.0.1:{port}");
    within(30, async {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    Driver {
        child,
        url,
        profile,
    }
}

async fn browser(driver: &Driver, extra_args: &[&str]) -> Client {
    let mut args = vec![
        "--headless".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--hide-scrollbars".into(),
        "--window-size=1400,940".into(),
        format!("--user-data-dir={}", driver.profile.display()),
    ];
    args.extend(extra_args.iter().map(|a| a.to_string()));
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    within(
        60,
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&driver.url),
    )
    .await
    .expect("chromedriver opens a chromium session")
}

/// A webhook receiver: `POST /webhooks/github` counts and answers JSON, `POST /api/orders`
/// creates, `/missing` is a 404, anything else a small JSON answer.
async fn webhook_app() -> (u16, Arc<AtomicUsize>) {
    let hooks = Arc::new(AtomicUsize::new(0));
    let counter = hooks.clone();
    let port = common::app(move |req| {
        let counter = counter.clone();
        async move {
            let path = req.uri().path().to_string();
            let (status, body) = match (req.method().as_str(), path.as_str()) {
                ("POST", "/webhooks/github") => {
                    counter.fetch_add(1, Ordering::SeqCst);
                    (StatusCode::OK, json!({"ok": true, "handled": "push"}))
                }
                ("POST", "/api/orders") => (
                    StatusCode::CREATED,
                    json!({"id": 1042, "status": "created"}),
                ),
                (_, "/missing") => (StatusCode::NOT_FOUND, json!({"error": "no such page"})),
                _ => (StatusCode::OK, json!({"path": path})),
            };
            Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, "application/json")
                .body(full_body(body.to_string()))
                .unwrap()
        }
    })
    .await;
    (port, hooks)
}

const PUSH: &str = r#"{"event":"push","ref":"refs/heads/main","commits":[{"id":"9f2c1e7","message":"Fix the webhook signature check"}],"pusher":{"name":"octocat"}}"#;

/// Waits until the page shows `n` rows; returns their texts. The page re-renders the list on
/// every change, so an element found may be replaced before it is read: then read again.
async fn rows(c: &Client, n: usize) -> Vec<String> {
    within(20, async {
        loop {
            if let Ok(found) = c.find_all(Locator::Css("#rows .row")).await {
                if found.len() == n {
                    let mut texts = Vec::new();
                    for row in &found {
                        match row.text().await {
                            Ok(text) => texts.push(text),
                            Err(_) => break,
                        }
                    }
                    if texts.len() == n {
                        return texts;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// Clicks what `at` finds; again when the page replaced it before the click landed (a click
/// on a replaced element fails and does nothing).
async fn click(c: &Client, at: Locator<'_>) {
    within(20, async {
        loop {
            if let Ok(el) = c.find(at).await {
                if el.click().await.is_ok() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// Waits until the element at `css` has text containing `needle`; returns the text.
async fn text_of(c: &Client, css: &str, needle: &str) -> String {
    within(20, async {
        loop {
            if let Ok(el) = c.find(Locator::Css(css)).await {
                if let Ok(text) = el.text().await {
                    if text.contains(needle) {
                        return text;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

async fn screenshot(c: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("UNDERPASS_SCREENSHOTS") {
        let png = c.screenshot().await.unwrap();
        std::fs::write(std::path::Path::new(&dir).join(name), png).unwrap();
    }
}

async fn visit(t: &Inspected, method: Method, target: &str, body: &str) {
    let headers: &[(&str, &str)] = if body.is_empty() {
        &[]
    } else {
        &[
            ("content-type", "application/json"),
            ("x-github-event", "push"),
        ]
    };
    request(
        t.addr,
        method,
        HOOK_HOST,
        target,
        headers,
        Bytes::from(body.to_string()),
    )
    .await;
}

#[tokio::test]
async fn the_page_shows_requests_live_pretty_prints_json_and_replays() {
    let (app, hooks) = webhook_app().await;
    let t = inspected(app, &[]).await;
    let d = driver("live").await;
    let c = browser(&d, &[]).await;
    c.goto(&format!("http://{}/", t.inspect)).await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#live[data-state=\"live\"]"))
        .await
        .expect("the page connects to the live event stream");
    assert!(rows(&c, 0).await.is_empty());
    let tunnel = text_of(&c, "#tunnels", &t.public).await;
    assert!(tunnel.contains(&format!("127.0.0.1:{app}")), "{tunnel}");

    // Rows appear as requests go through, without a reload.
    visit(&t, Method::GET, "/health", "").await;
    rows(&c, 1).await;
    visit(&t, Method::POST, "/webhooks/github", PUSH).await;
    visit(&t, Method::POST, "/api/orders", r#"{"sku":"tea","qty":2}"#).await;
    visit(
        &t,
        Method::PUT,
        "/api/users/7?notify=1",
        r#"{"name":"Ada","lang":"rust"}"#,
    )
    .await;
    visit(&t, Method::DELETE, "/api/sessions/42", "").await;
    visit(&t, Method::GET, "/missing", "").await;
    let shown = rows(&c, 6).await;
    let newest = &shown[0];
    assert!(
        newest.contains("/missing") && newest.contains("404"),
        "{newest}"
    );

    // Open the webhook: its JSON body is pretty-printed.
    click(
        &c,
        Locator::XPath(
            "//li[contains(@class,'row')][.//span[@class='path' and text()='/webhooks/github']]",
        ),
    )
    .await;
    text_of(&c, "#d-path", "/webhooks/github").await;
    let pretty = text_of(
        &c,
        ".body-card[data-side=\"request\"] pre.json",
        "\"event\"",
    )
    .await;
    assert!(
        pretty.starts_with("{\n  \"event\": \"push\",\n  \"ref\": \"refs/heads/main\","),
        "{pretty}"
    );
    let detail = c
        .find(Locator::Id("detail"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !detail.contains("null") && !detail.contains("undefined"),
        "{detail}"
    );
    let key = text_of(
        &c,
        ".body-card[data-side=\"request\"] pre.json .tok-key",
        "event",
    )
    .await;
    assert_eq!(key, "\"event\"", "keys are coloured");
    screenshot(&c, "inspector-light.png").await;

    // Replay: the app is hit again and a new row, marked as a replay, appears.
    assert_eq!(hooks.load(Ordering::SeqCst), 1);
    click(&c, Locator::Id("replay")).await;
    let shown = rows(&c, 7).await;
    within(20, async {
        while hooks.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let replayed = &shown[0];
    assert!(
        replayed.contains("/webhooks/github") && replayed.contains("replay"),
        "{replayed}"
    );
    // The page moved to the replay, whose answer it shows.
    text_of(&c, ".d-meta", "replay of").await;
    click(&c, Locator::Id("tab-response")).await;
    text_of(
        &c,
        ".body-card[data-side=\"response\"] pre.json",
        "\"handled\": \"push\"",
    )
    .await;

    // Filters narrow the list in the page.
    let status = c.find(Locator::Id("f-status")).await.unwrap();
    status.select_by_value("4").await.unwrap();
    let filtered = rows(&c, 1).await;
    assert!(filtered[0].contains("/missing"), "{filtered:?}");
    status.select_by_value("").await.unwrap();
    c.find(Locator::Id("f-path"))
        .await
        .unwrap()
        .send_keys("orders")
        .await
        .unwrap();
    rows(&c, 1).await;

    // Clear empties the page and the API.
    click(&c, Locator::Id("clear")).await;
    rows(&c, 0).await;
    let list = api_get(t.inspect, "/api/requests/http").await;
    assert!(list["requests"].as_array().unwrap().is_empty());
    c.close().await.unwrap();
}

#[tokio::test]
async fn edit_and_replay_from_the_page_and_the_dark_theme() {
    let (app, _hooks) = webhook_app().await;
    let t = inspected(app, &[]).await;
    visit(&t, Method::POST, "/api/orders", r#"{"sku":"tea","qty":2}"#).await;
    visit(&t, Method::POST, "/webhooks/github", PUSH).await;
    visit(&t, Method::GET, "/missing", "").await;
    let d = driver("dark").await;
    // The system asks for dark: the page follows prefers-color-scheme.
    let c = browser(
        &d,
        &[
            "--blink-settings=preferredColorScheme=0",
            "--force-dark-mode",
        ],
    )
    .await;
    c.goto(&format!("http://{}/", t.inspect)).await.unwrap();
    rows(&c, 3).await;
    let background = c
        .execute(
            "return getComputedStyle(document.body).backgroundColor",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(background, "rgb(14, 17, 23)", "dark theme background");
    // Newest first: the webhook is the second row.
    click(&c, Locator::Css("#rows .row:nth-child(2)")).await;
    text_of(
        &c,
        ".body-card[data-side=\"request\"] pre.json",
        "\"event\"",
    )
    .await;
    screenshot(&c, "inspector-dark.png").await;

    click(&c, Locator::Id("edit")).await;
    let method = c.find(Locator::Id("e-method")).await.unwrap();
    method.clear().await.unwrap();
    method.send_keys("PUT").await.unwrap();
    let path = c.find(Locator::Id("e-path")).await.unwrap();
    path.clear().await.unwrap();
    path.send_keys("/webhooks/edited").await.unwrap();
    let body = c.find(Locator::Id("e-body")).await.unwrap();
    body.clear().await.unwrap();
    body.send_keys(r#"{"edited":true}"#).await.unwrap();
    click(&c, Locator::Id("e-send")).await;
    let shown = rows(&c, 4).await;
    let newest = &shown[0];
    assert!(
        newest.contains("PUT") && newest.contains("/webhooks/edited"),
        "{newest}"
    );
    let replay = wait_request(t.inspect, |r| {
        r["request"]["uri"] == "/webhooks/edited" && r["state"] == "complete"
    })
    .await;
    assert_eq!(replay["request"]["method"], "PUT");
    assert_eq!(raw_body(&replay["request"]), br#"{"edited":true}"#);
    let saw: Value = serde_json::from_slice(&raw_body(&replay["response"])).unwrap();
    assert_eq!(
        saw["path"], "/webhooks/edited",
        "the app got the edited request"
    );
    c.close().await.unwrap();
}

#[tokio::test]
async fn a_streaming_answer_grows_in_the_open_detail() {
    // An SSE app whose events the test sends one at a time, the stream staying open between.
    let feed: Arc<std::sync::Mutex<Option<tokio::sync::mpsc::Sender<Bytes>>>> = Arc::default();
    let slot = feed.clone();
    let app = common::app(move |_req| {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        *slot.lock().unwrap() = Some(tx);
        async move {
            Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .body(http_body_util::BodyExt::boxed(ChanBody(rx)))
                .unwrap()
        }
    })
    .await;
    let t = inspected(app, &[]).await;
    let mut live = get_live(t.addr, HOOK_HOST, "/events").await;
    let send = |event: &'static str| {
        let tx = feed
            .lock()
            .unwrap()
            .clone()
            .expect("the app got the request");
        async move { tx.send(Bytes::from_static(event.as_bytes())).await.unwrap() }
    };
    send("data: first\n\n").await;
    assert_eq!(next_chunk(live.body_mut()).await, "data: first\n\n");

    let d = driver("stream").await;
    let c = browser(&d, &[]).await;
    c.goto(&format!("http://{}/", t.inspect)).await.unwrap();
    rows(&c, 1).await;
    click(&c, Locator::Css("#rows .row")).await;
    click(&c, Locator::Id("tab-response")).await;
    text_of(&c, ".body-card[data-side=\"response\"] pre", "data: first").await;
    // No event announces a chunk: the open detail looks again by itself while it streams.
    send("data: second\n\n").await;
    assert_eq!(next_chunk(live.body_mut()).await, "data: second\n\n");
    let body = text_of(&c, ".body-card[data-side=\"response\"] pre", "data: second").await;
    assert!(body.contains("data: first"), "{body}");
    text_of(&c, ".body-card[data-side=\"response\"]", "Still streaming").await;
    feed.lock().unwrap().take();
    c.close().await.unwrap();
}
