//! Bearer token verification (RFC 7519, RFC 8725). Keys come from configuration only: an HMAC
//! secret, PEM public keys, and/or a JWKS (direct URL or OIDC discovery), cached by `kid`. Each key
//! is pinned to one algorithm; `none` never parses. `iss`, `aud` and `exp` are required (jsonwebtoken
//! does not make them required just because they are set), `nbf` is checked when present, `crit`
//! is refused, and `jku`/`x5u`/`jwk` headers are ignored: nothing a token says is fetched or
//! trusted. Tokens are never logged. Accepted tokens are remembered by their SHA-256 (see
//! `Authenticator::verify`), so that a caller repeating one does not pay for its signature again.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::sync::{Mutex, RwLock};

use super::policy::{Grant, grant_from_claim};
use crate::config::AuthConfig;

/// Who is calling, as the token says.
#[derive(Debug, Clone)]
pub struct Principal {
    pub subject: String,
    pub issuer: String,
    pub groups: BTreeSet<String>,
    /// Grants carried by the token's roles claim.
    pub token_grants: Vec<Grant>,
    /// When a bot acts for this person (`X-On-Behalf-Of`, a chat integration): the bot. The
    /// person's grants then count only within the bot's own.
    pub delegated_by: Option<Box<Principal>>,
}

/// Why a token was refused (the 401's `error_description`; never echoes the token).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token: send Authorization: Bearer <JWT>")]
    Missing,
    #[error("{0}")]
    Invalid(String),
}

struct VerifyKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

enum JwksSource {
    Url(String),
    Discovery(String),
}

struct Jwks {
    source: JwksSource,
    keys: RwLock<(Vec<VerifyKey>, Option<Instant>)>,
    /// Bumped whenever the key set is replaced: tokens verified before are verified again.
    generation: AtomicU64,
    /// Serialises refreshes and remembers the last attempt, for the cooldown.
    refresh: Mutex<Option<Instant>>,
    cooldown: Duration,
    max_age: Duration,
    http: reqwest::Client,
}

pub struct Authenticator {
    static_keys: Vec<VerifyKey>,
    jwks: Option<Jwks>,
    verified: VerifiedTokens,
    /// Tokens accepted, by how: `memory` (verified before) or `signature`. Registered with the
    /// application's metrics as `kubegate_token_verifications_total`.
    pub verifications: prometheus::IntCounterVec,
    issuer: String,
    audiences: Vec<String>,
    leeway: u64,
    max_lifetime: Option<u64>,
    max_bytes: usize,
    subject_claim: String,
    groups_claim: String,
    roles_claim: Option<String>,
}

fn parse_alg(s: &str) -> Result<Algorithm, String> {
    s.parse::<Algorithm>()
        .map_err(|_| format!("unknown JWT algorithm {s:?}"))
}

