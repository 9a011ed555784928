//! Identity and roles: a table of hostile and edge-case tokens (each must be refused without any
//! cluster call), JWKS rotation, the policy file and its reload, whoami and access reviews.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{
    Options, TEST_AUDIENCE, TEST_ISSUER, TEST_SECRET, TestApp, claims, counter, eventually,
    hs_token, now, spawn_app, spawn_app_with,
};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys");
const PROBE: &str = "/v1/clusters/dev/namespaces/default/deployments";

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{KEYS}/{name}")).unwrap()
}

fn sign(alg: Algorithm, private: &str, kid: Option<&str>, claims: &Value) -> String {
    let pem = key_file(private);
    let key = match alg {
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::PS256 => {
            EncodingKey::from_rsa_pem(&pem).unwrap()
        }
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem).unwrap(),
        _ => unreachable!(),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// A token from raw parts: header JSON, claims JSON, signature bytes (HMAC'ed with `secret` if given).
fn raw(header: &Value, claims: &Value, secret: Option<&[u8]>) -> String {
    let signing_input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig = match secret {
        Some(s) => {
            use hmac::Mac;
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(s).unwrap();
            mac.update(signing_input.as_bytes());
            B64.encode(mac.finalize().into_bytes())
        }
        None => String::new(),
    };
    format!("{signing_input}.{sig}")
}

/// A stand-in identity provider serving a JWKS (and an OIDC discovery document), counting fetches.
struct Idp {
    url: String,
    jwks: Arc<std::sync::Mutex<Value>>,
    hits: Arc<AtomicUsize>,
    _handle: actix_web::dev::ServerHandle,
}

async fn idp(initial: &str) -> Idp {
    let jwks = Arc::new(std::sync::Mutex::new(
        serde_json::from_slice::<Value>(&key_file(initial)).unwrap(),
    ));
    let hits = Arc::new(AtomicUsize::new(0));
    let (j, h) = (jwks.clone(), hits.clone());
    let server = actix_web::HttpServer::new(move || {
        let (j, h) = (j.clone(), h.clone());
        actix_web::App::new().default_service(actix_web::web::to(
            move |req: actix_web::HttpRequest| {
                let (j, h) = (j.clone(), h.clone());
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    if req.path().ends_with("openid-configuration") {
                        let base = format!("http://{}", req.connection_info().host());
                        return actix_web::HttpResponse::Ok()
                            .json(json!({"issuer": base, "jwks_uri": format!("{base}/jwks")}));
                    }
                    actix_web::HttpResponse::Ok().json(j.lock().unwrap().clone())
                }
            },
        ))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let url = format!("http://127.0.0.1:{}", server.addrs()[0].port());
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    Idp {
        url,
        jwks,
        hits,
        _handle: handle,
    }
}

/// kubegate taking its keys from the IdP's JWKS, with this refresh cooldown (and maximum age).
async fn jwks_app(provider: &Idp, cooldown: Duration, max_age: Option<Duration>) -> TestApp {
    let jwks_url = format!("{}/jwks", provider.url);
    spawn_app_with(Options {
        auth: Box::new(move |a| {
            a.jwks_url = Some(jwks_url);
            a.jwks_refresh_cooldown = cooldown;
            if let Some(age) = max_age {
                a.jwks_max_age = age;
            }
        }),
        ..Default::default()
    })
    .await
}

async fn status_with(app: &TestApp, token: Option<&str>) -> (u16, Option<String>, Value) {
    let res = app.send_as(token, reqwest::Method::GET, PROBE, None).await;
    let www = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let status = res.status().as_u16();
    (status, www, res.json().await.unwrap_or(Value::Null))
}

fn with_public_keys(a: &mut kubegate::config::AuthConfig) {
    a.jwt_public_keys = vec![
        format!("RS256={KEYS}/rsa1.pub#rsa1"),
        format!("ES256={KEYS}/ec.pub"),
        format!("EdDSA={KEYS}/ed.pub"),
    ];
    a.jwt_max_lifetime = Some(Duration::from_secs(3600));
}

#[tokio::test]
async fn hostile_and_malformed_tokens_are_refused_without_touching_a_cluster() {
    let app = spawn_app_with(Options {
        auth: Box::new(with_public_keys),
        ..Default::default()
    })
    .await;
    let fake = app.fake("dev");
    let good = claims("alice", &["admin"]);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let hs = |c: &Value| hs_token(c);
    let rsa_pub_as_secret = raw(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &good,
        Some(&key_file("rsa1.pub")),
    );
    let valid_rs = sign(Algorithm::RS256, "rsa1.key", Some("rsa1"), &good);
    let (h, p, s) = {
        let parts: Vec<&str> = valid_rs.split('.').collect();
        (
            parts[0].to_owned(),
            parts[1].to_owned(),
            parts[2].to_owned(),
        )
    };
    let flipped = format!(
        "{h}.{p}.{}{}",
        if s.starts_with('A') { "B" } else { "A" },
        &s[1..]
    );
    let es_zero = format!(
        "{}.{}.{}",
        B64.encode(json!({"alg": "ES256", "typ": "JWT"}).to_string()),
        B64.encode(good.to_string()),
        B64.encode([0u8; 64])
    );
    let attacker = idp("jwks-rsa2.json").await;
    let mut jku_header = Header::new(Algorithm::RS256);
    jku_header.jku = Some(format!("{}/jwks", attacker.url));
    jku_header.x5u = Some(format!("{}/x5u", attacker.url));
    jku_header.kid = Some("rsa1".into());
    let jku_token = jsonwebtoken::encode(
        &jku_header,
        &good,
        &EncodingKey::from_rsa_pem(&key_file("rsa2.key")).unwrap(),
    )
    .unwrap();
    let embedded_jwk: Value =
        serde_json::from_slice::<Value>(&key_file("jwks-rsa2.json")).unwrap()["keys"][0].clone();
    let jwk_token = {
        let mut header = Header::new(Algorithm::RS256);
        header.jwk = Some(serde_json::from_value(embedded_jwk).unwrap());
        jsonwebtoken::encode(
            &header,
            &good,
            &EncodingKey::from_rsa_pem(&key_file("rsa2.key")).unwrap(),
        )
        .unwrap()
    };

    let cases: Vec<(&str, String)> = vec![
        ("wrong scheme", "Basic YWxpY2U6c2VjcmV0".into()),
        // Not hex: a short token of hex letters can turn up inside the answer's random ids.
        ("one segment", "xyzzy".into()),
        ("two segments", "xyzzy.plugh".into()),
        ("four segments", format!("{valid_rs}.x")),
        ("not base64url", "a!b.c$d.e%f".into()),
        (
            "header is not JSON",
            format!(
                "{}.{}.{}",
                B64.encode("nope"),
                B64.encode(good.to_string()),
                B64.encode("sig")
            ),
        ),
        (
            "alg none",
            raw(&json!({"alg": "none", "typ": "JWT"}), &good, None),
        ),
        ("alg None", raw(&json!({"alg": "None"}), &good, None)),
        ("alg NONE", raw(&json!({"alg": "NONE"}), &good, None)),
        (
            "alg nOnE with a signature",
            format!("{}x", raw(&json!({"alg": "nOnE"}), &good, None)),
        ),
        ("HS256 keyed with the RSA public key", rsa_pub_as_secret),
        ("flipped signature", flipped),
        (
            "truncated signature",
            format!("{h}.{p}.{}", &s[..s.len() / 2]),
        ),
        ("stripped signature", format!("{h}.{p}.")),
        ("ES256 with r = s = 0", es_zero),
        (
            "HS512 is not the pinned HS256",
            raw(
                &json!({"alg": "HS512"}),
                &good,
                Some(TEST_SECRET.as_bytes()),
            ),
        ),
        (
            "RS384 with a key pinned to RS256",
            sign(Algorithm::RS384, "rsa1.key", Some("rsa1"), &good),
        ),
        (
            "PS256 with a key pinned to RS256",
            sign(Algorithm::PS256, "rsa1.key", Some("rsa1"), &good),
        ),
        (
            "unknown kid",
            sign(Algorithm::RS256, "rsa1.key", Some("someone-else"), &good),
        ),
        (
            "injected kid",
            sign(
                Algorithm::RS256,
                "rsa2.key",
                Some("../../../../etc/passwd"),
                &good,
            ),
        ),
        ("jku and x5u to an attacker's keys", jku_token),
        ("embedded jwk", jwk_token),
        (
            "unknown crit",
            raw(
                &json!({"alg": "HS256", "crit": ["exp-ext"], "exp-ext": 1}),
                &good,
                Some(TEST_SECRET.as_bytes()),
            ),
        ),
        (
            "missing exp",
            hs(&with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            })),
        ),
        (
            "expired beyond leeway",
            hs(&with(&|c| c["exp"] = json!(now() - 120))),
        ),
        (
            "exp as a string",
            hs(&with(&|c| c["exp"] = json!((now() + 600).to_string()))),
        ),
        (
            "nbf as a string",
            hs(&with(&|c| c["nbf"] = json!(now().to_string()))),
        ),
        (
            "nbf in the future",
            hs(&with(&|c| c["nbf"] = json!(now() + 300))),
        ),
        (
            "missing aud",
            hs(&with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            })),
        ),
        (
            "wrong aud",
            hs(&with(&|c| c["aud"] = json!("someone-else"))),
        ),
        ("empty aud", hs(&with(&|c| c["aud"] = json!([])))),
        ("empty aud string", hs(&with(&|c| c["aud"] = json!("")))),
        (
            "missing iss",
            hs(&with(&|c| {
                c.as_object_mut().unwrap().remove("iss");
            })),
        ),
        (
            "near-miss iss",
            hs(&with(&|c| c["iss"] = json!(format!("{TEST_ISSUER}/")))),
        ),
        (
            "iss of another case",
            hs(&with(&|c| c["iss"] = json!(TEST_ISSUER.to_uppercase()))),
        ),
        (
            "lifetime over the maximum",
            hs(&with(&|c| c["exp"] = json!(now() + 7200))),
        ),
        (
            "no iat while a maximum lifetime is set",
            hs(&with(&|c| {
                c.as_object_mut().unwrap().remove("iat");
            })),
        ),
        (
            "no subject",
            hs(&with(&|c| {
                c.as_object_mut().unwrap().remove("sub");
            })),
        ),
        (
            "oversize",
            hs(&with(&|c| c["padding"] = json!("x".repeat(9000)))),
        ),
        // PostgreSQL's text cannot hold NUL; control characters name nobody.
        (
            "NUL in the subject",
            hs(&with(&|c| c["sub"] = json!("ali\u{0}ce"))),
        ),
        (
            "a control character in a group",
            hs(&with(&|c| c["groups"] = json!(["ops", "dev\n"]))),
        ),
    ];
    for (name, token) in &cases {
        let header = if name == &"wrong scheme" {
            token.clone()
        } else {
            format!("Bearer {token}")
        };
        let res = app
            .client
            .get(format!("{}{PROBE}", app.address))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let www = res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body: Value = res.json().await.unwrap();
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(
            body["type"], "urn:kubegate:problem:unauthenticated",
            "{name}"
        );
        assert!(
            www.starts_with("Bearer realm=\"kubegate\""),
            "{name}: {www}"
        );
        if name != &"wrong scheme" {
            assert!(www.contains("error=\"invalid_token\""), "{name}: {www}");
        }
        assert!(
            !body.to_string().contains(token.as_str()),
            "{name}: the token is never echoed"
        );
    }
    assert!(
        fake.requests().is_empty(),
        "no cluster call: {:?}",
        fake.requests()
    );
    assert_eq!(
        attacker.hits.load(Ordering::SeqCst),
        0,
        "jku/x5u were not followed"
    );

    // The same shapes, valid, pass: the refusals above are about what was wrong.
    for (name, token) in [
        ("RS256", valid_rs.clone()),
        ("ES256", sign(Algorithm::ES256, "ec.key", None, &good)),
        ("EdDSA", sign(Algorithm::EdDSA, "ed.key", None, &good)),
        ("HS256", hs(&good)),
        (
            "expired within leeway",
            hs(&with(&|c| c["exp"] = json!(now() - 10))),
        ),
        (
            "nbf within leeway",
            hs(&with(&|c| c["nbf"] = json!(now() + 10))),
        ),
        (
            "one of several audiences",
            hs(&with(&|c| c["aud"] = json!(["x", "other-audience"]))),
        ),
    ] {
        let (status, _, body) = status_with(&app, Some(&token)).await;
        assert_eq!(status, 200, "{name}: {body}");
    }
}

