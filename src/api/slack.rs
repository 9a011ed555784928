//! Slack slash commands: `POST /v1/integrations/slack/commands`. Slack signs each request with the
//! app's signing secret (HMAC-SHA256 of `v0:<timestamp>:<body>`); kubegate checks it in constant
//! time, refuses timestamps more than 5 minutes away and signatures it has seen (PostgreSQL, so
//! every replica agrees), maps the Slack user to a kubegate subject through the policy file
//! (`people[].aliases`: `slack:TEAM/USER` or `slack:USER`), and runs the command text through the
//! command endpoint's code as that person, delegated by the Slack app's subject
//! (KUBEGATE_SLACK_SUBJECT): the person's grants, never more than the app's, audited with both.
//!
//! Slack wants an answer within 3 seconds: commands that wait for a rollout answer "working on
//! it" at once and post the result to `response_url` later. Answers use Slack's block format;
//! reads and refusals are ephemeral (only the person sees them), changes are posted in the
//! channel.

use std::collections::{BTreeSet, HashMap};

use actix_web::{HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::commands::{self, CommandResult};
use super::middleware;
use super::problem::{ApiError, FieldError, Problem};
use crate::auth::{AuthError, Principal};
use crate::config::SlackConfig;
use crate::gateway::AppState;

/// How far a request's timestamp may be from now (Slack's documented window).
pub const MAX_SKEW_SECS: i64 = 300;

/// Slack shows at most 3,000 characters in a section; outputs are cut a little below.
const MAX_OUTPUT: usize = 2800;

/// The Slack integration's settings, when it is on.
pub struct Slack {
    secret: SecretString,
    pub subject: String,
    pub default_cluster: Option<String>,
    pub response_url_prefix: String,
    http: reqwest::Client,
}

impl Slack {
    pub fn from_config(c: &SlackConfig) -> anyhow::Result<Option<Self>> {
        let Some(secret) = &c.slack_signing_secret else {
            return Ok(None);
        };
        Ok(Some(Self {
            secret: secret.clone(),
            subject: c.slack_subject.clone(),
            default_cluster: c.slack_default_cluster.clone(),
            response_url_prefix: c.slack_response_url_prefix.clone(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
        }))
    }
}

fn unauthenticated(why: &str) -> ApiError {
    ApiError::Unauthenticated {
        error: AuthError::Invalid(format!("Slack request refused: {why}")),
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Slack's signature: `v0=` + hex HMAC-SHA256(secret, `v0:{timestamp}:{body}`), compared in
/// constant time.
pub fn signature_valid(secret: &[u8], timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Some(tag) = signature.strip_prefix("v0=").and_then(hex_decode) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut message = Vec::with_capacity(body.len() + timestamp.len() + 4);
    message.extend_from_slice(b"v0:");
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b':');
    message.extend_from_slice(body);
    // ring's verify compares in constant time.
    ring::hmac::verify(&key, &message, &tag).is_ok()
}

fn header<'a>(req: &'a actix_web::HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Authenticate a Slack request: signature, timestamp window, and not seen before.
async fn authenticate(
    state: &AppState,
    slack: &Slack,
    req: &actix_web::HttpRequest,
    body: &[u8],
) -> Result<(), ApiError> {
    let (Some(ts), Some(sig)) = (
        header(req, "x-slack-request-timestamp"),
        header(req, "x-slack-signature"),
    ) else {
        return Err(unauthenticated(
            "X-Slack-Signature and X-Slack-Request-Timestamp are required",
        ));
    };
    let Ok(ts_secs) = ts.parse::<i64>() else {
        return Err(unauthenticated("the timestamp is not a number"));
    };
    let now = jiff::Timestamp::now().as_second();
    if (now - ts_secs).abs() > MAX_SKEW_SECS {
        return Err(unauthenticated("the timestamp is more than 5 minutes away"));
    }
    if !signature_valid(slack.secret.expose_secret().as_bytes(), ts, body, sig) {
        return Err(unauthenticated("the signature does not match"));
    }
    // Seen before within the window: a replay.
    let now_us = crate::audit::now_us();
    let fresh: Option<i32> = sqlx::query_scalar(
        "WITH pruned AS (DELETE FROM slack_request WHERE expires_at_us < $3) \
         INSERT INTO slack_request (signature, expires_at_us) VALUES ($1, $2) \
         ON CONFLICT DO NOTHING RETURNING 1",
    )
    .bind(sig.as_bytes())
    .bind(now_us + 2 * MAX_SKEW_SECS * 1_000_000)
    .bind(now_us)
    .fetch_optional(&state.db)
    .await
    .map_err(|e| ApiError::DatabaseUnavailable {
        detail: e.to_string(),
    })?;
    if fresh.is_none() {
        return Err(unauthenticated("this signed request was already received"));
    }
    Ok(())
}

/// The form Slack posts for a slash command (other fields Slack sends are ignored).
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"command": "/kubegate", "text": "scale deployment/web --replicas=3 -n shop", "user_id": "U024BE7LH", "team_id": "T0001", "channel_id": "C2147483705", "response_url": "https://hooks.slack.com/commands/T0001/1234/abcd"}))]
#[allow(dead_code)]
pub struct SlackCommandForm {
    /// The slash command, e.g. `/kubegate`.
    command: String,
    /// The command line after it: `scale deployment/web --replicas=3 -n shop`.
    text: String,
    user_id: String,
    team_id: String,
    channel_id: String,
    /// Where a long command's result is posted (must start with KUBEGATE_SLACK_RESPONSE_URL_PREFIX).
    response_url: String,
}

