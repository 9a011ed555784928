//! Every setting of kubegate, in one clap struct. Each field is also an environment variable and is
//! documented here, so `kubegate serve --help` is the configuration reference. Secrets are wrapped
//! so that `Debug` cannot print them. Invalid values stop start-up with a message naming the setting
//! (clap does that for everything parsed here).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

/// `kubegate --version`: the version and the commit it was built from (`build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("KUBEGATE_COMMIT"),
    ")"
);

/// kubegate: a safe, audited REST door to Kubernetes clusters.
/// What a `deployer` may apply by default: workloads, their config, services, autoscaling,
/// networking and policy (`KUBEGATE_APPLY_DEPLOYER_KINDS`).
pub const DEFAULT_APPLY_DEPLOYER_KINDS: &str = "apps/*,batch/*,autoscaling/*,policy/*,networking.k8s.io/*,core/ConfigMap,core/Secret,core/Service,core/ServiceAccount,core/PersistentVolumeClaim,core/Pod";

#[derive(Debug, Parser)]
#[command(name = "kubegate", version = VERSION, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
// Parsed once at start-up; boxing the settings would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run the HTTP service.
    Serve(Config),
    /// Audit log tools.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Mint a short-lived HS token signed with KUBEGATE_JWT_HS_SECRET, for local use.
    Token(TokenArgs),
    /// kubectl's credential plugin for kubeconfigs from `/v1/clusters/{cluster}/kubeconfig`:
    /// prints an ExecCredential with the token of KUBEGATE_TOKEN (or --token-file).
    Credential(CredentialArgs),
    /// Forward local ports to a pod through a kubegate server (kubectl port-forward's way).
    PortForward(PortForwardArgs),
    /// Print the OpenAPI document (the API contract) generated from the code.
    Openapi {
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// Settings of `kubegate serve`.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address and port to listen on. Use 0.0.0.0:8080 in a container.
    #[arg(long, env = "KUBEGATE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// PostgreSQL URL, e.g. postgres://kubegate@db:5432/kubegate. Migrations are applied at start.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = parse_secret)]
    pub database_url: SecretString,

    /// Maximum number of PostgreSQL connections in the pool.
    #[arg(long, env = "KUBEGATE_DATABASE_MAX_CONNECTIONS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_max_connections: u32,

    /// How long to wait for a PostgreSQL connection before answering 503.
    #[arg(long, env = "KUBEGATE_DATABASE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub database_timeout: Duration,

    /// Kubeconfig file(s), separated like $PATH. Every context becomes a cluster of that name.
    /// Unset: ~/.kube/config when it exists. Missing files are skipped with a warning, like kubectl.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<String>,

    /// Register the cluster kubegate runs in (service account credentials): auto (when
    /// KUBERNETES_SERVICE_HOST is set), always, or never.
    #[arg(long, env = "KUBEGATE_IN_CLUSTER", value_enum, default_value_t = InClusterMode::Auto)]
    pub in_cluster: InClusterMode,

    /// Name under which the in-cluster cluster is registered.
    #[arg(long, env = "KUBEGATE_IN_CLUSTER_NAME", default_value = "in-cluster")]
    pub in_cluster_name: String,

    /// Deadline of one non-streaming call to a cluster's API server; past it the answer is 504.
    #[arg(long, env = "KUBEGATE_CLUSTER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub cluster_timeout: Duration,

    /// Deadline of the reachability probe behind /v1/clusters and /readyz.
    #[arg(long, env = "KUBEGATE_CLUSTER_PROBE_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub cluster_probe_timeout: Duration,

    /// Log format: json (one object per line, for collectors) or pretty (for humans).
    #[arg(long, env = "KUBEGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Log filter in tracing's EnvFilter syntax, e.g. "info" or "kubegate=debug,info".
    #[arg(long, env = "KUBEGATE_LOG", default_value = "info,sqlx=warn")]
    pub log_filter: String,

    /// On SIGTERM/SIGINT: stop accepting, then give in-flight requests this long to finish.
    #[arg(long, env = "KUBEGATE_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// HTTP worker threads. Unset: one per CPU core.
    #[arg(long, env = "KUBEGATE_WORKERS", value_parser = clap::value_parser!(u16).range(1..=512))]
    pub workers: Option<u16>,

    /// Largest replica count a scale or deploy may ask for.
    #[arg(long, env = "KUBEGATE_MAX_REPLICAS", default_value_t = 1000,
          value_parser = clap::value_parser!(i32).range(0..=100_000))]
    pub max_replicas: i32,

    /// Longest `wait=true` a mutation may ask for (its `timeoutSeconds` is capped to this).
    #[arg(long, env = "KUBEGATE_MAX_WAIT", default_value = "10m", value_parser = parse_duration)]
    pub max_wait: Duration,

    /// How long an audit intent may stay without an outcome before kubegate closes it as
    /// outcome_unknown (its action was cut short by a crash): checked at start-up, then that
    /// often. Unset: the longest an action can last (KUBEGATE_MAX_WAIT + 4 ×
    /// KUBEGATE_CLUSTER_TIMEOUT) plus a minute. Shorter than that, another replica's action still
    /// under way may be closed as unknown (its real outcome is then recorded after).
    #[arg(long, env = "KUBEGATE_AUDIT_RECOVERY_AFTER", value_parser = parse_duration)]
    pub audit_recovery_after: Option<Duration>,

    /// When an action's outcome is committed to the audit log: `sync`, before its answer is sent
    /// (an answer's auditId always has its outcome; costs one commit, shared by every request
    /// waiting at that moment), or `async`, just after (a little less latency; a crash in
    /// between leaves the intent to be closed as outcome_unknown).
    #[arg(
        long,
        env = "KUBEGATE_AUDIT_OUTCOME",
        default_value = "sync",
        value_enum
    )]
    pub audit_outcome: AuditOutcome,

    /// Largest accepted JSON request body, in bytes; larger bodies get 413.
    #[arg(long, env = "KUBEGATE_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest accepted manifest body of `POST .../apply` (YAML or JSON), in bytes; larger
    /// bodies get 413.
    #[arg(long, env = "KUBEGATE_APPLY_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub apply_max_body_bytes: usize,

    /// A PEM certificate chain: serve HTTPS on KUBEGATE_LISTEN with it (and KUBEGATE_TLS_KEY).
    /// kubectl sends credentials only over TLS, so the Kubernetes API endpoint (`/k8s`) needs
    /// this or a TLS-terminating proxy in front.
    #[arg(long, env = "KUBEGATE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The certificate's PEM private key (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "KUBEGATE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// kubegate's URL as clients reach it (`https://kubegate.example.com`), for the server of
    /// the kubeconfigs it hands out; unset: the scheme and host the request came with.
    #[arg(long, env = "KUBEGATE_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Clusters (comma-separated globs) on which the Kubernetes API endpoint (`/k8s/{cluster}`,
    /// a person's kubectl) sends requests as the caller (`Impersonate-User: ISSUER#SUBJECT`,
    /// `Impersonate-Group` for each group), so the cluster's RBAC applies on top of kubegate's
    /// roles; kubegate's account then needs the `impersonate` verb on users and groups.
    #[arg(long, env = "KUBEGATE_IMPERSONATE_CLUSTERS", value_delimiter = ',')]
    pub impersonate_clusters: Vec<String>,

    /// Serve the web console (`KUBEGATE_CONSOLE_PATH`); false: those paths answer 404.
    #[arg(long, env = "KUBEGATE_CONSOLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub console: bool,

    /// Where the web console is served (`/ui`: the page at `/ui/`); not under an API path.
    #[arg(long, env = "KUBEGATE_CONSOLE_PATH", default_value = "/ui", value_parser = parse_console_path)]
    pub console_path: String,

    /// The web console's OIDC client (a public client: authorization code with PKCE, no
    /// secret) at KUBEGATE_OIDC_ISSUER; unset: the console signs in with a pasted token only.
    /// Its ID tokens must carry this client ID in an audience KUBEGATE_JWT_AUDIENCE accepts.
    #[arg(long, env = "KUBEGATE_CONSOLE_OIDC_CLIENT_ID")]
    pub console_oidc_client_id: Option<String>,

    /// The scopes the console asks the issuer for.
    #[arg(
        long,
        env = "KUBEGATE_CONSOLE_OIDC_SCOPES",
        default_value = "openid profile email"
    )]
    pub console_oidc_scopes: String,

    /// Most objects one apply may hold (more: 422, nothing applied).
    #[arg(long, env = "KUBEGATE_APPLY_MAX_OBJECTS", default_value_t = 200)]
    pub apply_max_objects: usize,

    /// Kinds a `deployer` may apply (namespaced ones only, in the namespaces of its grant), as
    /// `GROUP/KIND` globs, `core` for the core group; every other kind, and any cluster-scoped
    /// one, needs `admin`.
    #[arg(
        long,
        env = "KUBEGATE_APPLY_DEPLOYER_KINDS",
        value_delimiter = ',',
        default_value = DEFAULT_APPLY_DEPLOYER_KINDS
    )]
    pub apply_deployer_kinds: Vec<String>,

    /// On SIGTERM, fail /readyz for this long (so load balancers stop sending traffic) before
    /// closing the listener; then in-flight requests get KUBEGATE_SHUTDOWN_TIMEOUT.
    #[arg(long, env = "KUBEGATE_SHUTDOWN_DELAY", default_value = "0s", value_parser = humantime::parse_duration)]
    pub shutdown_delay: Duration,

    /// Serve /metrics on this address instead of the main port (keeps it off the public listener).
    #[arg(long, env = "KUBEGATE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Requests per second allowed to one subject (0: no limit); bursts up to twice that.
    #[arg(long, env = "KUBEGATE_RATE_LIMIT", default_value_t = 50)]
    pub rate_limit: u32,

    /// Keep one rate-limit budget across the replicas sharing the database (each exchanges its
    /// callers' usage every 100 ms); false: each replica counts alone (N replicas, N times the
    /// rate).
    #[arg(long, env = "KUBEGATE_RATE_LIMIT_SHARED", default_value_t = true, action = clap::ArgAction::Set)]
    pub rate_limit_shared: bool,

    /// Per-role rates overriding KUBEGATE_RATE_LIMIT, e.g. `viewer=100,deployer=20`; a caller
    /// gets the highest rate among its roles.
    #[arg(long, env = "KUBEGATE_RATE_LIMIT_ROLES", value_delimiter = ',', value_parser = parse_role_rate)]
    pub rate_limit_roles: Vec<(crate::role::Role, u32)>,

    /// How long an Idempotency-Key and its stored answer are kept.
    #[arg(long, env = "KUBEGATE_IDEMPOTENCY_TTL", default_value = "24h", value_parser = parse_duration)]
    pub idempotency_ttl: Duration,

    /// Also record reads (GET) in the audit log; mutations are always recorded.
    #[arg(long, env = "KUBEGATE_AUDIT_READS", default_value_t = false)]
    pub audit_reads: bool,

    /// Serve reads of deployments, replicasets, services and pods from watch caches (one watch
    /// per kind and namespace read, started on first use); kubegate's own writes are always
    /// visible to its following reads.
    #[arg(long, env = "KUBEGATE_WATCH_CACHE", default_value_t = true, action = clap::ArgAction::Set)]
    pub watch_cache: bool,

    /// Export traces (each request's span) to this OTLP/HTTP collector, e.g.
    /// http://otel-collector:4318 (spans go to /v1/traces). Needs a build with `--features otel`.
    #[arg(long, env = "KUBEGATE_OTEL_ENDPOINT")]
    pub otel_endpoint: Option<String>,

    /// Stop a watch cache nobody has read for this long.
    #[arg(long, env = "KUBEGATE_WATCH_CACHE_IDLE", default_value = "10m", value_parser = parse_duration)]
    pub watch_cache_idle: Duration,

    /// Ed25519 private key (PKCS#8 PEM) that signs audit checkpoints (POST /v1/audit/checkpoints).
    #[arg(long, env = "KUBEGATE_AUDIT_SIGNING_KEY")]
    pub audit_signing_key: Option<PathBuf>,

    /// Proxies whose X-Forwarded-For is believed for the audit log's source IP (comma-separated IPs).
    #[arg(long, env = "KUBEGATE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    #[command(flatten)]
    pub auth: AuthConfig,

    #[command(flatten)]
    pub slack: SlackConfig,

    #[command(flatten)]
    pub sessions: SessionConfig,
}

