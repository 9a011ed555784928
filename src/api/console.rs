//! The web console: one page, its script and its styles (`console/`), embedded in the binary.
//! Everything it shows and does goes through the REST API with the signed-in person's token,
//! so roles, the audit log, idempotency and dry runs apply to it unchanged.
//!
//! The page is served at `{path}/` and is never cached; its assets carry a digest of their
//! content in their names and are cached for a year. Every answer has a Content-Security-Policy
//! that allows no inline script and no other origin, and may not be framed.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use std::sync::Arc;

use super::problem::ApiError;

const INDEX: &str = include_str!("../../console/index.html");
const SOURCES: [(&str, &str, &[u8]); 3] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/app.css"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_bytes!("../../console/icon.svg"),
    ),
];

/// No inline script or style, nothing from another origin (but the OIDC issuer's, for the
/// token request of its sign-in), no framing, no plugins.
fn csp(issuer_origin: Option<&str>) -> HeaderValue {
    let connect = issuer_origin.map_or_else(|| "'self'".to_owned(), |o| format!("'self' {o}"));
    HeaderValue::from_str(&format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src {connect}; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

/// The console's files, ready to serve: names with their digest, gzip precomputed.
pub struct Console {
    path: String,
    index: File,
    assets: Vec<(String, File)>,
    oidc: Option<Oidc>,
    csp: HeaderValue,
}

/// Sign-in through an OIDC issuer: the console is a public client (authorization code with
/// PKCE, in the browser); kubegate only tells it the issuer's endpoints (`config.json`).
pub struct Oidc {
    issuer: String,
    origin: String,
    client_id: String,
    scopes: String,
    http: reqwest::Client,
    /// The issuer's endpoints, from its discovery document (read once it is first asked for).
    endpoints: tokio::sync::OnceCell<(String, String)>,
}

impl Oidc {
    pub fn new(issuer: &str, client_id: &str, scopes: &str) -> anyhow::Result<Self> {
        let url = url::Url::parse(issuer)
            .map_err(|e| anyhow::anyhow!("KUBEGATE_OIDC_ISSUER: {issuer:?} is not a URL: {e}"))?;
        anyhow::ensure!(
            matches!(url.scheme(), "https" | "http") && url.host().is_some(),
            "KUBEGATE_OIDC_ISSUER: {issuer:?} is not an http(s) URL"
        );
        anyhow::ensure!(
            !client_id.trim().is_empty(),
            "KUBEGATE_CONSOLE_OIDC_CLIENT_ID is empty"
        );
        Ok(Self {
            issuer: issuer.to_owned(),
            origin: url.origin().ascii_serialization(),
            client_id: client_id.to_owned(),
            scopes: scopes.to_owned(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            endpoints: tokio::sync::OnceCell::new(),
        })
    }

    /// The authorization and token endpoints; the token endpoint must be on the issuer's
    /// origin (the only other one the page may talk to).
    async fn endpoints(&self) -> Result<&(String, String), String> {
        self.endpoints
            .get_or_try_init(|| async {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.issuer.trim_end_matches('/')
                );
                let doc: serde_json::Value = async {
                    self.http
                        .get(url)
                        .send()
                        .await?
                        .error_for_status()?
                        .json()
                        .await
                }
                .await
                .map_err(|e: reqwest::Error| format!("its discovery document: {e}"))?;
                if doc["issuer"].as_str() != Some(self.issuer.as_str()) {
                    return Err("its discovery document names another issuer".to_owned());
                }
                let endpoint = |name: &str| {
                    doc[name]
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| format!("its discovery document has no {name}"))
                };
                let (authorize, token) = (
                    endpoint("authorization_endpoint")?,
                    endpoint("token_endpoint")?,
                );
                let same_origin = url::Url::parse(&token)
                    .is_ok_and(|u| u.origin().ascii_serialization() == self.origin);
                if !same_origin {
                    return Err(format!(
                        "its token endpoint {token} is not on its origin {}",
                        self.origin
                    ));
                }
                Ok((authorize, token))
            })
            .await
    }
}

struct File {
    content_type: &'static str,
    body: Bytes,
    gzip: Option<Bytes>,
    etag: String,
}

impl File {
    fn new(content_type: &'static str, body: Vec<u8>) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, &body);
        let etag = format!("\"{}\"", &crate::audit::hex(digest.as_ref())[..20]);
        let gzip = super::compress::gzip(&body, flate2::Compression::best()).map(Bytes::from);
        Self {
            content_type,
            body: Bytes::from(body),
            gzip,
            etag,
        }
    }

    fn answer(&self, req: &HttpRequest, cache: &'static str, csp: &HeaderValue) -> HttpResponse {
        let mut res = if req
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim() == self.etag || t.trim() == "*")
            }) {
            HttpResponse::NotModified().finish()
        } else {
            let gzip = self
                .gzip
                .as_ref()
                .filter(|_| super::compress::accepts_gzip(req.headers()));
            let mut res = HttpResponse::Ok();
            res.content_type(self.content_type);
            match gzip {
                Some(z) => res
                    .insert_header((header::CONTENT_ENCODING, "gzip"))
                    .body(z.clone()),
                None => res.body(self.body.clone()),
            }
        };
        let headers = res.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        if let Ok(etag) = HeaderValue::from_str(&self.etag) {
            headers.insert(header::ETAG, etag);
        }
        secure(headers, csp);
        res
    }
}