/// A Slack message in block format.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(example = json!({"response_type": "in_channel", "text": "deployment.apps/web scaled", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "```deployment.apps/web scaled```"}}]}))]
pub struct SlackMessage {
    /// `in_channel` for changes, `ephemeral` (only the person) for reads and refusals.
    response_type: String,
    /// Plain-text fallback.
    text: String,
    #[schema(value_type = Vec<Object>)]
    blocks: Vec<Value>,
}

/// Run a Slack slash command.
#[utoipa::path(
    post, path = "/v1/integrations/slack/commands", tag = "commands", operation_id = "run_slack_command",
    description = "Slack's slash-command webhook: authenticated by Slack's request signature instead of a JWT; the text is a command line as for run_command, run for the Slack user mapped in the policy file (people[].aliases), delegated by KUBEGATE_SLACK_SUBJECT. Answers are Slack messages, refusals included (ephemeral); commands that wait answer at once and post the result to response_url.",
    request_body(content = SlackCommandForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A Slack message: the result, a refusal, or \"working on it\"", body = SlackMessage),
        (status = 400, description = "Not a slash-command form", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, wrong, stale (over 5 minutes) or replayed signature", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The Slack integration is off", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn slack_command(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    slack: web::Data<Option<Slack>>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    if header(&req, "x-slack-signature").is_none()
        || header(&req, "x-slack-request-timestamp").is_none()
    {
        return Err(unauthenticated(
            "X-Slack-Signature and X-Slack-Request-Timestamp are required",
        ));
    }
    let Some(slack) = slack.as_ref().as_ref() else {
        return Err(ApiError::from(crate::gateway::Error::NotFound {
            detail: "the Slack integration is off (KUBEGATE_SLACK_SIGNING_SECRET is not set)"
                .into(),
        }));
    };
    authenticate(&state, slack, &req, &body).await?;
    let mut form: HashMap<String, String> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(&body).into_owned() {
        form.entry(k).or_insert(v);
    }
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let (team, user, channel) = (field("team_id"), field("user_id"), field("channel_id"));
    if user.is_empty() || team.is_empty() {
        return Err(ApiError::from(crate::gateway::Error::BadRequest {
            detail: "a Slack slash command carries team_id and user_id".into(),
            errors: vec![FieldError {
                field: "user_id".into(),
                message: "required".into(),
            }],
        }));
    }
    let line = field("text").to_owned();
    let bot = Principal {
        subject: slack.subject.clone(),
        issuer: "slack".into(),
        groups: BTreeSet::new(),
        token_grants: Vec::new(),
        delegated_by: None,
    };
    if let Some(ctx) = middleware::current() {
        *ctx.principal.lock().expect("principal") = Some(bot.clone());
    }

    // The person: a Slack user the policy file names.
    let policy = state.auth.policy();
    let aliases = [format!("slack:{team}/{user}"), format!("slack:{user}")];
    let Some(alias) = aliases.iter().find(|a| policy.person(a).is_some()) else {
        let e = ApiError::from(crate::gateway::Error::Forbidden {
            detail: format!(
                "Slack user {team}/{user} is not mapped to a kubegate subject: an admin adds `slack:{team}/{user}` to people[].aliases in the policy file"
            ),
        });
        return Ok(refused(&state, &bot, &line, &e, None).await);
    };
    let person = match state.auth.on_behalf_of(bot.clone(), alias) {
        Ok(p) => p,
        Err(e) => {
            return Ok(refused(&state, &bot, &line, &e.into(), None).await);
        }
    };
    if let Some(ctx) = middleware::current() {
        *ctx.principal.lock().expect("principal") = Some(person.clone());
    }
    if let Err(wait) = state
        .auth
        .limits
        .check(&person, &state.auth.grants(&person))
    {
        state.metrics.rate_limited.inc();
        return Ok(reply(error_message(
            &line,
            &ApiError::RateLimited { retry_after: wait },
        )));
    }

    let parsed = match commands::parse(&line) {
        Ok(p) => p,
        Err(e) => {
            return Ok(refused(&state, &person, &line, &e, None).await);
        }
    };

    // Where: --context, else the channel's cluster, else the configured one, else the only one.
    let channel_ids = [
        format!("slack:{team}/{channel}"),
        format!("slack:{channel}"),
    ];
    let chan = policy.channel(&channel_ids).cloned();
    let names = state.clusters.names();
    let cluster = parsed
        .context
        .clone()
        .or_else(|| chan.as_ref().and_then(|c| c.default_cluster.clone()))
        .or_else(|| slack.default_cluster.clone())
        .or_else(|| (names.len() == 1).then(|| names[0].clone()));
    let Some(cluster) = cluster else {
        let e = ApiError::from(crate::gateway::Error::BadRequest {
            detail: format!(
                "name the cluster with --context (one of: {})",
                names.join(", ")
            ),
            errors: Vec::new(),
        });
        return Ok(refused(&state, &person, &line, &e, None).await);
    };
    let default_namespace = chan.as_ref().and_then(|c| c.default_namespace.clone());
    let namespace = parsed
        .namespace
        .clone()
        .or_else(|| default_namespace.clone())
        .or_else(|| {
            state
                .clusters
                .get(&cluster)
                .map(|c| c.default_namespace.clone())
        })
        .unwrap_or_else(|| "default".into());
    let restricted = !policy.channels.is_empty();
    let allowed = match &chan {
        Some(c) => c.allows(&cluster, &namespace),
        None => !restricted,
    };
    if !allowed {
        let e = ApiError::from(crate::gateway::Error::Forbidden {
            detail: format!(
                "this channel may not run commands on namespace {namespace:?} of cluster {cluster:?} (policy file channels)"
            ),
        });
        let target = crate::action::Target {
            cluster: cluster.clone(),
            namespace: namespace.clone(),
        };
        return Ok(refused(&state, &person, &line, &e, Some(&target)).await);
    }

    if parsed.waits() {
        let url = field("response_url").to_owned();
        if !url.starts_with(&slack.response_url_prefix) {
            let e = ApiError::from(crate::gateway::Error::BadRequest {
                detail: "this command waits for a rollout and answers later, but the request's response_url is not Slack's".into(),
                errors: Vec::new(),
            });
            return Ok(refused(&state, &person, &line, &e, None).await);
        }
        let ctx = middleware::current();
        let state = state.clone();
        let http = slack.http.clone();
        let user = user.to_owned();
        let line2 = line.clone();
        actix_web::rt::spawn(async move {
            let run = async {
                let result =
                    commands::execute(&state, &person, &cluster, parsed, default_namespace).await;
                match result {
                    Ok((_, r)) => result_message(&user, &line2, &r),
                    Err(e) => error_message(&line2, &e),
                }
            };
            let message = match ctx {
                Some(ctx) => middleware::within(ctx, run).await,
                None => run.await,
            };
            if let Err(e) = http.post(&url).json(&message).send().await {
                tracing::warn!(error = %e, "could not post a Slack command's result to its response_url");
            }
        });
        return Ok(reply(json!({
            "response_type": "ephemeral",
            "text": format!("Working on `{}`; the result follows here.", escape(&line)),
        })));
    }

    let result = commands::execute(&state, &person, &cluster, parsed, default_namespace).await;
    Ok(reply(match result {
        Ok((_, r)) => result_message(user, &line, &r),
        Err(e) => {
            // Refusals the gateway did not record (an unknown cluster, ...); reads are recorded
            // as reads are.
            let recorded = middleware::current().is_some_and(|c| {
                c.audit_id.lock().expect("audit id").is_some()
                    || c.read_only.load(std::sync::atomic::Ordering::Relaxed)
            });
            if !recorded {
                crate::gateway::audit_refused(&state, &person, &e.refusal(), None).await;
            }
            error_message(&line, &e)
        }
    }))
}

/// A refusal answered in the chat (Slack shows nothing but a 200), audited here.
async fn refused(
    state: &AppState,
    principal: &Principal,
    line: &str,
    e: &ApiError,
    target: Option<&crate::action::Target>,
) -> HttpResponse {
    crate::gateway::audit_refused(state, principal, &e.refusal(), target).await;
    reply(error_message(line, e))
}

fn reply(message: Value) -> HttpResponse {
    HttpResponse::Ok().json(message)
}

/// Slack's mrkdwn needs `&`, `<` and `>` escaped.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate(s: &str) -> String {
    if s.len() <= MAX_OUTPUT {
        return s.to_owned();
    }
    let mut end = MAX_OUTPUT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n… (cut; the full answer is in the command endpoint's result)",
        &s[..end]
    )
}