/// Exec sessions (one-shot and interactive) and their recordings.
#[derive(Debug, Clone, Args)]
pub struct SessionConfig {
    /// Longest `timeoutSeconds` a one-shot exec may ask for.
    #[arg(long, env = "KUBEGATE_EXEC_TIMEOUT_MAX", default_value = "5m", value_parser = parse_duration)]
    pub exec_timeout_max: Duration,

    /// Output a one-shot exec keeps per stream (stdout, stderr), in bytes; past it the answer
    /// says `truncated`.
    #[arg(long, env = "KUBEGATE_EXEC_OUTPUT_MAX_BYTES", default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1..=64 * 1024 * 1024))]
    pub exec_output_max_bytes: u64,

    /// An interactive session with no traffic either way for this long is ended.
    #[arg(long, env = "KUBEGATE_SESSION_IDLE_TIMEOUT", default_value = "15m", value_parser = parse_duration)]
    pub session_idle_timeout: Duration,

    /// An interactive session is ended after this long.
    #[arg(long, env = "KUBEGATE_SESSION_MAX_DURATION", default_value = "4h", value_parser = parse_duration)]
    pub session_max_duration: Duration,

    /// Record what is typed in sessions (off: only how many bytes; input may hold passwords).
    #[arg(long, env = "KUBEGATE_SESSION_RECORD_INPUT", default_value_t = false, action = clap::ArgAction::Set)]
    pub session_record_input: bool,
}

