use anyhow::Context;
use clap::Parser;
use kubegate::{Application, Cli, Command};

/// mimalloc rather than glibc's malloc: malloc and free were a tenth to a quarter of kubegate's
/// CPU per audited request (BENCHMARKS.md). The library and its tests keep the system's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One thread for the main runtime: it runs the audit writer and kubegate's background tasks
/// (HTTP requests and their cluster calls run on actix-web's worker threads, the watches on
/// `cluster::io`'s runtime). A request's hand-offs to the writer and back then wake that one
/// thread; a multi-threaded runtime also woke its idle workers to look for work.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(config) => {
            kubegate::install_crypto_provider();
            let telemetry = kubegate::telemetry::init(
                config.log_format,
                &config.log_filter,
                config.otel_endpoint.as_deref(),
            )?;
            let served = serve(config).await;
            telemetry.shutdown().await;
            served
        }
        Command::Audit(kubegate::config::AuditCommand::Verify {
            database_url,
            from,
            to,
            public_key,
        }) => {
            kubegate::install_crypto_provider();
            use secrecy::ExposeSecret;
            let pool = sqlx::PgPool::connect(database_url.expose_secret())
                .await
                .context("connecting to DATABASE_URL")?;
            let key = match public_key {
                Some(p) => Some(kubegate::audit::public_key_from_pem(&p)?),
                None => None,
            };
            let report = kubegate::audit::verify::verify(&pool, from, to, key.as_deref()).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.intact {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Token(args) => {
            print!("{}", kubegate::auth::jwt::mint(&args)?);
            println!();
            Ok(())
        }
        Command::Credential(args) => {
            use secrecy::ExposeSecret;
            let token = match (&args.token_file, &args.token) {
                (Some(file), _) => std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?
                    .trim()
                    .to_owned(),
                (None, Some(t)) => t.expose_secret().trim().to_owned(),
                (None, None) => anyhow::bail!(
                    "no kubegate token: set KUBEGATE_TOKEN (or KUBEGATE_TOKEN_FILE), e.g. from your identity provider"
                ),
            };
            println!(
                "{}",
                serde_json::json!({
                    "apiVersion": "client.authentication.k8s.io/v1",
                    "kind": "ExecCredential",
                    "status": {"token": token},
                })
            );
            Ok(())
        }
        Command::PortForward(args) => {
            kubegate::install_crypto_provider();
            kubegate::forward::run(args).await
        }
        Command::Openapi { output } => {
            let spec = kubegate::api::openapi::pretty_json();
            match output {
                Some(path) => std::fs::write(&path, spec)
                    .with_context(|| format!("writing {}", path.display())),
                None => {
                    print!("{spec}");
                    Ok(())
                }
            }
        }
    }
}

async fn serve(config: kubegate::config::Config) -> anyhow::Result<()> {
    let app = Application::build(config).await.inspect_err(|e| {
        tracing::error!(error = ?e, "kubegate failed to start");
    })?;
    // What starting up freed goes back to the system (`Application::run` does the same for
    // glibc's malloc, the library's allocator).
    // SAFETY: mi_collect frees what mimalloc's heaps hold unused; it may be called at any time.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
    app.run().await.context("HTTP server failed")
}