#[tokio::test]
async fn no_token_is_a_401_with_a_bearer_challenge() {
    let app = spawn_app().await;
    for path in [
        "/v1/clusters",
        "/v1/whoami",
        "/v1/clusters/dev/nodes",
        PROBE,
    ] {
        let (status, www, body) = {
            let res = app.send_as(None, reqwest::Method::GET, path, None).await;
            let www = res
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            (
                res.status().as_u16(),
                www,
                res.json::<Value>().await.unwrap(),
            )
        };
        assert_eq!(status, 401, "{path}");
        assert_eq!(www.as_deref(), Some("Bearer realm=\"kubegate\""));
        assert_eq!(body["type"], "urn:kubegate:problem:unauthenticated");
    }
    let res = app
        .send_as(
            None,
            reqwest::Method::PUT,
            "/v1/clusters/dev/namespaces/default/deployments/web",
            Some(json!({"containers": []})),
        )
        .await;
    assert_eq!(res.status().as_u16(), 401);
    assert!(app.fake("dev").requests().is_empty());
    let (status, _) = app.get_json("/healthz").await;
    assert_eq!(status, 200, "probes need no token");
}

#[tokio::test]
async fn roles_decide_and_the_denial_names_the_missing_role() {
    let app = spawn_app_with(Options {
        clusters: vec!["dev", "prod"],
        ..Default::default()
    })
    .await;
    let fake = app.fake("dev");
    app.put(
        "/v1/clusters/dev/namespaces/default/deployments/web",
        json!({"containers": [{"name": "web", "image": "nginx:1"}]}),
    )
    .await;
    fake.settle().await;
    fake.clear_requests();

    let as_ = |roles: &[&str]| hs_token(&claims("bob", roles));
    let scale = json!({"replicas": 2});
    let path = "/v1/clusters/dev/namespaces/default/deployments/web/replicas";
    for (roles, expected) in [
        (vec![], 403),
        (vec!["Admin"], 403),
        (vec!["viewer"], 403),
        (vec!["deployer@dev/team-*"], 403),
        (vec!["deployer@prod/*"], 403),
        (vec!["auditor"], 403),
    ] {
        let res = app
            .send_as(
                Some(&as_(&roles)),
                reqwest::Method::PUT,
                path,
                Some(scale.clone()),
            )
            .await;
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        assert_eq!(status, expected, "{roles:?}: {body}");
        assert_eq!(body["type"], "urn:kubegate:problem:forbidden");
        assert_eq!(
            body["detail"],
            "scale needs the deployer role on namespace \"default\" of cluster \"dev\", and no grant gives it"
        );
    }
    let wrong_type = hs_token(
        &json!({"iss": TEST_ISSUER, "aud": TEST_AUDIENCE, "sub": "bob", "exp": now() + 60, "kubegate_roles": 7}),
    );
    assert_eq!(
        app.send_as(
            Some(&wrong_type),
            reqwest::Method::PUT,
            path,
            Some(scale.clone())
        )
        .await
        .status()
        .as_u16(),
        403
    );
    assert!(
        fake.mutations().is_empty(),
        "denied requests never reach the cluster"
    );

    for roles in [
        vec!["deployer@dev/default"],
        vec!["deployer@d?v/def*"],
        vec!["admin"],
    ] {
        let res = app
            .send_as(
                Some(&as_(&roles)),
                reqwest::Method::PUT,
                path,
                Some(scale.clone()),
            )
            .await;
        assert_eq!(res.status().as_u16(), 200, "{roles:?}");
    }
    // A deployer cannot delete; a viewer reads but only where granted.
    let res = app
        .send_as(
            Some(&as_(&["deployer"])),
            reqwest::Method::DELETE,
            "/v1/clusters/dev/namespaces/default/deployments/web",
            None,
        )
        .await;
    assert_eq!(res.status().as_u16(), 403);
    let viewer = as_(&["viewer@dev/default"]);
    assert_eq!(
        app.send_as(Some(&viewer), reqwest::Method::GET, PROBE, None)
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        app.send_as(
            Some(&viewer),
            reqwest::Method::GET,
            "/v1/clusters/dev/namespaces/kube-system/pods",
            None
        )
        .await
        .status()
        .as_u16(),
        403
    );
    assert_eq!(
        app.send_as(
            Some(&viewer),
            reqwest::Method::GET,
            "/v1/clusters/dev/nodes",
            None
        )
        .await
        .status()
        .as_u16(),
        403,
        "cluster scope needs all namespaces"
    );
    // Clusters are listed only where the caller has a grant; others are 403 whether or not they exist.
    let res = app
        .send_as(Some(&viewer), reqwest::Method::GET, "/v1/clusters", None)
        .await;
    let names: Vec<String> = res.json::<Value>().await.unwrap()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["dev"]);
    assert_eq!(
        app.send_as(
            Some(&viewer),
            reqwest::Method::GET,
            "/v1/clusters/prod",
            None
        )
        .await
        .status()
        .as_u16(),
        403
    );
    assert_eq!(
        app.send_as(
            Some(&viewer),
            reqwest::Method::GET,
            "/v1/clusters/staging",
            None
        )
        .await
        .status()
        .as_u16(),
        403
    );
}