impl Default for SessionConfig {
    /// The same defaults as the command line.
    fn default() -> Self {
        Self {
            exec_timeout_max: Duration::from_secs(300),
            exec_output_max_bytes: 1024 * 1024,
            session_idle_timeout: Duration::from_secs(15 * 60),
            session_max_duration: Duration::from_secs(4 * 3600),
            session_record_input: false,
        }
    }
}

/// Slack slash commands (`POST /v1/integrations/slack/commands`); off without a signing secret.
#[derive(Debug, Clone, Args)]
pub struct SlackConfig {
    /// The Slack app's signing secret; requests are authenticated by their signature with it.
    /// Unset: the Slack endpoint answers 404.
    #[arg(long, env = "KUBEGATE_SLACK_SIGNING_SECRET", hide_env_values = true, value_parser = parse_secret)]
    pub slack_signing_secret: Option<SecretString>,

    /// The subject the Slack app acts as: the policy file grants it `delegate` and the most its
    /// users may do; each command runs for the Slack user's subject (`people[].aliases`).
    #[arg(long, env = "KUBEGATE_SLACK_SUBJECT", default_value = "slack")]
    pub slack_subject: String,

    /// The cluster of a command without `--context` (when the channel names none). Unset and
    /// one cluster configured: that one.
    #[arg(long, env = "KUBEGATE_SLACK_DEFAULT_CLUSTER")]
    pub slack_default_cluster: Option<String>,

