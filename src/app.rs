//! Building and running the application: one `AppState` shared by every handler, built once here.
//! `main` and the tests start the very same application (tests on port 0).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, dev::Server, web};
use anyhow::Context;
use sqlx::PgPool;

use crate::action::Limits;
use crate::api;
use crate::audit::{AuditLog, CheckpointKey};
use crate::auth::Auth;
use crate::cluster::ClusterRegistry;
use crate::config::Config;
use crate::db;

/// What handlers share.
pub struct AppState {
    pub db: PgPool,
    pub clusters: ClusterRegistry,
    pub limits: Limits,
    pub max_wait: Duration,
    pub auth: Arc<Auth>,
    pub audit: AuditLog,
    pub audit_reads: bool,
    pub checkpoint_key: Option<Arc<CheckpointKey>>,
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub idempotency_ttl: Duration,
    pub max_body_bytes: usize,
}

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Connect and migrate the database, load the clusters, bind the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        crate::install_crypto_provider();
        let db = db::pool(&config)?;
        db::migrate(&db).await?;
        let clusters = ClusterRegistry::load(&config).await?;
        let audit = AuditLog::start(db.clone());
        // Intents older than any action can last were left by a crash: close them as unknown.
        let longest = config.max_wait + config.cluster_timeout * 4 + Duration::from_secs(60);
        audit
            .close_orphaned_intents(longest)
            .await
            .map_err(|e| anyhow::anyhow!("audit recovery: {e}"))?;
        let checkpoint_key = match &config.audit_signing_key {
            Some(path) => Some(Arc::new(CheckpointKey::from_pem_file(path)?)),
            None => None,
        };
        let limits =
            crate::auth::limits::RateLimits::new(config.rate_limit, &config.rate_limit_roles);
        let auth = Arc::new(Auth::from_config(&config.auth, limits)?);
        auth.watch_policy(config.auth.policy_reload_interval);
        let limits = Limits {
            max_replicas: config.max_replicas,
            max_affected_cap: 1000,
        };
        let state = web::Data::new(AppState {
            db,
            clusters,
            limits,
            max_wait: config.max_wait,
            auth,
            audit,
            audit_reads: config.audit_reads,
            checkpoint_key,
            trusted_proxies: config.trusted_proxies.clone(),
            idempotency_ttl: config.idempotency_ttl,
            max_body_bytes: config.max_body_bytes,
        });

        let listener = TcpListener::bind(config.listen)
            .with_context(|| format!("KUBEGATE_LISTEN: cannot listen on {}", config.listen))?;
        let address = listener.local_addr()?;
        let max_body = config.max_body_bytes;
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .configure(|cfg| api::configure(cfg, max_body))
                .wrap(from_fn(api::idempotency::idempotency))
                .wrap(from_fn(api::middleware::request_context))
        })
        .listen(listener)?
        // On SIGTERM/SIGINT actix stops accepting and waits this long for in-flight requests.
        .shutdown_timeout(config.shutdown_timeout.as_secs().max(1));
        if let Some(workers) = config.workers {
            server = server.workers(usize::from(workers));
        }
        tracing::info!(%address, "kubegate listening");
        Ok(Self {
            port: address.port(),
            server: server.run(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serve until shut down by a signal.
    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }
}