#[tokio::test]
async fn jwks_keys_rotate_without_a_restart_and_bogus_kids_do_not_hammer_the_idp() {
    let provider = idp("jwks-rsa1.json").await;
    let app = jwks_app(&provider, Duration::from_millis(300), None).await;
    let good = claims("svc", &["viewer"]);
    let t1 = sign(Algorithm::RS256, "rsa1.key", Some("rsa1"), &good);
    let t2 = sign(Algorithm::RS256, "rsa2.key", Some("rsa2"), &good);
    assert_eq!(status_with(&app, Some(&t1)).await.0, 200);
    assert_eq!(status_with(&app, Some(&t1)).await.0, 200);
    assert_eq!(provider.hits.load(Ordering::SeqCst), 1, "keys are cached");

    // The IdP rotates: rsa2 in, rsa1 out. Once the cooldown since the last fetch is over, an
    // unknown kid triggers a refresh, and the removed key is refused.
    *provider.jwks.lock().unwrap() = serde_json::from_slice(&key_file("jwks-rsa2.json")).unwrap();
    eventually(
        "the new key to be fetched",
        Duration::from_secs(10),
        async || (status_with(&app, Some(&t2)).await.0 == 200).then_some(()),
    )
    .await;
    assert_eq!(provider.hits.load(Ordering::SeqCst), 2, "one refresh");
    eventually(
        "the removed key to be refused",
        Duration::from_secs(10),
        async || (status_with(&app, Some(&t1)).await.0 == 401).then_some(()),
    )
    .await;

    let before = provider.hits.load(Ordering::SeqCst);
    let started = std::time::Instant::now();
    for i in 0..30 {
        let bogus = sign(
            Algorithm::RS256,
            "rsa2.key",
            Some(&format!("bogus-{i}")),
            &good,
        );
        assert_eq!(status_with(&app, Some(&bogus)).await.0, 401);
    }
    // At most one fetch per cooldown (300 ms) while 30 unknown kids arrive, however slow the run.
    let windows = (started.elapsed().as_millis() / 300) as usize + 1;
    let fetches = provider.hits.load(Ordering::SeqCst) - before;
    assert!(
        fetches <= windows,
        "{fetches} fetches in {windows} cooldown windows: at most one fetch per cooldown"
    );
    assert!(fetches < 30, "not one fetch per bogus kid");
}

