//! The web console: how its files are served (any HTTP client), and what a person does with it
//! in a real browser (headless Chromium over WebDriver, `browser`). The browser test says it
//! was skipped, and why, where Chromium is not installed; .ci/run installs it and sets
//! KUBEGATE_REQUIRE_BROWSER=1 so that it cannot be skipped there.

use std::time::Duration;

use serde_json::json;

use crate::browser::Browser;
use crate::fake_kube::Kind;
use crate::helpers::{Options, claims, eventually, hs_token, ns, spawn_app, spawn_app_with};

#[tokio::test]
async fn the_console_is_served_with_hashed_cached_assets_and_a_strict_policy() {
    let app = spawn_app().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = http
        .get(format!("{}/ui", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 308);
    assert_eq!(res.headers()["location"], "/ui/");

    let res = http
        .get(format!("{}/ui/", app.address))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(h["content-encoding"], "gzip");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let csp = h["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    let etag = h["etag"].to_str().unwrap().to_owned();
    let page = {
        use std::io::Read as _;
        let zipped = res.bytes().await.unwrap();
        let mut page = String::new();
        flate2::read::GzDecoder::new(&zipped[..])
            .read_to_string(&mut page)
            .unwrap();
        page
    };
    // Nothing inline: scripts and styles come from the assets only.
    assert!(!page.contains("<style") && !page.contains(" style=") && !page.contains(" onclick="));
    let assets: Vec<&str> = page
        .split(['"', '\''])
        .filter(|s| s.starts_with("assets/"))
        .collect();
    assert!(
        assets.iter().any(|a| a.ends_with(".js")) && assets.iter().any(|a| a.ends_with(".css")),
        "{page}"
    );
    for script in page.split("<script").skip(1) {
        assert!(
            script
                .trim_start()
                .starts_with("type=\"module\" src=\"assets/")
        );
    }

    // The page again: not modified.
    let res = http
        .get(format!("{}/ui/", app.address))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);

    // Assets: named by their digest, cached for good, plain when gzip is not accepted.
    for asset in &assets {
        let res = http
            .get(format!("{}/ui/{asset}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{asset}");
        assert_eq!(
            res.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert!(res.headers().get("content-encoding").is_none());
        assert!(res.headers().contains_key("content-security-policy"));
        let digest = asset.rsplit('.').nth(1).unwrap();
        assert!(
            res.headers()["etag"].to_str().unwrap().contains(digest),
            "{asset}"
        );
        assert!(!res.bytes().await.unwrap().is_empty());
    }
    let res = http
        .get(format!("{}/ui/assets/app.0000.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(
        res.headers()["content-type"],
        "application/problem+json",
        "an unknown asset is a problem like any unknown path"
    );
    let res = http
        .post(format!("{}/ui/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);

    // Elsewhere and off.
    let moved = spawn_app_with(Options {
        config: Box::new(|c| c.console_path = "/console".into()),
        ..Options::default()
    })
    .await;
    let res = http
        .get(format!("{}/console/", moved.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = http
        .get(format!("{}/ui/", moved.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let off = spawn_app_with(Options {
        config: Box::new(|c| c.console = false),
        ..Options::default()
    })
    .await;
    let res = http
        .get(format!("{}/ui/", off.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

async fn browser_or_skip() -> Option<Browser> {
    match Browser::start().await {
        Ok(b) => Some(b),
        Err(why) => {
            assert!(
                std::env::var_os("KUBEGATE_REQUIRE_BROWSER").is_none(),
                "a browser is required here: {why}"
            );
            eprintln!("SKIPPED: the console's browser test: {why}");
            None
        }
    }
}

/// Where the screenshots of a run go (`docs/` keeps the current ones).
fn save_screenshot(name: &str, png: &[u8]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// What the page keeps beyond its memory: local and session storage, and cookies.
async fn stored(browser: &Browser) -> serde_json::Value {
    browser
        .run(
            "arguments[0](JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie)",
            vec![],
        )
        .await
}

async fn sign_in(browser: &Browser, address: &str, token: &str) {
    browser.goto(&format!("{address}/ui/")).await;
    browser.fill("#token", token).await;
    browser.click("form button[type=submit]").await;
    browser.wait_for("h1", "Clusters").await;
}

#[tokio::test]
async fn in_a_browser_a_person_watches_a_rollout_scales_rolls_back_and_sees_it_audited() {
    let Some(browser) = browser_or_skip().await else {
        return;
    };
    let app = spawn_app().await;
    app.deploy_web().await;
    let (status, body) = app
        .put(
            &ns("/deployments/web/image"),
            json!({"image": "nginx:2", "reason": "new release"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let set_image = body["auditId"].as_str().unwrap().to_owned();
    app.fake("dev").settle().await;

    sign_in(&browser, &app.address, &app.token).await;
    browser.wait_for("td", "v1.").await;
    save_screenshot("clusters", &browser.screenshot().await);
    browser.click("a[href='#/c/dev']").await;
    browser.click("a[href='#/c/dev/n/default']").await;
    browser.wait_for("tbody tr", "rolled out").await;
    browser.wait_for("tbody tr", "nginx:2").await;
    save_screenshot("deployments", &browser.screenshot().await);

    // The deployment: its live rollout state, revisions, who changed it and why.
    browser.click("a[href='#/c/dev/n/default/d/web']").await;
    browser.wait_for("#rollout", "rolled out").await;
    browser.wait_for("td", "new release").await;
    browser.wait_for("#revision", "2").await;
    // Revision 2 names the change behind it: who, why, and its audit entry.
    browser.wait_for("#revisions tbody tr", "nginx:2").await;
    browser
        .wait_for(
            &format!("#revisions tbody tr:first-child a[href='#/audit/{set_image}']"),
            "#",
        )
        .await;
    browser
        .wait_for("#revisions tbody tr:first-child", "root")
        .await;
    browser
        .wait_for("#revisions tbody tr:first-child", "set_image (new release)")
        .await;

    // Scale: the dry run's answer first, then the change.
    browser.fill("#replicas", "3").await;
    browser.click("#scale").await;
    browser
        .wait_for("#confirm-body", "from 1 to 3 replicas")
        .await;
    assert_eq!(
        app.fake("dev")
            .get(Kind::Deployment, "default", "web")
            .unwrap()["spec"]["replicas"],
        1,
        "the dry run changed nothing"
    );
    browser.click("#confirm-go").await;
    browser.wait_for("[role=status]", "Done").await;
    eventually("3 replicas", Duration::from_secs(10), async || {
        let d = app.fake("dev").get(Kind::Deployment, "default", "web")?;
        (d["spec"]["replicas"] == 3).then_some(())
    })
    .await;
    app.fake("dev").settle().await;

    // Roll back to revision 1 (nginx:1): it becomes revision 3.
    browser.wait_for("#revision", "2").await;
    browser.click("button[data-rollback='1']").await;
    browser.wait_for("#confirm-body", "nginx:1").await;
    save_screenshot("confirm-rollback", &browser.screenshot().await);
    browser.click("#confirm-go").await;
    browser.wait_for("[role=status]", "Done").await;
    browser.wait_for("#revision", "3").await;
    browser.wait_for("#rollout", "rolled out").await;
    let image = app
        .fake("dev")
        .get(Kind::Deployment, "default", "web")
        .unwrap()["spec"]["template"]["spec"]["containers"][0]["image"]
        .clone();
    assert_eq!(image, "nginx:1");
    save_screenshot("deployment", &browser.screenshot().await);

    // The audit view: both changes, and the chain verified.
    browser.click("nav a[href='#/audit']").await;
    browser.wait_for("tbody tr", "rollback").await;
    browser.wait_for("tbody tr", "scale").await;
    browser.wait_for("#chain", "Audit chain intact").await;
    save_screenshot("audit", &browser.screenshot().await);
    browser.fill("#f-action", "rollback").await;
    browser.click(".filters button[type=submit]").await;
    eventually(
        "only rollback entries",
        Duration::from_secs(10),
        async || {
            let rows = browser.all("tbody tr").await;
            let mut texts = Vec::new();
            for r in &rows {
                texts.push(browser.text(r).await);
            }
            (!texts.is_empty() && texts.iter().all(|t| t.contains("rollback"))).then_some(())
        },
    )
    .await;

    // An exec session's recording replays in the page.
    let pod = crate::exec::pod_of(&app, "shell", "busybox:1").await;
    let (status, body) = crate::exec::exec(
        &app,
        &pod,
        json!({"command": ["sh", "-c", "echo hello from the pod"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let id = body["auditId"].as_str().unwrap();
    browser
        .goto(&format!("{}/ui/#/audit/{id}", app.address))
        .await;
    browser.wait_for("#recording", "hello from the pod").await;
    // Replay starts from an empty screen and plays the output again.
    let at_start = browser
        .run(
            "const done = arguments[0]; document.getElementById('replay').click(); \
             done(document.getElementById('recording').textContent)",
            vec![],
        )
        .await;
    assert_eq!(at_start, "");
    browser.wait_for("#recording", "hello from the pod").await;

    // A pod's logs, followed: a line the container prints later shows up.
    app.fake("dev")
        .append_log("default", &pod, "web", "first line");
    browser
        .goto(&format!("{}/ui/#/c/dev/n/default/p/{pod}", app.address))
        .await;
    browser.wait_for("#logs", "first line").await;
    app.fake("dev")
        .append_log("default", &pod, "web", "a later line");
    browser.wait_for("#logs", "a later line").await;

    // Services with their type and ports; the namespace's events.
    let (status, body) = app
        .post(
            &ns("/deployments/web/expose"),
            json!({"port": 80, "type": "NodePort"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    browser
        .goto(&format!("{}/ui/#/c/dev/n/default/services", app.address))
        .await;
    browser.wait_for("tbody tr", "NodePort").await;
    browser.click("a[href='#/c/dev/n/default/events']").await;
    browser.wait_for("h1", "Events in default").await;

    // Signing out forgets the token: the page asks for one again.
    browser.click("#signout").await;
    browser.wait_for("h1", "Sign in").await;
    let kept = stored(&browser).await;
    assert_eq!(kept, "{}{}", "nothing of the token is stored");

    // Phone width still reads.
    browser.set_size(390, 844).await;
    sign_in(&browser, &app.address, &app.token).await;
    browser
        .goto(&format!("{}/ui/#/c/dev/n/default/d/web", app.address))
        .await;
    browser.wait_for("#rollout", "rolled out").await;
    save_screenshot("deployment-phone", &browser.screenshot().await);
}

#[tokio::test]
async fn in_a_browser_a_viewer_sees_no_buttons_and_a_forged_request_is_refused() {
    let Some(browser) = browser_or_skip().await else {
        return;
    };
    let app = spawn_app().await;
    app.deploy_web().await;
    let viewer = hs_token(&claims("vera", &["viewer@dev/default"]));
    sign_in(&browser, &app.address, &viewer).await;
    browser.wait_for("#who", "vera").await;
    browser
        .goto(&format!("{}/ui/#/c/dev/n/default/d/web", app.address))
        .await;
    browser.wait_for("#rollout", "rolled out").await;
    browser.wait_for("h2", "Revisions").await;
    for button in ["#scale", "#set-image", "#restart", "button[data-rollback]"] {
        assert!(browser.all(button).await.is_empty(), "{button} shown");
    }
    // The page's own origin, the viewer's token, a scale it would not offer: refused.
    let status = browser
        .run(
            "const [token, done] = arguments; \
             fetch('/v1/clusters/dev/namespaces/default/deployments/web/replicas', {method: 'PUT', \
               headers: {'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json'}, \
               body: JSON.stringify({replicas: 5})}).then(r => done(r.status), e => done(String(e)))",
            vec![json!(viewer)],
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        app.fake("dev")
            .get(Kind::Deployment, "default", "web")
            .unwrap()["spec"]["replicas"],
        1
    );
}

/// A stand-in OIDC issuer for the console's sign-in: discovery, JWKS, an authorization endpoint
/// that signs `subject` in at once (a real one would ask first) and a token endpoint that
/// checks the PKCE verifier and the redirect before it hands out an ID token.
struct Issuer {
    url: String,
    /// Codes handed out and redeemed.
    redeemed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _handle: actix_web::dev::ServerHandle,
}

async fn issuer(
    client_id: &'static str,
    subject: &'static str,
    roles: &'static [&'static str],
) -> Issuer {
    use actix_web::{HttpRequest, HttpResponse, web};
    use base64::Engine as _;
    use sha2::Digest as _;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys");
    let jwks: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{keys}/jwks-rsa1.json")).unwrap()).unwrap();
    let signing = jsonwebtoken::EncodingKey::from_rsa_pem(
        &std::fs::read(format!("{keys}/rsa1.key")).unwrap(),
    )
    .unwrap();
    /// A code handed out: its challenge, nonce and redirect URI.
    type Grant = (String, String, String);
    let codes: Arc<Mutex<HashMap<String, Grant>>> = Arc::default();
    let redeemed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (b, r) = (base.clone(), redeemed.clone());
    let server = actix_web::HttpServer::new(move || {
        let (base, codes, jwks, signing, redeemed) = (
            b.clone(),
            codes.clone(),
            jwks.clone(),
            signing.clone(),
            r.clone(),
        );
        let discovery = {
            let base = base.clone();
            move || {
                let base = base.clone();
                async move {
                    HttpResponse::Ok().json(json!({
                        "issuer": base,
                        "jwks_uri": format!("{base}/jwks"),
                        "authorization_endpoint": format!("{base}/authorize"),
                        "token_endpoint": format!("{base}/token"),
                    }))
                }
            }
        };
        let authorize = {
            let codes = codes.clone();
            move |q: web::Query<HashMap<String, String>>| {
                let codes = codes.clone();
                async move {
                    let ok = q.get("response_type").map(String::as_str) == Some("code")
                        && q.get("client_id").map(String::as_str) == Some(client_id)
                        && q.get("code_challenge_method").map(String::as_str) == Some("S256")
                        && q.get("scope")
                            .is_some_and(|s| s.split(' ').any(|s| s == "openid"));
                    let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
                    if !ok || redirect.is_empty() {
                        return HttpResponse::BadRequest().body("bad authorization request");
                    }
                    let code = uuid::Uuid::new_v4().simple().to_string();
                    codes.lock().unwrap().insert(
                        code.clone(),
                        (
                            q.get("code_challenge").cloned().unwrap_or_default(),
                            q.get("nonce").cloned().unwrap_or_default(),
                            redirect.clone(),
                        ),
                    );
                    let state = q.get("state").cloned().unwrap_or_default();
                    HttpResponse::Found()
                        .insert_header((
                            "location",
                            format!("{redirect}?code={code}&state={state}"),
                        ))
                        .finish()
                }
            }
        };
        let token = move |form: web::Form<HashMap<String, String>>| {
            let (base, codes, signing, redeemed) = (
                base.clone(),
                codes.clone(),
                signing.clone(),
                redeemed.clone(),
            );
            async move {
                let cors = ("access-control-allow-origin", "*");
                let found = form
                    .get("code")
                    .and_then(|c| codes.lock().unwrap().remove(c));
                let verifier = form.get("code_verifier").cloned().unwrap_or_default();
                let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(sha2::Sha256::digest(verifier.as_bytes()));
                let Some((expected, nonce, redirect)) = found.filter(|(expected, _, redirect)| {
                    *expected == challenge
                        && form.get("redirect_uri") == Some(redirect)
                        && form.get("client_id").map(String::as_str) == Some(client_id)
                        && form.get("grant_type").map(String::as_str) == Some("authorization_code")
                }) else {
                    return HttpResponse::BadRequest()
                        .insert_header(cors)
                        .json(json!({"error": "invalid_grant"}));
                };
                let _ = (expected, redirect);
                redeemed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
                header.kid = Some("rsa1".into());
                let now = crate::helpers::now();
                let id_token = jsonwebtoken::encode(
                    &header,
                    &json!({"iss": base, "aud": client_id, "sub": subject, "nonce": nonce,
                            "iat": now, "exp": now + 600, "kubegate_roles": roles}),
                    &signing,
                )
                .unwrap();
                HttpResponse::Ok()
                    .insert_header(cors)
                    .json(json!({"id_token": id_token, "token_type": "Bearer", "expires_in": 600}))
            }
        };
        let jwks = move || {
            let jwks = jwks.clone();
            async move { HttpResponse::Ok().json(jwks) }
        };
        actix_web::App::new()
            .route(
                "/.well-known/openid-configuration",
                web::get().to(discovery),
            )
            .route("/jwks", web::get().to(jwks))
            .route("/authorize", web::get().to(authorize))
            .route("/token", web::post().to(token))
            .default_service(web::to(|req: HttpRequest| async move {
                HttpResponse::NotFound().body(req.path().to_owned())
            }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Issuer {
        url: base,
        redeemed,
        _handle: handle,
    }
}

#[tokio::test]
async fn in_a_browser_a_person_signs_in_through_the_oidc_issuer_with_pkce() {
    let Some(browser) = browser_or_skip().await else {
        return;
    };
    let idp = issuer("kubegate-console", "olivia", &["deployer@dev/default"]).await;
    let issuer_url = idp.url.clone();
    let app = spawn_app_with(Options {
        auth: Box::new({
            let issuer_url = issuer_url.clone();
            move |a| {
                a.oidc_issuer = Some(issuer_url.clone());
                a.token.jwt_issuer = issuer_url;
                a.token.jwt_audience.push("kubegate-console".into());
            }
        }),
        config: Box::new(|c| c.console_oidc_client_id = Some("kubegate-console".into())),
        ..Options::default()
    })
    .await;
    // The issuer is the only one now: an admin token of its own (HS256, the test secret).
    let mut admin = claims("root", &["admin"]);
    admin["iss"] = json!(issuer_url);
    let res = app
        .send_as(
            Some(&hs_token(&admin)),
            reqwest::Method::PUT,
            &ns("/deployments/web"),
            Some(crate::helpers::deploy_body("nginx:1", Some(1))),
        )
        .await;
    assert_eq!(res.status(), 201);
    app.fake("dev").settle().await;

    // The page may talk to the issuer's origin (its token endpoint) and nowhere else.
    let res = app
        .client
        .get(format!("{}/ui/config.json", app.address))
        .send()
        .await
        .unwrap();
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains(&format!("connect-src 'self' {issuer_url};")),
        "{csp}"
    );
    let settings: serde_json::Value = res.json().await.unwrap();
    assert_eq!(settings["oidc"]["clientId"], "kubegate-console");
    assert_eq!(
        settings["oidc"]["tokenEndpoint"],
        format!("{issuer_url}/token")
    );

    // Straight to a deployment's page: the issuer, back, signed in, on that page.
    browser
        .goto(&format!("{}/ui/#/c/dev/n/default/d/web", app.address))
        .await;
    browser.click("#sso").await;
    browser.wait_for("#who", "olivia").await;
    browser.wait_for("h1", "Deployment web").await;
    assert_eq!(idp.redeemed.load(std::sync::atomic::Ordering::SeqCst), 1);
    // A deployer: the scale button is there, and the token works for it.
    browser.wait_for("#scale", "Scale").await;
    let url = browser.run("arguments[0](location.href)", vec![]).await;
    assert_eq!(
        url,
        format!("{}/ui/#/c/dev/n/default/d/web", app.address),
        "the code and state are gone from the address"
    );
    let kept = stored(&browser).await;
    assert_eq!(kept, "{}{}", "nothing of the sign-in is kept");

    // A return this page did not start (a forged or replayed redirect) signs nobody in.
    browser.click("#signout").await;
    browser
        .goto(&format!("{}/ui/?code=stolen&state=forged", app.address))
        .await;
    browser
        .wait_for("[role=alert]", "was not started here")
        .await;
    assert!(browser.all("#nav:not([hidden])").await.is_empty());
    assert_eq!(idp.redeemed.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn in_a_browser_on_the_real_control_plane_a_rollout_is_followed_to_its_end() {
    let Some(plane) = crate::control_plane::or_skip(
        "in_a_browser_on_the_real_control_plane_a_rollout_is_followed_to_its_end",
    ) else {
        return;
    };
    let Some(browser) = browser_or_skip().await else {
        return;
    };
    let app = spawn_app_with(Options {
        kubeconfig: Some(plane.kubeconfig()),
        cluster_timeout: Duration::from_secs(20),
        ..Options::default()
    })
    .await;
    let ns = plane.namespace("console").await;
    let web = format!("/v1/clusters/real/namespaces/{ns}/deployments/web");
    let (status, body) = app
        .put(
            &web,
            json!({"containers": [{"name": "web", "image": plane.image(1)}], "replicas": 1}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    sign_in(&browser, &app.address, &app.token).await;
    browser
        .goto(&format!("{}/ui/#/c/real/n/{ns}/d/web", app.address))
        .await;
    // The real controllers and node bring it up while the page follows the rollout stream.
    browser.wait_for("#rollout", "rolled out").await;
    browser.wait_for("#replicas-now", "1 ready").await;

    browser.fill("#replicas", "2").await;
    browser.click("#scale").await;
    browser
        .wait_for("#confirm-body", "from 1 to 2 replicas")
        .await;
    browser.click("#confirm-go").await;
    browser.wait_for("[role=status]", "Done").await;
    browser.wait_for("#replicas-now", "2 ready").await;
    browser.wait_for("#rollout", "rolled out").await;

    browser.fill("#image", &plane.image(2)).await;
    browser.click("#set-image").await;
    browser
        .wait_for("#confirm-body", "a new revision rolls out")
        .await;
    browser.click("#confirm-go").await;
    browser.wait_for("#revision", "2").await;
    browser.wait_for("#rollout", "rolled out").await;
    browser
        .wait_for("#replicas-now", "2 ready, 2 up to date")
        .await;

    browser.click("button[data-rollback='1']").await;
    browser
        .wait_for("#confirm-body", "revision 1's template")
        .await;
    browser.click("#confirm-go").await;
    browser.wait_for("#revision", "3").await;
    browser.wait_for("#rollout", "rolled out").await;
    // The real controller carried each change's audit id onto its ReplicaSet (read again: the
    // controller renumbers the revisions a moment after the Deployment's own).
    browser
        .goto(&format!("{}/ui/?again#/c/real/n/{ns}/d/web", app.address))
        .await;
    browser.fill("#token", &app.token).await;
    browser.click("form button[type=submit]").await;
    browser
        .wait_for("#revisions tbody tr:first-child", "rollback")
        .await;
    browser
        .wait_for("#revisions tbody tr:nth-child(2)", "set_image")
        .await;
    save_screenshot("real-deployment", &browser.screenshot().await);

    // What the page says is what the cluster holds.
    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(plane.client().await, &ns);
    let d = deployments.get("web").await.unwrap();
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    assert_eq!(
        spec.template.spec.unwrap().containers[0].image.as_deref(),
        Some(plane.image(1).as_str())
    );
    assert_eq!(
        d.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
        "3"
    );
    assert_eq!(d.status.unwrap().ready_replicas, Some(2));
}