impl Authenticator {
    pub fn from_config(c: &AuthConfig) -> anyhow::Result<Self> {
        let mut static_keys = Vec::new();
        if let Some(secret) = &c.token.jwt_hs_secret {
            let bytes = secret.expose_secret().as_bytes();
            if bytes.len() < 32 {
                anyhow::bail!(
                    "KUBEGATE_JWT_HS_SECRET must be at least 32 bytes (it is {})",
                    bytes.len()
                );
            }
            let alg = parse_alg(&c.token.jwt_hs_algorithm).map_err(anyhow::Error::msg)?;
            if !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                anyhow::bail!("KUBEGATE_JWT_HS_ALGORITHM must be HS256, HS384 or HS512");
            }
            static_keys.push(VerifyKey {
                kid: None,
                alg,
                key: DecodingKey::from_secret(bytes),
            });
        }
        for entry in c.jwt_public_keys.iter().filter(|e| !e.trim().is_empty()) {
            let (alg, rest) = entry.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("KUBEGATE_JWT_PUBLIC_KEYS: {entry:?} is not ALG=PATH[#kid]")
            })?;
            let alg = parse_alg(alg.trim())
                .map_err(|e| anyhow::anyhow!("KUBEGATE_JWT_PUBLIC_KEYS: {e}"))?;
            let (path, kid) = match rest.split_once('#') {
                Some((p, k)) => (p, Some(k.to_owned())),
                None => (rest, None),
            };
            let pem = std::fs::read(path.trim()).map_err(|e| {
                anyhow::anyhow!("KUBEGATE_JWT_PUBLIC_KEYS: cannot read {path}: {e}")
            })?;
            let key = match alg {
                Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512 => DecodingKey::from_rsa_pem(&pem),
                Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
                Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
                _ => {
                    anyhow::bail!("KUBEGATE_JWT_PUBLIC_KEYS: {alg:?} is not a public-key algorithm")
                }
            }
            .map_err(|e| {
                anyhow::anyhow!("KUBEGATE_JWT_PUBLIC_KEYS: {path} is not a {alg:?} public key: {e}")
            })?;
            static_keys.push(VerifyKey { kid, alg, key });
        }
        let source = match (&c.jwks_url, &c.oidc_issuer) {
            (Some(url), _) => Some(JwksSource::Url(url.clone())),
            (None, Some(issuer)) => Some(JwksSource::Discovery(issuer.clone())),
            (None, None) => None,
        };
        let jwks = match source {
            None => None,
            Some(source) => Some(Jwks {
                source,
                keys: RwLock::new((Vec::new(), None)),
                generation: AtomicU64::new(0),
                refresh: Mutex::new(None),
                cooldown: c.jwks_refresh_cooldown,
                max_age: c.jwks_max_age,
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    // A JWKS endpoint that redirects elsewhere is not followed.
                    .redirect(reqwest::redirect::Policy::none())
                    .build()?,
            }),
        };
        if static_keys.is_empty() && jwks.is_none() {
            tracing::warn!(
                "no token verification key configured (KUBEGATE_JWT_HS_SECRET, KUBEGATE_JWT_PUBLIC_KEYS, KUBEGATE_JWKS_URL, KUBEGATE_OIDC_ISSUER): every /v1 request will be refused"
            );
        }
        Ok(Self {
            static_keys,
            jwks,
            verified: VerifiedTokens::new(c.jwt_cache_entries),
            verifications: prometheus::IntCounterVec::new(
                prometheus::Opts::new(
                    "token_verifications_total",
                    "Bearer tokens accepted, by how: from memory (verified before) or by signature",
                ),
                &["by"],
            )?,
            issuer: c.token.jwt_issuer.clone(),
            audiences: c.token.jwt_audience.clone(),
            leeway: c.jwt_leeway.as_secs(),
            max_lifetime: c.jwt_max_lifetime.map(|d| d.as_secs()),
            max_bytes: c.jwt_max_bytes,
            subject_claim: c.jwt_subject_claim.clone(),
            groups_claim: c.token.jwt_groups_claim.clone(),
            roles_claim: Some(c.token.jwt_roles_claim.clone()).filter(|s| !s.is_empty()),
        })
    }

    /// Verify a bearer token and read the identity from it. A token verified before is answered
    /// from memory while it has not expired and, if a JWKS key verified it, while that key set is
    /// the current one and not due for a refresh: the same answer, without the signature check.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if !self.verified.enabled() {
            let (principal, _) = self.verify_uncached(token).await?;
            self.verifications.with_label_values(&["signature"]).inc();
            return Ok(principal);
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let key: [u8; 32] = digest.as_ref().try_into().expect("SHA-256 is 32 bytes");
        let jwks_generation = self.jwks_generation().await;
        if let Some(hit) = self.verified.get(&key, jwks_generation) {
            // jsonwebtoken's rule: expired once exp + leeway < now.
            if hit.exp.saturating_add(self.leeway) < jsonwebtoken::get_current_timestamp() {
                self.verified.remove(&key);
                return Err(AuthError::Invalid("the token has expired".into()));
            }
            self.verifications.with_label_values(&["memory"]).inc();
            return Ok(hit.principal);
        }
        let checked = self.check(token).await?;
        self.verifications.with_label_values(&["signature"]).inc();
        // What a JWKS key verified counts under that key set: nothing is kept while none is fresh.
        if !(checked.by_jwks && jwks_generation.is_none()) {
            let verified = Verified {
                principal: checked.principal.clone(),
                exp: checked.exp,
                generation: jwks_generation.filter(|_| checked.by_jwks),
            };
            self.verified.insert(key, verified, jwks_generation);
        }
        Ok(checked.principal)
    }

    /// The JWKS key set's generation, or `None` without a JWKS or while its key set is due for a
    /// refresh (tokens its keys verified are then checked again, which refreshes it).
    async fn jwks_generation(&self) -> Option<u64> {
        let jwks = self.jwks.as_ref()?;
        jwks.fresh()
            .await
            .then(|| jwks.generation.load(Ordering::Acquire))
    }

    /// Verify a bearer token's signature and claims, every time: the identity and the token's
    /// `exp`.
    pub async fn verify_uncached(&self, token: &str) -> Result<(Principal, u64), AuthError> {
        let c = self.check(token).await?;
        Ok((c.principal, c.exp))
    }

    async fn check(&self, token: &str) -> Result<Checked, AuthError> {
        let bad = |m: &str| AuthError::Invalid(m.to_owned());
        if token.len() > self.max_bytes {
            return Err(AuthError::Invalid(format!(
                "token larger than {} bytes",
                self.max_bytes
            )));
        }
        let segments: Vec<&str> = token.split('.').collect();
        let b64url = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if segments.len() != 3 || !segments.iter().all(|s| b64url(s)) {
            return Err(bad("malformed token: expected three base64url segments"));
        }
        let header = decode_header(token)
            .map_err(|_| bad("malformed token header (or an unsupported algorithm)"))?;
        if header.crit.is_some() {
            return Err(bad(
                "the token has critical header parameters kubegate does not understand",
            ));
        }
        if let Some(typ) = header.typ.as_deref()
            && !matches!(
                typ.to_ascii_lowercase().as_str(),
                "jwt" | "at+jwt" | "application/at+jwt"
            )
        {
            return Err(bad("unexpected token type"));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&self.audiences);
        validation.validate_nbf = true;
        validation.leeway = self.leeway;

        let mut last = bad("no key can verify this token (unknown key id or algorithm)");
        let mut claims: Option<Value> = None;
        for key in self
            .static_keys
            .iter()
            .filter(|k| k.alg == header.alg && kid_fits(k.kid.as_deref(), header.kid.as_deref()))
        {
            match decode::<Value>(token, &key.key, &validation) {
                Ok(data) => {
                    claims = Some(data.claims);
                    break;
                }
                Err(e) => last = describe(&e),
            }
        }
        let by_jwks = claims.is_none();
        if by_jwks && let Some(jwks) = &self.jwks {
            claims = jwks.verify(token, &header, &validation, &mut last).await;
        }
        let claims = claims.ok_or(last)?;
        Ok(Checked {
            principal: self.identity(&claims)?,
            exp: claims["exp"].as_u64().unwrap_or(0),
            by_jwks,
        })
    }

    fn identity(&self, claims: &Value) -> Result<Principal, AuthError> {
        let bad = |m: String| AuthError::Invalid(m);
        for time_claim in ["exp", "nbf", "iat"] {
            if claims
                .get(time_claim)
                .is_some_and(|v| !v.is_u64() && !v.is_i64())
            {
                return Err(bad(format!(
                    "the {time_claim} claim must be a number of seconds"
                )));
            }
        }
        if let Some(max) = self.max_lifetime {
            let iat = claims["iat"].as_u64().ok_or_else(|| {
                bad("the iat claim is required (tokens have a maximum lifetime)".into())
            })?;
            let exp = claims["exp"].as_u64().unwrap_or(0);
            if exp.saturating_sub(iat) > max {
                return Err(bad(format!(
                    "the token lives longer than the allowed {max}s"
                )));
            }
        }
        let subject = claims
            .get(&self.subject_claim)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control))
            .ok_or_else(|| {
                bad(format!(
                    "the {} claim (the subject) is missing, not a string, longer than 256 \
                     characters or has control characters",
                    self.subject_claim
                ))
            })?
            .to_owned();
        let groups: BTreeSet<String> = match claims.get(&self.groups_claim) {
            Some(Value::String(g)) => BTreeSet::from([g.clone()]),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => BTreeSet::new(),
        };
        if groups.iter().any(|g| g.chars().any(char::is_control)) {
            return Err(bad(format!(
                "the {} claim has a group with control characters",
                self.groups_claim
            )));
        }
        let token_grants = match self.roles_claim.as_ref().and_then(|c| claims.get(c)) {
            Some(Value::String(r)) => grant_from_claim(r).into_iter().collect(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .filter_map(grant_from_claim)
                .collect(),
            _ => Vec::new(),
        };
        Ok(Principal {
            subject,
            issuer: self.issuer.clone(),
            groups,
            token_grants,
            delegated_by: None,
        })
    }
}

