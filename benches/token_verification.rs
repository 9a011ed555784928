//! What verifying one bearer token costs, per algorithm (the full path kubegate runs: size and
//! shape checks, header, key choice, signature, claims, identity), and what a token seen before
//! costs (kubegate remembers verified tokens by their SHA-256 until they expire). Run:
//!
//!     cargo bench --bench token_verification
//!
//! Prints a markdown table. Keys are the test fixtures in tests/fixtures/keys.

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kubegate::auth::Authenticator;
use kubegate::config::{AuthConfig, TokenFormat};
use secrecy::SecretString;

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys");
const SECRET: &str = "bench-secret-0123456789abcdef0123456789";

fn config() -> AuthConfig {
    AuthConfig {
        token: TokenFormat {
            jwt_issuer: "bench".into(),
            jwt_audience: vec!["kubegate".into()],
            jwt_hs_secret: Some(SecretString::from(SECRET.to_owned())),
            jwt_hs_algorithm: "HS256".into(),
            jwt_groups_claim: "groups".into(),
            jwt_roles_claim: "kubegate_roles".into(),
        },
        jwt_public_keys: vec![
            format!("RS256={KEYS}/rsa1.pub"),
            format!("ES256={KEYS}/ec.pub"),
            format!("EdDSA={KEYS}/ed.pub"),
        ],
        jwks_url: None,
        oidc_issuer: None,
        jwks_refresh_cooldown: Duration::from_secs(30),
        jwks_max_age: Duration::from_secs(300),
        jwt_leeway: Duration::from_secs(30),
        jwt_max_lifetime: None,
        jwt_max_bytes: 8192,
        jwt_cache_entries: 10_000,
        jwt_subject_claim: "sub".into(),
        policy_file: None,
        policy_reload_interval: Duration::from_secs(2),
    }
}

fn token(alg: Algorithm) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({"iss": "bench", "aud": "kubegate", "sub": "bench-user", "iat": now, "exp": now + 3600,
        "groups": ["sre", "platform"], "kubegate_roles": ["deployer@dev/*"]});
    let read = |f: &str| std::fs::read(format!("{KEYS}/{f}")).unwrap();
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&read("rsa1.key")).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&read("ec.key")).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&read("ed.key")).unwrap(),
        _ => unreachable!(),
    };
    jsonwebtoken::encode(&Header::new(alg), &claims, &key).unwrap()
}

fn main() {
    kubegate::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let auth = Authenticator::from_config(&config()).unwrap();
    println!(
        "| algorithm | verifications/s | µs per token | µs per token seen before (remembered) |"
    );
    println!("| --- | ---: | ---: | ---: |");
    for alg in [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ] {
        let t = token(alg);
        rt.block_on(async {
            assert!(auth.verify(&t).await.is_ok(), "{alg:?} token verifies");
            // Each path warmed up, then measured for about a second: the full check every time
            // (`verify_uncached`), and what a caller sending the same token again pays (`verify`).
            let full = per_call(|| async { auth.verify_uncached(&t).await.map(|(p, _)| p) }).await;
            let remembered = per_call(|| auth.verify(&t)).await;
            println!(
                "| {alg:?} | {:.0} | {:.1} | {:.1} |",
                1.0 / full,
                full * 1e6,
                remembered * 1e6
            );
        });
    }
}

/// Seconds per call of `f`, after a warm-up, over about a second.
async fn per_call<F, Fut, T, E>(f: F) -> f64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Debug,
{
    for _ in 0..200 {
        f().await.unwrap();
    }
    let started = Instant::now();
    let mut n = 0u32;
    while started.elapsed() < Duration::from_secs(1) {
        for _ in 0..100 {
            std::hint::black_box(f().await.unwrap());
        }
        n += 100;
    }
    started.elapsed().as_secs_f64() / f64::from(n)
}
