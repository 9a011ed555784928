//! The README tells the truth: its quick-start commands work as shown against a fresh kubegate,
//! its configuration table and `kubegate serve --help` name the same settings, and each
//! subcommand's help shows only its own options.

use crate::helpers::{TEST_AUDIENCE, TEST_ISSUER, TEST_SECRET, spawn_app};

const BIN: &str = env!("CARGO_BIN_EXE_kubegate");
const README: &str = include_str!("../../README.md");

/// The shell block after a `<!-- ci: ... -->` marker.
fn marked_block(marker: &str) -> String {
    let at = README
        .find(marker)
        .unwrap_or_else(|| panic!("README has no {marker}"));
    let rest = &README[at..];
    let start = rest.find("```sh\n").expect("a sh block after the marker") + "```sh\n".len();
    let end = rest[start..].find("```").expect("the block ends");
    rest[start..start + end].to_owned()
}

#[tokio::test]
async fn the_quick_start_commands_work_as_shown() {
    let app = spawn_app().await;
    let block = marked_block("<!-- ci: runs against a fresh kubegate -->");
    assert!(block.contains("localhost:8080"), "{block}");
    // The same commands, against this test's kubegate instead of port 8080.
    let script = block.replace("localhost:8080", app.address.trim_start_matches("http://"));
    let out = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("KUBEGATE_BIN", BIN)
        .env("KUBEGATE_JWT_HS_SECRET", TEST_SECRET)
        .env("KUBEGATE_JWT_ISSUER", TEST_ISSUER)
        .env("KUBEGATE_JWT_AUDIENCE", TEST_AUDIENCE)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(answers.len(), 4, "{stdout}");
    assert_eq!(answers[0]["status"], "ok");
    assert_eq!(answers[1]["ready"], true, "{}", answers[1]);
    assert_eq!(answers[2]["subject"], "alice");
    assert_eq!(answers[2]["grants"][0]["role"], "admin");
    assert_eq!(answers[3]["items"][0]["name"], "dev", "{}", answers[3]);
}

#[test]
fn the_configuration_table_and_serve_help_name_the_same_settings() {
    let out = std::process::Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let documented: Vec<&str> = help
        .split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split([']', '=']).next())
        .collect();
    let table: Vec<&str> = README
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|v| v.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .collect();
    for var in &documented {
        assert!(table.contains(var), "the README's table lacks {var}");
    }
    for var in &table {
        assert!(
            documented.contains(var),
            "the README documents {var}, which `kubegate serve` does not have"
        );
    }
}

#[test]
fn each_subcommand_shows_only_its_own_options_and_version_names_the_commit() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let version = run(&["--version"]);
    assert!(
        version.starts_with(&format!("kubegate {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let token = run(&["token", "--help"]);
    for own in [
        "--sub",
        "--role",
        "--ttl",
        "KUBEGATE_JWT_HS_SECRET",
        "KUBEGATE_JWT_ISSUER",
    ] {
        assert!(token.contains(own), "token --help lacks {own}:\n{token}");
    }
    for server in [
        "KUBEGATE_RATE_LIMIT",
        "KUBEGATE_IDEMPOTENCY_TTL",
        "KUBEGATE_AUDIT_READS",
        "KUBEGATE_JWKS_URL",
        "DATABASE_URL",
        "KUBEGATE_LISTEN",
    ] {
        assert!(
            !token.contains(server),
            "token --help lists the server setting {server}:\n{token}"
        );
    }
    let verify = run(&["audit", "verify", "--help"]);
    assert!(verify.contains("DATABASE_URL") && !verify.contains("KUBEGATE_LISTEN"));
    let openapi = run(&["openapi", "--help"]);
    assert!(openapi.contains("--output") && !openapi.contains("KUBEGATE_"));
    let forward = run(&["port-forward", "--help"]);
    assert!(
        forward.contains("--server") && forward.contains("KUBEGATE_SERVER"),
        "{forward}"
    );
    assert!(!forward.contains("KUBEGATE_LISTEN") && !forward.contains("DATABASE_URL"));
}