/// A token whose signature and claims were checked: whom it names, its `exp`, and whether a
/// JWKS key (rather than a configured one) verified it.
struct Checked {
    principal: Principal,
    exp: u64,
    by_jwks: bool,
}

/// A token verified earlier: whom it names, when it expires, and the JWKS key set's generation
/// if a JWKS key verified it (`None`: a configured key, which cannot change while kubegate runs).
#[derive(Clone)]
struct Verified {
    principal: Principal,
    exp: u64,
    generation: Option<u64>,
}

impl Verified {
    /// Whether it still counts, with the JWKS key set at this generation (`None`: no fresh set).
    fn counts(&self, jwks_generation: Option<u64>) -> bool {
        self.generation.is_none_or(|g| jwks_generation == Some(g))
    }
}

/// Tokens verified lately, keyed by the SHA-256 of the token (the token itself is not kept).
/// Bounded: when full, entries that no longer count or are past `exp` go, and if that frees
/// nothing, all of them (callers pay one verification each again).
struct VerifiedTokens {
    capacity: usize,
    entries: std::sync::Mutex<HashMap<[u8; 32], Verified>>,
}

impl VerifiedTokens {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn enabled(&self) -> bool {
        self.capacity > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Verified>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry, if it still counts with the JWKS key set at this generation.
    fn get(&self, key: &[u8; 32], jwks_generation: Option<u64>) -> Option<Verified> {
        self.lock()
            .get(key)
            .filter(|v| v.counts(jwks_generation))
            .cloned()
    }