#[tokio::test]
async fn a_remembered_token_is_checked_again_when_the_key_set_is_due_for_a_refresh() {
    let provider = idp("jwks-rsa1.json").await;
    let app = jwks_app(
        &provider,
        Duration::from_millis(100),
        Some(Duration::from_millis(1000)),
    )
    .await;
    let t1 = sign(
        Algorithm::RS256,
        "rsa1.key",
        Some("rsa1"),
        &claims("svc", &["viewer"]),
    );
    // And a token the configured HS256 secret verifies, beside the JWKS.
    let hs = hs_token(&claims("bot", &["viewer"]));
    for token in [&t1, &t1, &t1, &hs, &hs] {
        assert_eq!(status_with(&app, Some(token)).await.0, 200);
    }
    assert!(verifications(&app).await.0 >= 2, "remembered");

    // The IdP drops rsa1 and no token with a new kid arrives: once the key set is older than
    // its maximum age, the remembered token is checked again, the set refreshed, and refused.
    *provider.jwks.lock().unwrap() = serde_json::from_slice(&key_file("jwks-rsa2.json")).unwrap();
    let refused = eventually(
        "the key set to be due for a refresh",
        Duration::from_secs(10),
        async || {
            let answer = status_with(&app, Some(&t1)).await.0;
            (answer != 200).then_some(answer)
        },
    )
    .await;
    assert_eq!(refused, 401, "the removed key is refused");
    // The JWKS changed, but the configured secret did not: its token is still remembered.
    let (remembered, _) = verifications(&app).await;
    assert_eq!(status_with(&app, Some(&hs)).await.0, 200);
    assert_eq!(verifications(&app).await.0, remembered + 1);
}

