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
        // Settings that need each other, checked before anything starts.
        let oidc = match (&config.console_oidc_client_id, &config.auth.oidc_issuer) {
            (None, _) => None,
            (Some(client_id), Some(issuer)) => Some(api::console::Oidc::new(
                issuer,
                client_id,
                &config.console_oidc_scopes,
            )?),
            (Some(_), None) => anyhow::bail!(
                "KUBEGATE_CONSOLE_OIDC_CLIENT_ID needs KUBEGATE_OIDC_ISSUER: the issuer the console signs in with"
            ),
        };
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
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(tls_config(cert, key)?),
            _ => None,
        };
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
            impersonate: config.impersonate_clusters.clone(),
            public_url: config.public_url.clone(),
            tls_ca: tls.as_ref().map(|t| t.ca_pem.clone()),
            apply: crate::gateway::ApplySettings {
                max_body_bytes: config.apply_max_body_bytes,
                max_objects: config.apply_max_objects,
                deployer_kinds: config.apply_deployer_kinds.clone(),
            },
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
        let console = config
            .console
            .then(|| Arc::new(api::console::Console::new(&config.console_path, oidc)));
        let server = HttpServer::new(move || {
            // Called on each worker's own thread: its requests use that worker's cluster clients.
            crate::cluster::mark_http_worker();
            App::new()
                .app_data(app_state.clone())
                .app_data(slack.clone())
                .configure(|cfg| api::configure(cfg, max_body, !separate_metrics, console.clone()))
                .wrap(from_fn(api::idempotency::idempotency))
                .wrap(from_fn(api::middleware::request_context))
                .wrap(from_fn(api::compress::large_json))
        });
        let mut server = match &tls {
            Some(tls) => server.listen_rustls_0_23(listener, tls.server.clone())?,
            None => server.listen(listener)?,
        }
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
        release_freed_memory();
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

/// Hand back to the system what starting up allocated and let go of (the OpenAPI document's
/// construction, the workers' routers, the migrations): glibc's malloc keeps freed memory in its
/// arenas for reuse, about 7 MiB of the idle process's 30 MiB. Under load the arenas grow again to
/// what the load needs.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of glibc's own heaps to the kernel; it takes the
    // allocator's locks like any malloc call and may run at any time.
    unsafe {
        libc::malloc_trim(0);
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

/// HTTPS settings from PEM files: the server's rustls configuration (the build's one provider,
/// ring), and the chain's last certificate, the CA that kubeconfigs handed out trust.
struct Tls {
    server: rustls::ServerConfig,
    ca_pem: String,
}

fn tls_config(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<Tls> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |p: &std::path::Path, what: &str| {
        std::fs::read(p).with_context(|| format!("{what}: cannot read {}", p.display()))
    };
    let certs: Vec<pem::Pem> = pem::parse_many(read(cert, "KUBEGATE_TLS_CERT")?)
        .context("KUBEGATE_TLS_CERT: not PEM")?
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .collect();
    let Some(last) = certs.last() else {
        anyhow::bail!("KUBEGATE_TLS_CERT: no certificate in {}", cert.display());
    };
    let ca_pem = pem::encode(last);
    let chain: Vec<CertificateDer<'static>> = certs
        .iter()
        .map(|p| CertificateDer::from(p.contents().to_vec()))
        .collect();
    let key_pem =
        pem::parse(read(key, "KUBEGATE_TLS_KEY")?).context("KUBEGATE_TLS_KEY: not PEM")?;
    let der = key_pem.contents().to_vec();
    let key: PrivateKeyDer<'static> = match key_pem.tag() {
        "PRIVATE KEY" => PrivateKeyDer::Pkcs8(der.into()),
        "RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(der.into()),
        "EC PRIVATE KEY" => PrivateKeyDer::Sec1(der.into()),
        other => anyhow::bail!("KUBEGATE_TLS_KEY: a {other} is not a private key"),
    };
    let server = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .context("KUBEGATE_TLS_CERT and KUBEGATE_TLS_KEY do not make a usable pair")?;
    Ok(Tls { server, ca_pem })
}
