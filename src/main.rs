use anyhow::Context;
use clap::Parser;
use kubegate::{Application, Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(config) => {
            kubegate::telemetry::init(config.log_format, &config.log_filter)?;
            let app = Application::build(config).await.inspect_err(|e| {
                tracing::error!(error = ?e, "kubegate failed to start");
            })?;
            app.run().await.context("HTTP server failed")
        }
        Command::Token(args) => {
            print!("{}", kubegate::auth::jwt::mint(&args)?);
            println!();
            Ok(())
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