/// The `kubegate_token_verifications_total` counts: (from memory, by signature).
async fn verifications(app: &TestApp) -> (u64, u64) {
    let text = app.get("/metrics").await.text().await.unwrap();
    let count = |by: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "kubegate_token_verifications_total{{by=\"{by}\"}} "
                ))
            })
            .map_or(0, |v| v.trim().parse().unwrap())
    };
    (count("memory"), count("signature"))
}

#[tokio::test]
async fn a_token_verified_once_is_remembered_but_not_past_its_expiry() {
    let app = spawn_app_with(Options {
        auth: Box::new(|a| {
            with_public_keys(a);
            a.jwt_leeway = Duration::ZERO;
        }),
        ..Default::default()
    })
    .await;
    let mut c = claims("svc", &["viewer"]);
    c["exp"] = json!(now() + 3);
    let t = sign(Algorithm::RS256, "rsa1.key", Some("rsa1"), &c);
    assert_eq!(status_with(&app, Some(&t)).await.0, 200);
    assert_eq!(status_with(&app, Some(&t)).await.0, 200);
    assert_eq!(status_with(&app, Some(&t)).await.0, 200);
    assert_eq!(
        verifications(&app).await,
        (2, 1),
        "one signature check, then memory"
    );

    // A remembered token is refused once it expires, with the words a fresh check would use.
    let exp = c["exp"].as_u64().unwrap();
    eventually("the token to expire", Duration::from_secs(10), async || {
        (now() > exp).then_some(())
    })
    .await;
    let (status, _, body) = status_with(&app, Some(&t)).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("the token has expired"),
        "{body}"
    );

    // Nothing else is remembered: a token with a bad signature stays refused, every time.
    let mut forged = sign(
        Algorithm::RS256,
        "rsa2.key",
        Some("rsa1"),
        &claims("svc", &["viewer"]),
    );
    for _ in 0..2 {
        assert_eq!(status_with(&app, Some(&forged)).await.0, 401);
    }
    forged.push('x');
    assert_eq!(status_with(&app, Some(&forged)).await.0, 401);
    assert_eq!(verifications(&app).await, (2, 1));
}