    fn remove(&self, key: &[u8; 32]) {
        self.lock().remove(key);
    }

    fn insert(&self, key: [u8; 32], verified: Verified, jwks_generation: Option<u64>) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            let now = jsonwebtoken::get_current_timestamp();
            entries.retain(|_, v| v.counts(jwks_generation) && v.exp >= now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, verified);
    }
}

fn kid_fits(key: Option<&str>, token: Option<&str>) -> bool {
    match (key, token) {
        (Some(k), Some(t)) => k == t,
        _ => true,
    }
}

fn describe(e: &jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind as K;
    AuthError::Invalid(match e.kind() {
        K::InvalidSignature => "invalid signature".into(),
        K::ExpiredSignature => "the token has expired".into(),
        K::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        K::InvalidIssuer => "wrong issuer".into(),
        K::InvalidAudience => "wrong audience".into(),
        K::MissingRequiredClaim(c) => format!("the {c} claim is required"),
        K::InvalidClaimFormat(c) => format!("the {c} claim has the wrong type"),
        K::InvalidAlgorithm => "algorithm not allowed for this key".into(),
        _ => "invalid token".into(),
    })
}

impl Jwks {
    /// Whether the key set was fetched less than `max_age` ago.
    async fn fresh(&self) -> bool {
        self.keys
            .read()
            .await
            .1
            .is_some_and(|at| at.elapsed() < self.max_age)
    }

    async fn verify(
        &self,
        token: &str,
        header: &jsonwebtoken::Header,
        validation: &Validation,
        last: &mut AuthError,
    ) -> Option<Value> {
        let stale = !self.fresh().await;
        let known =
            {
                self.keys.read().await.0.iter().any(|k| {
                    k.alg == header.alg && kid_fits(k.kid.as_deref(), header.kid.as_deref())
                })
            };
        if stale || !known {
            self.refresh().await;
        }
        let keys = self.keys.read().await;
        for key in keys
            .0
            .iter()
            .filter(|k| k.alg == header.alg && kid_fits(k.kid.as_deref(), header.kid.as_deref()))
        {
            match decode::<Value>(token, &key.key, validation) {
                Ok(data) => return Some(data.claims),
                Err(e) => *last = describe(&e),
            }
        }
        None
    }