/// The headers of every console answer.
fn secure(headers: &mut actix_web::http::header::HeaderMap, csp: &HeaderValue) {
    headers.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

impl Console {
    /// The console served under `path` (`/ui`: no trailing slash; checked by the setting).
    pub fn new(path: &str, oidc: Option<Oidc>) -> Self {
        let assets: Vec<(String, File)> = SOURCES
            .iter()
            .map(|(name, content_type, body)| {
                let file = File::new(content_type, body.to_vec());
                let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
                let digest = file.etag.trim_matches('"')[..12].to_owned();
                (format!("{stem}.{digest}.{ext}"), file)
            })
            .collect();
        let mut index = INDEX.to_owned();
        for ((name, _, _), (hashed, _)) in SOURCES.iter().zip(&assets) {
            index = index.replace(&format!("{{{{{name}}}}}"), &format!("assets/{hashed}"));
        }
        Self {
            path: path.to_owned(),
            index: File::new("text/html; charset=utf-8", index.into_bytes()),
            assets,
            csp: csp(oidc.as_ref().map(|o| o.origin.as_str())),
            oidc,
        }
    }

    /// What the page needs to know before anyone signs in: how to sign in.
    async fn settings(&self) -> Result<serde_json::Value, ApiError> {
        let Some(o) = &self.oidc else {
            return Ok(serde_json::json!({"oidc": null}));
        };
        let (authorize, token) = o.endpoints().await.map_err(|why| {
            tracing::warn!(issuer = %o.issuer, error = %why, "the console's OIDC sign-in is unavailable");
            ApiError::Status {
                status: actix_web::http::StatusCode::BAD_GATEWAY,
                detail: format!("the console cannot sign in with {}: {why}", o.issuer),
            }
        })?;
        Ok(serde_json::json!({"oidc": {
            "issuer": o.issuer,
            "clientId": o.client_id,
            "scopes": o.scopes,
            "authorizationEndpoint": authorize,
            "tokenEndpoint": token,
        }}))
    }

    /// Its routes: `{path}` (redirect), `{path}/` (the page), `{path}/config.json` (how to sign
    /// in), `{path}/assets/{file}`.
    pub fn configure(self: Arc<Self>, cfg: &mut web::ServiceConfig) {
        let here = self.path.clone();
        let (page, files, settings) = (self.clone(), self.clone(), self.clone());
        cfg.service(
            super::resource(&here, "GET, HEAD").route(get_or_head().to(move || {
                let to = format!("{}/", self.path);
                let csp = self.csp.clone();
                async move {
                    let mut res = HttpResponse::PermanentRedirect()
                        .insert_header((header::LOCATION, to))
                        .finish();
                    secure(res.headers_mut(), &csp);
                    res
                }
            })),
        )
        .service(
            super::resource(&format!("{here}/"), "GET, HEAD").route(get_or_head().to(
                move |req: HttpRequest| {
                    let page = page.clone();
                    async move { page.index.answer(&req, "no-cache", &page.csp) }
                },
            )),
        )
        .service(
            super::resource(&format!("{here}/config.json"), "GET, HEAD").route(get_or_head().to(
                move || {
                    let settings = settings.clone();
                    async move {
                        let body = settings.settings().await?;
                        let mut res = HttpResponse::Ok()
                            .insert_header((header::CACHE_CONTROL, "no-cache"))
                            .json(body);
                        secure(res.headers_mut(), &settings.csp);
                        Ok::<_, ApiError>(res)
                    }
                },
            )),
        )
        .service(
            super::resource(&format!("{here}/assets/{{file}}"), "GET, HEAD").route(
                get_or_head().to(move |req: HttpRequest, file: web::Path<String>| {
                    let files = files.clone();
                    async move {
                        match files.assets.iter().find(|(name, _)| *name == *file) {
                            Some((_, f)) => Ok(f.answer(
                                &req,
                                "public, max-age=31536000, immutable",
                                &files.csp,
                            )),
                            None => Err(ApiError::RouteNotFound {
                                path: req.path().to_owned(),
                            }),
                        }
                    }
                }),
            ),
        );
    }
}

fn get_or_head() -> actix_web::Route {
    use actix_web::guard;
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}
