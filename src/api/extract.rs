//! The verified caller of a request, as an actix extractor: the bearer token is verified, the
//! caller's rate budget checked, and `X-On-Behalf-Of` resolved, before any handler runs.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures::future::LocalBoxFuture;

use super::problem::ApiError;
use crate::auth::{AuthError, ON_BEHALF_OF, Principal};
use crate::context;
use crate::gateway::AppState;

/// The verified caller of a request: extracting it answers 401 when the token is missing or bad.
impl FromRequest for Principal {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_owned));
        let on_behalf_of = req
            .headers()
            .get(ON_BEHALF_OF)
            .map(|v| v.to_str().map(str::to_owned));
        Box::pin(async move {
            let state =
                state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("no application state")))?;
            let token = match header {
                None => {
                    return Err(ApiError::Unauthenticated {
                        error: AuthError::Missing,
                    });
                }
                Some(Err(_)) => {
                    return Err(ApiError::Unauthenticated {
                        error: AuthError::Invalid("the Authorization header is not ASCII".into()),
                    });
                }
                Some(Ok(h)) => {
                    let (scheme, rest) = h.split_once(' ').unwrap_or((h.as_str(), ""));
                    if !scheme.eq_ignore_ascii_case("bearer") {
                        return Err(ApiError::Unauthenticated {
                            error: AuthError::Missing,
                        });
                    }
                    rest.trim().to_owned()
                }
            };
            let principal = state
                .auth
                .authenticator
                .verify(&token)
                .await
                .map_err(|error| {
                    tracing::info!(reason = %error, "token refused");
                    ApiError::Unauthenticated { error }
                })?;
            if let Err(wait) = state
                .auth
                .limits
                .check(&principal, &state.auth.grants(&principal))
            {
                tracing::info!(subject = %principal.subject, "rate limited");
                state.metrics.rate_limited.inc();
                return Err(ApiError::RateLimited { retry_after: wait });
            }
            let principal = match on_behalf_of {
                None => principal,
                Some(name) => {
                    let name =
                        name.map_err(|_| crate::auth::Denied("X-On-Behalf-Of is not ASCII".into()));
                    match name.and_then(|n| state.auth.on_behalf_of(principal.clone(), &n)) {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::info!(subject = %principal.subject, "X-On-Behalf-Of refused");
                            if let Some(ctx) = context::current() {
                                *ctx.principal.lock().expect("principal") = Some(principal);
                            }
                            return Err(e.into());
                        }
                    }
                }
            };
            if let Some(ctx) = context::current() {
                *ctx.principal.lock().expect("principal") = Some(principal.clone());
            }
            Ok(principal)
        })
    }
}