/// A command's answer: changes in the channel, reads and dry runs to the person only.
fn result_message(user: &str, line: &str, r: &CommandResult) -> Value {
    let mut context = vec![format!("{}/{}", r.cluster, r.namespace)];
    if r.dry_run {
        context.push("server dry run".into());
    }
    if let Some(a) = &r.audit_id {
        context.push(format!("audit {a}"));
    }
    let public = r.audit_id.is_some() && !r.dry_run;
    let output = if r.output.is_empty() {
        "(no output)".to_owned()
    } else {
        truncate(&r.output)
    };
    json!({
        "response_type": if public { "in_channel" } else { "ephemeral" },
        "text": output.lines().next().unwrap_or_default(),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("<@{}> `{}`", escape(user), escape(line))}},
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("```{}```", escape(&output))}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": escape(&context.join(" · "))}]},
        ],
    })
}

/// A refusal or failure, to the person only.
fn error_message(line: &str, e: &ApiError) -> Value {
    let p = e.problem();
    let mut text = p.detail.clone();
    for f in &p.errors {
        if f.message != p.detail {
            text.push_str(&format!("\n• {}: {}", f.field, f.message));
        }
    }
    json!({
        "response_type": "ephemeral",
        "text": format!("{}: {}", p.title, text.lines().next().unwrap_or_default()),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!(":x: `{}`\n*{}*: {}", escape(line), escape(&p.title), escape(&truncate(&text)))}},
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slacks_documented_signature_example_verifies() {
        // The example of Slack's "Verifying requests from Slack" page.
        let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert!(signature_valid(secret, "1531420618", body, sig));
        assert!(!signature_valid(secret, "1531420619", body, sig));
        assert!(!signature_valid(b"another secret", "1531420618", body, sig));
        assert!(!signature_valid(secret, "1531420618", body, "v0=zz"));
        assert!(!signature_valid(secret, "1531420618", body, &sig[3..]));
    }
}