    /// Fetch the key set, at most once per cooldown, one fetch at a time.
    async fn refresh(&self) {
        let mut last = self.refresh.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.cooldown) {
            return;
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "JWKS refreshed");
                *self.keys.write().await = (keys, Some(Instant::now()));
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
            Err(e) => tracing::warn!(error = %e, "JWKS refresh failed; keeping the keys we had"),
        }
    }

    async fn fetch(&self) -> anyhow::Result<Vec<VerifyKey>> {
        let url = match &self.source {
            JwksSource::Url(u) => u.clone(),
            JwksSource::Discovery(issuer) => {
                let doc: Value = self
                    .http
                    .get(format!(
                        "{}/.well-known/openid-configuration",
                        issuer.trim_end_matches('/')
                    ))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                if doc["issuer"].as_str() != Some(issuer.as_str()) {
                    anyhow::bail!("the discovery document names another issuer");
                }
                doc["jwks_uri"]
                    .as_str()
                    .ok_or_else(|| anyhow::anyhow!("no jwks_uri in the discovery document"))?
                    .to_owned()
            }
        };
        let set: JwkSet = self
            .http
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            // Pin each key to one algorithm: the one it declares, else its type's default.
            let declared = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok());
            let alg = match (&jwk.algorithm, declared) {
                // A shared secret from a URL is never a verification key.
                (AlgorithmParameters::OctetKey(_), _) | (AlgorithmParameters::Other(_), _) => {
                    continue;
                }
                (AlgorithmParameters::RSA(_), Some(a))
                    if matches!(
                        a,
                        Algorithm::RS256
                            | Algorithm::RS384
                            | Algorithm::RS512
                            | Algorithm::PS256
                            | Algorithm::PS384
                            | Algorithm::PS512
                    ) =>
                {
                    a
                }
                (AlgorithmParameters::RSA(_), None) => Algorithm::RS256,
                (AlgorithmParameters::EllipticCurve(p), d) => match (&p.curve, d) {
                    (EllipticCurve::P256, None | Some(Algorithm::ES256)) => Algorithm::ES256,
                    (EllipticCurve::P384, None | Some(Algorithm::ES384)) => Algorithm::ES384,
                    _ => continue,
                },
                (AlgorithmParameters::OctetKeyPair(p), None | Some(Algorithm::EdDSA))
                    if p.curve == EllipticCurve::Ed25519 =>
                {
                    Algorithm::EdDSA
                }
                _ => continue,
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => keys.push(VerifyKey {
                    kid: jwk.common.key_id.clone(),
                    alg,
                    key,
                }),
                Err(e) => tracing::warn!(kid = ?jwk.common.key_id, error = %e, "JWKS key skipped"),
            }
        }
        Ok(keys)
    }
}

/// `kubegate token`: an HS token for local use, signed with the configured secret.
pub fn mint(args: &crate::config::TokenArgs) -> anyhow::Result<String> {
    let secret = args
        .format
        .jwt_hs_secret
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("KUBEGATE_JWT_HS_SECRET is not set"))?;
    if secret.expose_secret().len() < 32 {
        anyhow::bail!("KUBEGATE_JWT_HS_SECRET must be at least 32 bytes");
    }
    for r in &args.roles {
        if grant_from_claim(r).is_none() {
            anyhow::bail!(
                "--role {r:?}: expected role or role@cluster/namespace with role one of viewer, deployer, admin, auditor"
            );
        }
    }
    let alg = parse_alg(&args.format.jwt_hs_algorithm).map_err(anyhow::Error::msg)?;
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = serde_json::json!({
        "iss": args.format.jwt_issuer,
        "aud": args.format.jwt_audience.first().cloned().unwrap_or_default(),
        "sub": args.sub,
        "iat": now,
        "exp": now + args.ttl.as_secs(),
    });
    if !args.groups.is_empty() {
        claims[&args.format.jwt_groups_claim] = serde_json::json!(args.groups);
    }
    if !args.roles.is_empty() && !args.format.jwt_roles_claim.is_empty() {
        claims[&args.format.jwt_roles_claim] = serde_json::json!(args.roles);
    }
    let key = jsonwebtoken::EncodingKey::from_secret(secret.expose_secret().as_bytes());
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        &claims,
        &key,
    )?)
}