    /// Results of long commands are posted to Slack's `response_url` only when it starts with this.
    #[arg(
        long,
        env = "KUBEGATE_SLACK_RESPONSE_URL_PREFIX",
        default_value = "https://hooks.slack.com/"
    )]
    pub slack_response_url_prefix: String,
}

impl Default for SlackConfig {
    /// The same defaults as the command line: off.
    fn default() -> Self {
        Self {
            slack_signing_secret: None,
            slack_subject: "slack".into(),
            slack_default_cluster: None,
            slack_response_url_prefix: "https://hooks.slack.com/".into(),
        }
    }
}

/// Token verification and the policy.
#[derive(Debug, Clone, Args)]
pub struct AuthConfig {
    #[command(flatten)]
    pub token: TokenFormat,

    /// PEM public keys, comma-separated, each pinned to its algorithm: ALG=PATH[#kid]
    /// (ALG one of RS256/384/512, PS256/384/512, ES256, ES384, EdDSA).
    #[arg(long, env = "KUBEGATE_JWT_PUBLIC_KEYS", value_delimiter = ',')]
    pub jwt_public_keys: Vec<String>,

    /// A JWKS URL to take verification keys from (cached by kid).
    #[arg(long, env = "KUBEGATE_JWKS_URL")]
    pub jwks_url: Option<String>,