#[tokio::test]
async fn oidc_discovery_finds_the_jwks() {
    let provider = idp("jwks-both.json").await;
    let issuer = provider.url.clone();
    let app = spawn_app_with(Options {
        auth: Box::new(move |a| {
            a.token.jwt_issuer = issuer.clone();
            a.oidc_issuer = Some(issuer);
        }),
        ..Default::default()
    })
    .await;
    let mut c = claims("svc", &["viewer"]);
    c["iss"] = json!(provider.url);
    let token = sign(Algorithm::RS256, "rsa2.key", Some("rsa2"), &c);
    let (status, _, body) = status_with(&app, Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        provider.hits.load(Ordering::SeqCst),
        2,
        "discovery document, then the JWKS"
    );
}

#[tokio::test]
async fn the_policy_file_binds_subjects_and_groups_and_reloads_on_change() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, "bindings:\n  - name: sre\n    groups: [sre]\n    grants:\n      - role: deployer\n        clusters: [dev]\n        namespaces: ['*']\n").unwrap();
    let path = file.clone();
    let app = spawn_app_with(Options {
        auth: Box::new(move |a| a.policy_file = Some(path)),
        ..Default::default()
    })
    .await;
    app.put(
        "/v1/clusters/dev/namespaces/default/deployments/web",
        json!({"containers": [{"name": "web", "image": "nginx:1"}]}),
    )
    .await;
    let carol = hs_token(
        &json!({"iss": TEST_ISSUER, "aud": TEST_AUDIENCE, "sub": "carol", "exp": now() + 600, "groups": "sre"}),
    );
    let scale = |n: i32| json!({"replicas": n});
    let path = "/v1/clusters/dev/namespaces/default/deployments/web/replicas";
    assert_eq!(
        app.send_as(Some(&carol), reqwest::Method::PUT, path, Some(scale(2)))
            .await
            .status()
            .as_u16(),
        200
    );

    let res = app
        .send_as(Some(&carol), reqwest::Method::GET, "/v1/whoami", None)
        .await;
    let me: Value = res.json().await.unwrap();
    assert_eq!(
        (me["subject"].as_str(), me["issuer"].as_str()),
        (Some("carol"), Some(TEST_ISSUER))
    );
    assert_eq!(me["groups"], json!(["sre"]));
    assert_eq!(me["grants"][0]["role"], "deployer");
    assert_eq!(me["grants"][0]["source"], "policy:sre");

    // Demoted to viewer: the next request sees it, no restart.
    std::fs::write(&file, "bindings:\n  - name: sre\n    groups: [sre]\n    grants:\n      - role: viewer\n        clusters: [dev]\n").unwrap();
    eventually(
        "the policy to reload",
        Duration::from_secs(10),
        async || {
            let status = app
                .send_as(Some(&carol), reqwest::Method::PUT, path, Some(scale(3)))
                .await
                .status();
            (status.as_u16() == 403).then_some(())
        },
    )
    .await;
    // A broken edit keeps the last good policy.
    let reloads = "kubegate_policy_reloads_total";
    let seen = counter(&app, reloads).await;
    std::fs::write(&file, "bindings: [ this is not: valid").unwrap();
    eventually(
        "the broken edit to be read",
        Duration::from_secs(10),
        async || (counter(&app, reloads).await > seen).then_some(()),
    )
    .await;
    assert_eq!(
        app.send_as(Some(&carol), reqwest::Method::GET, PROBE, None)
            .await
            .status()
            .as_u16(),
        200
    );
}

