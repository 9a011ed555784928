// Rebuild when a migration is added: `sqlx::migrate!` embeds the directory at compile time.
// `kubegate --version` names the commit: KUBEGATE_COMMIT when set (an image build without the
// repository), else git's HEAD, else "unknown".
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed=KUBEGATE_COMMIT");
    let commit = std::env::var("KUBEGATE_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    // A new commit changes HEAD's ref; a checkout of another branch changes HEAD itself.
    if let Ok(head) = std::fs::read_to_string(".git/HEAD") {
        println!("cargo:rerun-if-changed=.git/HEAD");
        if let Some(reference) = head.strip_prefix("ref: ") {
            println!("cargo:rerun-if-changed=.git/{}", reference.trim());
        }
    }
    println!("cargo:rustc-env=KUBEGATE_COMMIT={commit}");
}