    /// An OIDC issuer whose discovery document names the JWKS (used when KUBEGATE_JWKS_URL is unset).
    #[arg(long, env = "KUBEGATE_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,

    /// Least time between two JWKS fetches triggered by unknown key ids.
    #[arg(long, env = "KUBEGATE_JWKS_REFRESH_COOLDOWN", default_value = "30s", value_parser = parse_duration)]
    pub jwks_refresh_cooldown: Duration,

    /// Refetch the JWKS when the cached set is older than this (so removed keys stop working).
    #[arg(long, env = "KUBEGATE_JWKS_MAX_AGE", default_value = "5m", value_parser = parse_duration)]
    pub jwks_max_age: Duration,

    /// Clock skew allowed on exp and nbf.
    #[arg(long, env = "KUBEGATE_JWT_LEEWAY", default_value = "30s", value_parser = parse_duration)]
    pub jwt_leeway: Duration,

    /// Refuse tokens whose exp - iat exceeds this (and then require iat).
    #[arg(long, env = "KUBEGATE_JWT_MAX_LIFETIME", value_parser = parse_duration)]
    pub jwt_max_lifetime: Option<Duration>,

    /// Refuse tokens larger than this many bytes, before parsing them.
    #[arg(long, env = "KUBEGATE_JWT_MAX_BYTES", default_value_t = 8192)]
    pub jwt_max_bytes: usize,

    /// Remember this many verified tokens (by their SHA-256), so that a caller sending the same
    /// token again is not verified again until it expires or its JWKS key set changes; 0:
    /// verify every time.
    #[arg(long, env = "KUBEGATE_JWT_CACHE_ENTRIES", default_value_t = 10_000)]
    pub jwt_cache_entries: usize,

    /// The claim naming the subject.
    #[arg(long, env = "KUBEGATE_JWT_SUBJECT_CLAIM", default_value = "sub")]
    pub jwt_subject_claim: String,

    /// Policy file (YAML, or TOML when it ends in .toml) binding subjects and groups to grants.
    #[arg(long, env = "KUBEGATE_POLICY_FILE")]
    pub policy_file: Option<PathBuf>,

    /// How often the policy file is checked for changes.
    #[arg(long, env = "KUBEGATE_POLICY_RELOAD_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub policy_reload_interval: Duration,
}

/// What kubegate's tokens look like: issuer, audience, the HS secret and algorithm, and the
/// claims naming groups and roles. `serve` verifies tokens with these; `token` mints one.
#[derive(Debug, Clone, Args)]
pub struct TokenFormat {
    /// The exact `iss` every token must carry.
    #[arg(long, env = "KUBEGATE_JWT_ISSUER", default_value = "kubegate")]
    pub jwt_issuer: String,

    /// Accepted `aud` values (comma-separated); a token must name one of them.
    #[arg(
        long,
        env = "KUBEGATE_JWT_AUDIENCE",
        default_value = "kubegate",
        value_delimiter = ','
    )]
    pub jwt_audience: Vec<String>,

    /// HMAC secret (at least 32 bytes) for HS tokens, e.g. from bots or `kubegate token`.
    #[arg(long, env = "KUBEGATE_JWT_HS_SECRET", hide_env_values = true, value_parser = parse_secret)]
    pub jwt_hs_secret: Option<SecretString>,

    /// The one algorithm HS tokens may use: HS256, HS384 or HS512.
    #[arg(long, env = "KUBEGATE_JWT_HS_ALGORITHM", default_value = "HS256")]
    pub jwt_hs_algorithm: String,

    /// The claim listing the caller's groups (a string or an array).
    #[arg(long, env = "KUBEGATE_JWT_GROUPS_CLAIM", default_value = "groups")]
    pub jwt_groups_claim: String,

    /// The claim whose entries grant roles directly: `role` or `role@cluster/namespace` (globs).
    /// Empty disables it.
    #[arg(
        long,
        env = "KUBEGATE_JWT_ROLES_CLAIM",
        default_value = "kubegate_roles"
    )]
    pub jwt_roles_claim: String,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain in PostgreSQL and report the first entry where it breaks (exit 1).
    Verify {
        /// PostgreSQL URL.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = parse_secret)]
        database_url: SecretString,
        /// First sequence number to check (default: 1).
        #[arg(long)]
        from: Option<i64>,
        /// Last sequence number to check (default: the head).
        #[arg(long)]
        to: Option<i64>,
        /// Ed25519 public key (PEM) to check signed checkpoints with.
        #[arg(long, env = "KUBEGATE_AUDIT_PUBLIC_KEY")]
        public_key: Option<PathBuf>,
    },
}

