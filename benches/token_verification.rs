//! What verifying one bearer token costs, per algorithm (the full path kubegate runs: size and
//! shape checks, header, key choice, signature, claims, identity). Run:
//!
//!     cargo bench --bench token_verification
//!
//! Prints a markdown table. Keys are the test fixtures in tests/fixtures/keys.

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kubegate::auth::Authenticator;
use kubegate::config::AuthConfig;
use secrecy::SecretString;

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys");
const SECRET: &str = "bench-secret-0123456789abcdef0123456789";

fn config() -> AuthConfig {
    AuthConfig {
        jwt_issuer: "bench".into(),
        jwt_audience: vec!["kubegate".into()],
        jwt_hs_secret: Some(SecretString::from(SECRET.to_owned())),
        jwt_hs_algorithm: "HS256".into(),
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
        jwt_subject_claim: "sub".into(),
        jwt_groups_claim: "groups".into(),
        jwt_roles_claim: "kubegate_roles".into(),
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
    println!("| algorithm | verifications/s | µs per token |");
    println!("| --- | ---: | ---: |");
    for alg in [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ] {
        let t = token(alg);
        rt.block_on(async {
            assert!(auth.verify(&t).await.is_ok(), "{alg:?} token verifies");
            // Warm up, then measure for about a second.
            for _ in 0..200 {
                auth.verify(&t).await.unwrap();
            }
            let started = Instant::now();
            let mut n = 0u32;
            while started.elapsed() < Duration::from_secs(1) {
                for _ in 0..100 {
                    std::hint::black_box(auth.verify(std::hint::black_box(&t)).await.unwrap());
                }
                n += 100;
            }
            let per = started.elapsed().as_secs_f64() / f64::from(n);
            println!("| {alg:?} | {:.0} | {:.1} |", 1.0 / per, per * 1e6);
        });
    }
}
