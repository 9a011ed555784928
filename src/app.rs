//! Building and running the application: one `AppState` shared by every handler, built once here.
//! `main` and the tests start the very same application (tests on port 0).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, dev::Server, web};
use anyhow::Context;

use crate::action::Limits;
use crate::api;
use crate::audit::{AuditLog, CheckpointKey};
use crate::auth::Auth;
use crate::cluster::ClusterRegistry;
use crate::config::Config;
use crate::db;
use crate::gateway::AppState;
use crate::metrics::Metrics;

pub struct Application {
    port: u16,
    servers: Vec<Server>,
    state: web::Data<AppState>,
    shutdown_delay: Duration,
}

impl Application {
    /// Connect and migrate the database, load the clusters, bind the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        install_crypto_provider();
        // Once, first, on this thread, rather than on each worker that needs it (see `Published`):
        // what is built after it reuses the memory its construction let go of.
        std::sync::LazyLock::force(&api::openapi::PUBLISHED);
        let db = db::pool(&config)?;
        db::migrate(&db).await?;
        db::warm(&db).await;
        let metrics = Arc::new(Metrics::new());
        let clusters = ClusterRegistry::load(&config, Some(metrics.clone())).await?;
        let audit = AuditLog::start(db.clone(), Some(metrics.clone()))
            .with_sync_outcomes(config.audit_outcome == crate::config::AuditOutcome::Sync);
        // Intents older than any action can last were left by a crash: close them as unknown,
        // now and, for those still recent, later (`keep_recovering`).
        let longest = config.max_wait + config.cluster_timeout * 4 + Duration::from_secs(60);
        let (_, recovery) = audit
            .close_orphaned_intents(config.audit_recovery_after.unwrap_or(longest))
            .await
            .map_err(|e| anyhow::anyhow!("audit recovery: {e}"))?;
        tokio::spawn(audit.clone().keep_recovering(recovery));
        let checkpoint_key = match &config.audit_signing_key {
            Some(path) => Some(Arc::new(CheckpointKey::from_pem_file(path)?)),
            None => None,
        };
        let limits = crate::auth::limits::RateLimits::new(
            config.rate_limit,
            &config.rate_limit_roles,
            config.rate_limit_shared,
        );
        let auth = Arc::new(Auth::from_config(&config.auth, limits)?);
        if config.rate_limit_shared {
            let (auth, pool, synced) = (auth.clone(), db.clone(), metrics.rate_limit_syncs.clone());
            tokio::spawn(async move { auth.limits.keep_sharing(pool, synced).await });
        }
        metrics.register(Box::new(auth.authenticator.verifications.clone()));
        metrics.register(Box::new(auth.policy_reloads.clone()));
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
            sessions: crate::gateway::session::SessionLimits {
                exec_timeout_max: config.sessions.exec_timeout_max,
                exec_output_max: usize::try_from(config.sessions.exec_output_max_bytes)
                    .unwrap_or(usize::MAX),
                idle_timeout: config.sessions.session_idle_timeout,
                max_duration: config.sessions.session_max_duration,
                record_input: config.sessions.session_record_input,
            },
            metrics,
            draining: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        });
        let slack = web::Data::new(api::slack::Slack::from_config(&config.slack)?);

        let listener = TcpListener::bind(config.listen)
            .with_context(|| format!("KUBEGATE_LISTEN: cannot listen on {}", config.listen))?;
        let address = listener.local_addr()?;
        let max_body = config.max_body_bytes;
        let separate_metrics = config.metrics_listen.is_some();
        let app_state = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(slack.clone())
                .configure(|cfg| api::configure(cfg, max_body, !separate_metrics))
                .wrap(from_fn(api::idempotency::idempotency))
                .wrap(from_fn(api::middleware::request_context))
        })
        .listen(listener)?
        // kubegate handles SIGTERM/SIGINT itself (see `run`): readiness fails first.
        .disable_signals()
        .shutdown_timeout(config.shutdown_timeout.as_secs().max(1));
        if let Some(workers) = config.workers {
            server = server.workers(usize::from(workers));
        }
        let mut servers = vec![server.run()];
        if let Some(addr) = config.metrics_listen {
            let metrics_state = state.clone();
            let metrics = HttpServer::new(move || {
                App::new()
                    .app_data(metrics_state.clone())
                    .route("/metrics", web::get().to(api::health::metrics))
            })
            .bind(addr)
            .with_context(|| format!("KUBEGATE_METRICS_LISTEN: cannot listen on {addr}"))?
            .workers(1)
            .disable_signals()
            .run();
            tracing::info!(%addr, "metrics listening");
            servers.push(metrics);
        }
        tracing::info!(%address, "kubegate listening");
        Ok(Self {
            port: address.port(),
            servers,
            state,
            shutdown_delay: config.shutdown_delay,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serve until SIGTERM or SIGINT: then /readyz fails, after KUBEGATE_SHUTDOWN_DELAY the
    /// listeners close, in-flight requests get KUBEGATE_SHUTDOWN_TIMEOUT to finish, the audit
    /// outcomes still queued are written, and the process exits.
    pub async fn run(self) -> std::io::Result<()> {
        let handles: Vec<_> = self.servers.iter().map(|s| s.handle()).collect();
        let state = self.state.clone();
        let delay = self.shutdown_delay;
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!(
                ?delay,
                "shutting down: readiness fails, then the listeners close"
            );
            state
                .draining
                .store(true, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            for h in handles {
                h.stop(true).await;
            }
        });
        // Every listener runs at once (the main one and, if separate, the metrics one).
        let served = futures::future::try_join_all(self.servers)
            .await
            .map(|_| ());
        tracing::info!("listeners closed; writing the audit entries still queued");
        // Answers do not wait for their outcome's commit (`AuditLog::record`): what is still
        // queued is written before the process exits, with the outcome_unknown entries of the
        // actions the server dropped unfinished (queued as their requests are dropped).
        if !self
            .state
            .audit
            .until_no_action_under_way(Duration::from_secs(5))
            .await
        {
            tracing::error!("actions still under way at exit; their intents stay open");
        }
        if let Err(e) = self.state.audit.drain(Duration::from_secs(10)).await {
            tracing::error!(error = %e, "audit entries queued at shutdown were not written");
        }
        served
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // No signal handling available: run until the process is killed.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Make ring the process-wide rustls provider (idempotent). kube, sqlx and reqwest all use rustls;
/// the build enables only ring, and reqwest needs it installed before a client is built.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
