//! The committed OpenAPI document is the contract: it must be exactly what the code generates and
//! what the service serves.

use crate::helpers::spawn_app;

const COMMITTED: &str = include_str!("../../openapi/openapi.json");
const REGENERATE: &str = "cargo run -- openapi --output openapi/openapi.json";

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let generated = kubegate::api::openapi::pretty_json();
    assert!(
        generated == COMMITTED,
        "openapi/openapi.json is out of date with the code. Regenerate it with:\n\n    {REGENERATE}\n"
    );
}

#[test]
fn every_operation_is_named_tagged_summarised_and_every_response_described() {
    let spec: serde_json::Value = serde_json::from_str(COMMITTED).unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    let mut ids = std::collections::HashSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(
                id.contains('_') && id.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{id}: <verb>_<resource>"
            );
            assert!(ids.insert(id.to_owned()), "{id} is used twice");
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{id}: no tag"
            );
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{id}: no summary"
            );
            if path.starts_with("/v1/integrations/slack/") {
                // Slack signs its requests; no JWT.
                assert_eq!(op["security"], serde_json::json!([{"slackSignature": []}]));
                for code in ["400", "401", "404"] {
                    assert!(op["responses"].get(code).is_some(), "{id}: {code}");
                }
            } else if path.starts_with("/v1/") {
                // A bearer token, alone or with the person a bot acts for.
                assert_eq!(
                    op["security"],
                    serde_json::json!([{"bearer": []}, {"bearer": [], "onBehalfOf": []}]),
                    "{id}: no security requirement"
                );
                for code in ["400", "401", "403", "429"] {
                    assert!(
                        op["responses"].get(code).is_some(),
                        "{id}: {code} undocumented"
                    );
                }
                // Idempotency-Key is a parameter where kubegate honours it, so generated clients
                // can set it per call (X-On-Behalf-Of is a security scheme: set once per client).
                let headers: Vec<&str> = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "header")
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                let retried = method != "get" && path != "/v1/access-reviews";
                assert_eq!(
                    headers.contains(&"Idempotency-Key"),
                    retried,
                    "{id}: Idempotency-Key documented where the middleware honours it"
                );
            }
            for (code, res) in op["responses"].as_object().unwrap() {
                assert!(
                    res["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{id} {code}: no description"
                );
                // A protocol switch (a WebSocket) has no body.
                assert!(
                    res["content"].is_object() || code == "101",
                    "{id} {code}: no body type"
                );
            }
        }
    }
}

#[test]
fn every_schema_has_an_example() {
    let spec: serde_json::Value = serde_json::from_str(COMMITTED).unwrap();
    for (name, schema) in spec["components"]["schemas"].as_object().unwrap() {
        assert!(
            schema.get("example").is_some() || schema.get("examples").is_some(),
            "{name} has no example"
        );
    }
}

#[tokio::test]
async fn the_service_serves_the_committed_document_and_swagger_ui() {
    let app = spawn_app().await;

    let served: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();
    let committed: serde_json::Value = serde_json::from_str(COMMITTED).unwrap();
    assert!(
        served == committed,
        "the served document differs from openapi/openapi.json"
    );

    let res = app.get("/docs").await;
    assert_eq!(res.status().as_u16(), 308);
    assert_eq!(res.headers()["location"], "/docs/");
    let res = app.get("/docs/").await;
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.text().await.unwrap().contains("swagger-ui"));
    let res = app.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(
        res.status().as_u16(),
        200,
        "Swagger UI assets are vendored in the binary"
    );
}