#[tokio::test]
async fn access_reviews_answer_can_i_and_only_admins_review_others() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.toml");
    std::fs::write(&file, "[[bindings]]\nsubjects = [\"dave\"]\n[[bindings.grants]]\nrole = \"deployer\"\nclusters = [\"dev\"]\nnamespaces = [\"shop-*\"]\n").unwrap();
    let app = spawn_app_with(Options {
        auth: Box::new(move |a| a.policy_file = Some(file)),
        ..Default::default()
    })
    .await;
    let dave = hs_token(&claims("dave", &[]));
    let review = |body: Value| async {
        let res = app
            .send_as(
                Some(&dave),
                reqwest::Method::POST,
                "/v1/access-reviews",
                Some(body),
            )
            .await;
        (res.status().as_u16(), res.json::<Value>().await.unwrap())
    };
    let (status, body) =
        review(json!({"verb": "scale", "cluster": "dev", "namespace": "shop-eu"})).await;
    assert_eq!(status, 200);
    assert_eq!(body["allowed"], true);
    assert_eq!(body["grant"]["namespaces"], json!(["shop-*"]));
    let (_, body) =
        review(json!({"verb": "delete_pods", "cluster": "dev", "namespace": "shop-eu"})).await;
    assert_eq!(body["allowed"], false);
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("needs the admin role")
    );
    let (status, _) = review(json!({"verb": "fly", "cluster": "dev"})).await;
    assert_eq!(status, 400, "verbs are an enum of the contract");
    let (status, _) = review(json!({"verb": "read", "cluster": "dev", "subject": "erin"})).await;
    assert_eq!(status, 403, "reviewing someone else needs admin");

    let res = app.send_as(Some(&app.token), reqwest::Method::POST, "/v1/access-reviews", Some(json!({"verb": "scale", "cluster": "dev", "namespace": "shop-1", "subject": "dave"}))).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["allowed"], true, "{body}");
}

