use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn an_unknown_route_is_a_404_problem() {
    let app = spawn_app().await;
    let body = assert_problem(app.get("/v1/nope").await, 404, "not-found").await;
    assert!(body["detail"].as_str().unwrap().contains("/v1/nope"));
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem_with_allow() {
    let app = spawn_app().await;
    let res = app
        .client
        .delete(format!("{}/v1/clusters", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["allow"], "GET");
    assert_problem(res, 405, "method-not-allowed").await;
    assert!(app.fake("dev").mutations().is_empty());
}

#[tokio::test]
async fn an_unsupported_method_is_a_405_even_with_an_idempotency_key() {
    let app = spawn_app().await;
    let res = app
        .client
        .request(
            reqwest::Method::TRACE,
            format!("{}/v1/audit/checkpoints", app.address),
        )
        .bearer_auth(&app.token)
        .header("idempotency-key", "k-1")
        .send()
        .await
        .unwrap();
    assert_problem(res, 405, "method-not-allowed").await;
    // A method the path does not have, with a key the caller used before for the real one.
    let url = format!(
        "{}{}",
        app.address,
        crate::helpers::ns("/deployments/web/replicas")
    );
    let send = |method| {
        app.client
            .request(method, &url)
            .bearer_auth(&app.token)
            .header("idempotency-key", "k-2")
            .json(&serde_json::json!({"replicas": 1}))
            .send()
    };
    let first = send(reqwest::Method::PUT).await.unwrap();
    assert_eq!(first.status().as_u16(), 404, "no such deployment yet");
    let wrong = send(reqwest::Method::POST).await.unwrap();
    assert_problem(wrong, 405, "method-not-allowed").await;
}

#[tokio::test]
async fn a_nul_in_a_name_or_a_filter_is_answered_and_audited_not_a_500() {
    let app = spawn_app().await;
    // Decoded from the path, the name holds a NUL: invalid, refused, and the refusal audited
    // (the NUL stored as U+FFFD: PostgreSQL's text has none).
    let (status, body) = app
        .put(
            &crate::helpers::ns("/deployments/we%00b/replicas"),
            serde_json::json!({"replicas": 1}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = app.get_json("/v1/audit?resource=we%00b").await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{body}");
    assert_eq!(items[0]["resourceName"], "we\u{FFFD}b");
    assert_eq!(items[0]["stage"], "rejected");
    let (status, body) = app.get_json("/v1/audit?requestId=%00").await;
    assert_eq!(
        (status, body["items"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    let (status, body) = app.get_json("/v1/audit/verify").await;
    assert_eq!((status, &body["intact"]), (200, &serde_json::json!(true)));
    assert!(app.fake("dev").mutations().is_empty());
}

#[tokio::test]
async fn a_well_formed_request_id_is_echoed_and_others_are_replaced() {
    let app = spawn_app().await;

    let res = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("x-request-id", "chatops-42:retry.1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "chatops-42:retry.1");

    let res = app
        .client
        .get(format!("{}/v1/nope", app.address))
        .header("x-request-id", "chatops-42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "chatops-42");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        body["requestId"], "chatops-42",
        "the problem names the same request id"
    );

    for bad in ["has spaces", "semi;colon", &"x".repeat(129)] {
        let res = app
            .client
            .get(format!("{}/healthz", app.address))
            .header("x-request-id", bad)
            .send()
            .await
            .unwrap();
        let minted = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_ne!(minted, bad);
        assert!(
            uuid::Uuid::parse_str(&minted).is_ok(),
            "minted a UUID, got {minted}"
        );
    }

    let res = app.get("/healthz").await;
    assert!(uuid::Uuid::parse_str(res.headers()["x-request-id"].to_str().unwrap()).is_ok());
}
