use crate::helpers::{Options, spawn_app, spawn_app_with};

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_reports_a_migrated_database_and_each_clusters_reachability() {
    let app = spawn_app_with(Options {
        clusters: vec!["dev", "prod"],
        ..Default::default()
    })
    .await;
    app.fake("prod").stop().await;

    let (status, body) = app.get_json("/readyz").await;

    // One unreachable cluster does not take kubegate out of service for the others.
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
    assert_eq!(body["database"]["reachable"], true);
    assert_eq!(body["database"]["pendingMigrations"], serde_json::json!([]));
    let clusters = body["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 2);
    assert_eq!(clusters[0]["name"], "dev");
    assert_eq!(clusters[0]["reachable"], true);
    assert_eq!(clusters[1]["name"], "prod");
    assert_eq!(clusters[1]["reachable"], false);
    assert!(
        clusters[1]["error"]
            .as_str()
            .unwrap()
            .contains("unavailable"),
        "{body}"
    );
}

#[tokio::test]
async fn with_no_kubeconfig_kubegate_starts_lists_no_clusters_and_says_so() {
    let app = spawn_app_with(Options {
        clusters: vec![],
        ..Default::default()
    })
    .await;

    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(body["clusters"], serde_json::json!([]));
    assert!(
        body["notes"][0]
            .as_str()
            .unwrap()
            .contains("no clusters configured"),
        "{body}"
    );

    let (status, body) = app.get_json("/v1/clusters").await;
    assert_eq!(status, 200);
    assert_eq!(body["items"], serde_json::json!([]));
}

#[tokio::test]
async fn readyz_is_503_when_the_database_goes_away() {
    let app = spawn_app().await;
    let (status, _) = app.get_json("/readyz").await;
    assert_eq!(status, 200);

    // Take the test database away under kubegate's feet.
    let admin = sqlx::PgPool::connect(&crate::helpers::admin_url())
        .await
        .unwrap();
    let name = url::Url::parse(&app.database_url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_owned();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE \"{name}\" WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .unwrap();

    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    assert_eq!(body["database"]["reachable"], false);
    assert!(body["database"]["error"].is_string());
    // The body never carries the database URL.
    assert!(!body.to_string().contains("postgres://"));
}