#[test]
fn kubegate_token_mints_a_token_kubegate_accepts() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubegate"))
        .args([
            "token",
            "--sub",
            "alice",
            "--role",
            "deployer@dev/*",
            "--group",
            "sre",
            "--ttl",
            "5m",
        ])
        .env("KUBEGATE_JWT_HS_SECRET", TEST_SECRET)
        .env("KUBEGATE_JWT_ISSUER", TEST_ISSUER)
        .env("KUBEGATE_JWT_AUDIENCE", TEST_AUDIENCE)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let mut v = jsonwebtoken::Validation::new(Algorithm::HS256);
    v.set_audience(&[TEST_AUDIENCE]);
    v.set_issuer(&[TEST_ISSUER]);
    let data = jsonwebtoken::decode::<Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(TEST_SECRET.as_bytes()),
        &v,
    )
    .unwrap();
    assert_eq!(data.claims["sub"], "alice");
    assert_eq!(data.claims["kubegate_roles"], json!(["deployer@dev/*"]));
    assert_eq!(data.claims["groups"], json!(["sre"]));
    assert_eq!(
        data.claims["exp"].as_u64().unwrap() - data.claims["iat"].as_u64().unwrap(),
        300
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubegate"))
        .args(["token", "--sub", "alice"])
        .env("KUBEGATE_JWT_HS_SECRET", "too-short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 32 bytes"));
}