/// `kubegate port-forward`.
#[derive(Debug, Clone, Args)]
pub struct PortForwardArgs {
    /// kubegate's URL, e.g. https://kubegate.example.com.
    #[arg(long, env = "KUBEGATE_SERVER")]
    pub server: url::Url,
    /// The cluster; may be omitted when the server shows you one.
    #[arg(long)]
    pub cluster: Option<String>,
    /// The pod's namespace.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// A file holding the bearer token (else KUBEGATE_TOKEN).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// The local address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub address: std::net::IpAddr,
    /// `pod/NAME` (or `NAME`).
    pub pod: String,
    /// `LOCAL:REMOTE` or `PORT` (the same on both sides); `:REMOTE` picks a free local port.
    #[arg(required = true)]
    pub ports: Vec<String>,
}

/// `kubegate credential`.
#[derive(Debug, Clone, Args)]
pub struct CredentialArgs {
    /// The kubegate token (a JWT). Never printed anywhere but to kubectl.
    #[arg(long, env = "KUBEGATE_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    pub token: Option<SecretString>,
    /// A file holding the token instead (read at each call, so a refreshed token is used).
    #[arg(long, env = "KUBEGATE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

/// `kubegate token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The subject.
    #[arg(long)]
    pub sub: String,
    /// A grant for the roles claim: `role` or `role@cluster/namespace`; repeatable.
    #[arg(long = "role")]
    pub roles: Vec<String>,
    /// A group; repeatable.
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// Lifetime.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: Duration,

    #[command(flatten)]
    pub format: TokenFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InClusterMode {
    Auto,
    Always,
    Never,
}

/// When an action's outcome is committed (`KUBEGATE_AUDIT_OUTCOME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditOutcome {
    Sync,
    Async,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 10s, 2m)"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

fn parse_role_rate(s: &str) -> Result<(crate::role::Role, u32), String> {
    let (role, rate) = s
        .split_once('=')
        .ok_or("expected role=rate, e.g. viewer=100")?;
    let role =
        crate::role::Role::parse(role.trim()).ok_or_else(|| format!("unknown role {role:?}"))?;
    let rate = rate
        .trim()
        .parse()
        .map_err(|_| format!("{rate:?} is not a number"))?;
    Ok((role, rate))
}

fn parse_console_path(s: &str) -> Result<String, String> {
    let path = s.trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    if !path.starts_with('/')
        || segments.is_empty()
        || segments.iter().any(|seg| {
            seg.is_empty()
                || *seg == "."
                || *seg == ".."
                || !seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
    {
        return Err(format!(
            "{s:?} is not a path like /ui (segments of letters, digits, '-', '_' and '.')"
        ));
    }
    const TAKEN: [&str; 7] = [
        "v1",
        "k8s",
        "docs",
        "openapi.json",
        "healthz",
        "readyz",
        "metrics",
    ];
    if TAKEN.contains(&segments[0]) {
        return Err(format!(
            "{path} is under /{}, which kubegate already serves",
            segments[0]
        ));
    }
    Ok(path.to_owned())
}

fn parse_secret(s: &str) -> Result<SecretString, String> {
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    Ok(SecretString::from(s.to_owned()))
}
