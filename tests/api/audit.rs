//! The audit log: what each kind of request records, write-ahead fail-closed behaviour, one chain
//! under concurrency and across two kubegate instances, tamper detection, append-only triggers,
//! recovery of orphaned intents, queries, export and signed checkpoints.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};

use crate::fake_kube::{Fault, Kind};
use crate::helpers::{
    Options, TestApp, admin_url, claims, deploy_body, eventually,
    hold_the_audit_head_after_an_intent, hs_token, ns, spawn_app, spawn_app_with,
};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys");

async fn entries(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, body) = app.get_json(&format!("/v1/audit{query}")).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

async fn by_audit_id(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, body) = app.get_json(&format!("/v1/audit/{id}")).await;
    assert_eq!(status, 200, "{body}");
    let mut items = body["items"].as_array().unwrap().clone();
    items.reverse();
    items
}

async fn verify(app: &TestApp) -> Value {
    let (status, body) = app.get_json("/v1/audit/verify").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The stages written for `audit_id`, oldest first.
async fn stages_of(app: &TestApp, audit_id: &str) -> Vec<String> {
    by_audit_id(app, audit_id)
        .await
        .iter()
        .map(|e| e["stage"].as_str().unwrap().to_owned())
        .collect()
}

/// The stages of `audit_id` once more than its intent is written (polled for up to 10 s).
async fn stages_once_closed(app: &TestApp, audit_id: &str) -> Vec<String> {
    let what = format!("a closing entry of {audit_id}");
    crate::helpers::eventually(&what, Duration::from_secs(10), async || {
        let stages = stages_of(app, audit_id).await;
        (stages.len() > 1).then_some(stages)
    })
    .await
}

async fn superuser(app: &TestApp) -> sqlx::PgConnection {
    let url = url::Url::parse(&admin_url()).unwrap();
    let mut url = url;
    url.set_path(url::Url::parse(&app.database_url).unwrap().path());
    <sqlx::PgConnection as sqlx::Connection>::connect(url.as_str())
        .await
        .unwrap()
}

#[tokio::test]
async fn an_allowed_mutation_writes_an_intent_then_its_outcome_and_answers_the_audit_id() {
    let app = spawn_app().await;
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    let res = app
        .send_as(
            Some(&app.token),
            reqwest::Method::PUT,
            &ns("/deployments/web/replicas"),
            Some(json!({"replicas": 3, "reason": "peak"})),
        )
        .await;
    assert_eq!(res.status().as_u16(), 200);
    let audit_id = res.headers()["x-audit-id"].to_str().unwrap().to_owned();
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["auditId"], audit_id.as_str());

    let e = by_audit_id(&app, &audit_id).await;
    assert_eq!(e.len(), 2);
    let (intent, outcome) = (&e[0], &e[1]);
    assert_eq!(
        (intent["stage"].as_str(), intent["outcome"].as_str()),
        (Some("intent"), Some("pending"))
    );
    assert_eq!(
        (outcome["stage"].as_str(), outcome["outcome"].as_str()),
        (Some("outcome"), Some("succeeded"))
    );
    assert!(outcome["seq"].as_i64() > intent["seq"].as_i64());
    for entry in [intent, outcome] {
        assert_eq!(entry["subject"], "root");
        assert_eq!(entry["issuer"], crate::helpers::TEST_ISSUER);
        assert_eq!(entry["action"], "scale");
        assert_eq!(
            (entry["cluster"].as_str(), entry["namespace"].as_str()),
            (Some("dev"), Some("default"))
        );
        assert_eq!(
            (
                entry["resourceKind"].as_str(),
                entry["resourceName"].as_str()
            ),
            (Some("deployment"), Some("web"))
        );
        assert_eq!(entry["requestId"], request_id.as_str());
        assert_eq!(entry["sourceIp"], "127.0.0.1");
        assert_eq!(entry["method"], "PUT");
        assert_eq!(entry["request"], json!({"replicas": 3, "reason": "peak"}));
        assert!(
            entry["decision"].as_str().unwrap_or("").contains("admin")
                || entry["stage"] == "outcome"
        );
    }
    assert!(
        intent["decision"]
            .as_str()
            .unwrap()
            .starts_with("admin on clusters *")
    );
    assert_eq!(outcome["httpStatus"], 200);
    assert_eq!(outcome["result"]["replicasBefore"], 1);
    assert_eq!(outcome["result"]["replicasAfter"], 3);
    let v = verify(&app).await;
    assert_eq!(v["intact"], true, "{v}");
}

#[tokio::test]
async fn refusals_failures_dry_runs_and_reads_are_recorded_as_such() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;

    // 403
    let viewer = hs_token(&claims("vera", &["viewer"]));
    let res = app
        .send_as(
            Some(&viewer),
            reqwest::Method::PUT,
            &ns("/deployments/web/replicas"),
            Some(json!({"replicas": 2})),
        )
        .await;
    assert_eq!(res.status().as_u16(), 403);
    let denied = by_audit_id(&app, res.headers()["x-audit-id"].to_str().unwrap()).await;
    assert_eq!(denied.len(), 1);
    assert_eq!(
        (denied[0]["stage"].as_str(), denied[0]["outcome"].as_str()),
        (Some("rejected"), Some("denied"))
    );
    assert_eq!(denied[0]["subject"], "vera");
    assert_eq!(denied[0]["httpStatus"], 403);
    assert_eq!(denied[0]["problemType"], "urn:kubegate:problem:forbidden");
    assert!(
        denied[0]["decision"]
            .as_str()
            .unwrap()
            .contains("needs the deployer role")
    );

    // 401: no subject, but recorded.
    let res = app
        .send_as(None, reqwest::Method::DELETE, &ns("/deployments/web"), None)
        .await;
    assert_eq!(res.status().as_u16(), 401);
    let unauth = by_audit_id(&app, res.headers()["x-audit-id"].to_str().unwrap()).await;
    assert_eq!(
        (unauth[0]["outcome"].as_str(), unauth[0]["subject"].as_str()),
        (Some("unauthenticated"), None)
    );
    assert_eq!(unauth[0]["path"], ns("/deployments/web"));

    // 422 (kubegate's validation) and 400 (malformed JSON before any handler).
    let res = app
        .send_as(
            Some(&app.token),
            reqwest::Method::PUT,
            &ns("/deployments/web/replicas"),
            Some(json!({"replicas": -1})),
        )
        .await;
    assert_eq!(res.status().as_u16(), 422);
    let invalid = by_audit_id(&app, res.headers()["x-audit-id"].to_str().unwrap()).await;
    assert_eq!(
        (
            invalid[0]["outcome"].as_str(),
            invalid[0]["httpStatus"].as_i64()
        ),
        (Some("invalid"), Some(422))
    );
    let res = app
        .client
        .put(format!("{}{}", app.address, ns("/deployments/web")))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let malformed = by_audit_id(&app, res.headers()["x-audit-id"].to_str().unwrap()).await;
    assert_eq!(
        (
            malformed[0]["outcome"].as_str(),
            malformed[0]["subject"].as_str()
        ),
        (Some("invalid"), Some("root"))
    );

    // Upstream failure: intent, then a failed outcome with the API server's words.
    fake.inject(Fault {
        status: 500,
        times: 10,
        retry_after: None,
        path_contains: Some("/scale".into()),
        method: None,
    });
    let res = app
        .send_as(
            Some(&app.token),
            reqwest::Method::PUT,
            &ns("/deployments/web/replicas"),
            Some(json!({"replicas": 2})),
        )
        .await;
    assert_eq!(res.status().as_u16(), 503);
    let failed = by_audit_id(&app, res.headers()["x-audit-id"].to_str().unwrap()).await;
    assert_eq!(failed.len(), 2);
    assert_eq!(
        (failed[1]["stage"].as_str(), failed[1]["outcome"].as_str()),
        (Some("outcome"), Some("failed"))
    );
    assert_eq!(
        failed[1]["problemType"],
        "urn:kubegate:problem:cluster-unavailable"
    );
    assert!(
        failed[1]["upstreamError"]
            .as_str()
            .unwrap()
            .contains("injected fault")
    );

    // A dry run is marked.
    let res = app
        .send_as(
            Some(&app.token),
            reqwest::Method::PUT,
            &ns("/deployments/other?dryRun=true"),
            Some(deploy_body("nginx:1", None)),
        )
        .await;
    let dry = by_audit_id(&app, res.headers()["x-audit-id"].to_str().unwrap()).await;
    assert!(dry.iter().all(|e| e["dryRun"] == true));

    // Reads are not audited by default.
    let res = app.get(&ns("/deployments")).await;
    assert!(res.headers().get("x-audit-id").is_none());
    assert!(entries(&app, "?action=read").await.is_empty());
    assert_eq!(verify(&app).await["intact"], true);
}

#[tokio::test]
async fn reads_are_audited_when_asked_and_secrets_never_reach_the_log() {
    let app = spawn_app_with(Options {
        config: Box::new(|c| c.audit_reads = true),
        ..Default::default()
    })
    .await;
    let res = app.get(&ns("/deployments")).await;
    let read = by_audit_id(&app, res.headers()["x-audit-id"].to_str().unwrap()).await;
    assert_eq!(
        (
            read[0]["stage"].as_str(),
            read[0]["outcome"].as_str(),
            read[0]["httpStatus"].as_i64()
        ),
        (Some("read"), Some("succeeded"), Some(200))
    );

    let body = json!({"containers": [{"name": "web", "image": "nginx:1", "env": [{"name": "DB_PASSWORD", "value": "hunter2-s3cr3t"}]}],
        "annotations": {"example.com/api-token": "tok-abc123", "team": "shop"}});
    let res = app
        .send_as(
            Some(&app.token),
            reqwest::Method::PUT,
            &ns("/deployments/web"),
            Some(body),
        )
        .await;
    assert_eq!(res.status().as_u16(), 201);
    let (_, all) = app.get_json("/v1/audit?limit=1000").await;
    let text = all.to_string();
    for secret in ["hunter2-s3cr3t", "tok-abc123", app.token.as_str()] {
        assert!(!text.contains(secret), "{secret} leaked into the audit log");
    }
    assert!(
        text.contains("DB_PASSWORD") && text.contains("\"team\":\"shop\""),
        "names and harmless values stay"
    );
}

#[tokio::test]
async fn without_the_audit_log_nothing_happens_but_reads_still_work() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    app.deploy_web().await;
    fake.clear_requests();

    // Make the audit tables unwritable under kubegate's feet.
    let mut su = superuser(&app).await;
    sqlx::query("REVOKE INSERT ON audit_event FROM PUBLIC")
        .execute(&mut su)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE audit_event RENAME TO audit_event_away")
        .execute(&mut su)
        .await
        .unwrap();

    let (status, body) = app
        .put(&ns("/deployments/web/replicas"), json!({"replicas": 5}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], "urn:kubegate:problem:audit-unavailable");
    assert!(!body.to_string().contains("postgres"), "no internals");
    assert!(fake.mutations().is_empty(), "the cluster received nothing");
    assert_eq!(
        fake.get(Kind::Deployment, "default", "web").unwrap()["spec"]["replicas"],
        1
    );

    let (status, _) = app.get_json(&ns("/deployments/web")).await;
    assert_eq!(status, 200, "reads do not need the audit log");

    sqlx::query("ALTER TABLE audit_event_away RENAME TO audit_event")
        .execute(&mut su)
        .await
        .unwrap();
    let (status, _) = app
        .put(&ns("/deployments/web/replicas"), json!({"replicas": 5}))
        .await;
    assert_eq!(status, 200, "and once it is back, so are mutations");
}

#[tokio::test]
async fn concurrent_requests_on_two_instances_make_one_intact_chain() {
    let a = spawn_app().await;
    a.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    // A second kubegate on the same database, talking to the same cluster.
    let shared = a.database_url.clone();
    let b = spawn_app_with(Options {
        database_url: Some(shared),
        ..Default::default()
    })
    .await;
    let b_path = "/v1/clusters/dev/namespaces/default/deployments/web/replicas";

    let calls = (0..40).map(|i| {
        let (app, path) = if i % 2 == 0 {
            (&a, ns("/deployments/web/replicas"))
        } else {
            (&b, b_path.to_owned())
        };
        async move {
            let res = app
                .send_as(
                    Some(&app.token),
                    reqwest::Method::PUT,
                    &path,
                    Some(json!({"replicas": i % 5})),
                )
                .await;
            (
                res.status().as_u16(),
                res.headers()
                    .get("x-audit-id")
                    .map(|v| v.to_str().unwrap().to_owned()),
            )
        }
    });
    let results = join_all(calls).await;
    let mut ids = Vec::new();
    for (status, id) in results {
        assert!(status == 200 || status == 404, "{status}");
        ids.push(id.unwrap());
    }
    // A read waits for the outcomes its own replica queued; b's are written once a read on b
    // has waited for them (within a batch's round trip anyway).
    assert_eq!(verify(&b).await["intact"], true);
    let v = verify(&a).await;
    assert_eq!(v["intact"], true, "{v}");
    let (_, all) = a.get_json("/v1/audit?limit=1000&action=scale").await;
    let items = all["items"].as_array().unwrap();
    for id in &ids {
        let mine: Vec<&Value> = items
            .iter()
            .filter(|e| e["auditId"] == id.as_str())
            .collect();
        assert_eq!(mine.len(), 2, "exactly one intent and one outcome for {id}");
    }
    // One total order: sequence numbers are contiguous from 1.
    let (_, everything) = a.get_json("/v1/audit?limit=1000").await;
    let mut seqs: Vec<i64> = everything["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    seqs.sort();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert_eq!(v["checked"].as_i64().unwrap(), seqs.len() as i64);
}

#[tokio::test]
async fn edits_deletions_and_reorderings_are_found_at_the_right_entry() {
    let app = spawn_app().await;
    for i in 0..4 {
        app.put(
            &ns(&format!("/deployments/web-{i}")),
            deploy_body("nginx:1", Some(1)),
        )
        .await;
    }
    assert_eq!(verify(&app).await["intact"], true);
    let mut su = superuser(&app).await;

    // The triggers refuse changes, even from the owner; the head only moves forward (its
    // trigger's WHEN condition) and is never deleted.
    for (stmt, refusal) in [
        (
            "UPDATE audit_event SET subject = 'mallory' WHERE seq = 3",
            "append-only",
        ),
        ("DELETE FROM audit_event WHERE seq = 3", "append-only"),
        ("TRUNCATE audit_event", "append-only"),
        (
            "UPDATE audit_head SET seq = seq - 1 WHERE id = 1",
            "only moves forward",
        ),
        ("DELETE FROM audit_head", "only moves forward"),
    ] {
        let err = sqlx::query(sqlx::AssertSqlSafe(stmt))
            .execute(&mut su)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(refusal), "{stmt}: {err}");
    }

    // A superuser can bypass them; verification still notices.
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut su)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_event SET subject = 'mallory' WHERE seq = 3")
        .execute(&mut su)
        .await
        .unwrap();
    let v = verify(&app).await;
    assert_eq!(
        (v["intact"].as_bool(), v["firstBreak"]["seq"].as_i64()),
        (Some(false), Some(3)),
        "{v}"
    );
    assert!(
        v["firstBreak"]["reason"]
            .as_str()
            .unwrap()
            .contains("edited")
    );
    sqlx::query("UPDATE audit_event SET subject = 'root' WHERE seq = 3")
        .execute(&mut su)
        .await
        .unwrap();
    assert_eq!(verify(&app).await["intact"], true, "restored");

    // Reordered: swap the content of entries 4 and 5 (hashes and all).
    sqlx::query("UPDATE audit_event SET seq = 1000000 WHERE seq = 4")
        .execute(&mut su)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_event SET seq = 4 WHERE seq = 5")
        .execute(&mut su)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_event SET seq = 5 WHERE seq = 1000000")
        .execute(&mut su)
        .await
        .unwrap();
    let v = verify(&app).await;
    assert_eq!(
        (v["intact"].as_bool(), v["firstBreak"]["seq"].as_i64()),
        (Some(false), Some(4)),
        "{v}"
    );

    // Deleted.
    sqlx::query("DELETE FROM audit_event WHERE seq = 2")
        .execute(&mut su)
        .await
        .unwrap();
    let v = verify(&app).await;
    assert_eq!(
        (v["intact"].as_bool(), v["firstBreak"]["seq"].as_i64()),
        (Some(false), Some(2)),
        "{v}"
    );
    assert!(
        v["firstBreak"]["reason"]
            .as_str()
            .unwrap()
            .contains("missing")
    );

    // The offline check says the same, with an exit code.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubegate"))
        .args(["audit", "verify"])
        .env("DATABASE_URL", &app.database_url)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["firstBreak"]["seq"], 2);
}

#[tokio::test]
async fn a_batch_of_more_rows_than_one_statement_carries_is_appended_in_order_and_chained() {
    let app = spawn_app().await;
    let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
    let log = kubegate::audit::AuditLog::start(pool.clone(), None);
    // One statement carries at most 32 rows: 70 take three statements in one transaction (the
    // last padded from 6 rows to 8), and a single row one statement of its own; both chained
    // after what the server wrote.
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    for count in [70, 1] {
        let batch: Vec<kubegate::audit::Entry> = (0..count)
            .map(|i| kubegate::audit::Entry {
                audit_id: kubegate::audit::new_id(),
                stage: "outcome".into(),
                outcome: "succeeded".into(),
                received_at_us: kubegate::audit::now_us(),
                subject: Some(format!("batch-{count}-{i}")),
                action: Some("scale".into()),
                ..Default::default()
            })
            .collect();
        let seqs = log.append(batch).await.unwrap();
        assert_eq!(seqs.len(), count);
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        let written: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, subject FROM audit_event WHERE subject LIKE $1 ORDER BY seq",
        )
        .bind(format!("batch-{count}-%"))
        .fetch_all(&pool)
        .await
        .unwrap();
        let expected: Vec<(i64, String)> = seqs
            .iter()
            .enumerate()
            .map(|(i, seq)| (*seq, format!("batch-{count}-{i}")))
            .collect();
        assert_eq!(
            written, expected,
            "rows in the order given, at the numbers returned"
        );
    }
    let v = verify(&app).await;
    assert_eq!(v["intact"], true, "{v}");
    assert_eq!(v["checked"], 2 + 70 + 1, "{v}");
}

#[tokio::test]
async fn intents_left_by_a_crash_are_closed_as_outcome_unknown_at_start() {
    let app = spawn_app().await;
    // What a kubegate that died between intent and outcome leaves behind.
    let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
    let log = kubegate::audit::AuditLog::start(pool, None);
    let orphan = kubegate::audit::Entry {
        audit_id: uuid::Uuid::new_v4(),
        stage: "intent".into(),
        outcome: "pending".into(),
        received_at_us: kubegate::audit::now_us() - 3_600_000_000,
        subject: Some("root".into()),
        action: Some("scale".into()),
        ..Default::default()
    };
    let recent = kubegate::audit::Entry {
        audit_id: uuid::Uuid::new_v4(),
        received_at_us: kubegate::audit::now_us(),
        ..orphan.clone()
    };
    log.append(vec![orphan.clone(), recent.clone()])
        .await
        .unwrap();

    // A restart (another instance on the same database) closes the old one only.
    let again = spawn_app_with(Options {
        database_url: Some(app.database_url.clone()),
        ..Default::default()
    })
    .await;
    let closed = by_audit_id(&again, &orphan.audit_id.to_string()).await;
    assert_eq!(closed.len(), 2);
    assert_eq!(
        (closed[1]["stage"].as_str(), closed[1]["outcome"].as_str()),
        (Some("outcome_unknown"), Some("unknown"))
    );
    assert_eq!(
        by_audit_id(&again, &recent.audit_id.to_string())
            .await
            .len(),
        1,
        "a recent intent may still be in flight elsewhere"
    );
    assert_eq!(verify(&again).await["intact"], true);
}

#[tokio::test]
async fn intents_left_while_kubegate_runs_are_closed_once_they_are_old_enough() {
    let app = spawn_app_with(Options {
        config: Box::new(|c| c.audit_recovery_after = Some(Duration::from_secs(1))),
        ..Default::default()
    })
    .await;
    app.deploy_web().await;
    let (status, scaled) = app
        .put(&ns("/deployments/web/replicas"), json!({"replicas": 2}))
        .await;
    assert_eq!(status, 200, "{scaled}");

    // What another replica that died between intent and outcome leaves, after this one started.
    let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
    let other = kubegate::audit::AuditLog::start(pool, None);
    let orphan = kubegate::audit::Entry {
        audit_id: uuid::Uuid::new_v4(),
        stage: "intent".into(),
        outcome: "pending".into(),
        received_at_us: kubegate::audit::now_us(),
        subject: Some("root".into()),
        action: Some("scale".into()),
        ..Default::default()
    };
    other.append(vec![orphan.clone()]).await.unwrap();
    let id = orphan.audit_id.to_string();
    assert_eq!(stages_of(&app, &id).await, ["intent"], "recent: left alone");

    assert_eq!(
        stages_once_closed(&app, &id).await,
        ["intent", "outcome_unknown"],
        "closed without a restart"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("kubegate_audit_outcomes_unknown_total{cause=\"recovery\"} 1"),
        "{metrics}"
    );
    assert_eq!(
        stages_of(&app, scaled["auditId"].as_str().unwrap()).await,
        ["intent", "outcome"],
        "an action with its outcome is left alone"
    );
    assert_eq!(verify(&app).await["intact"], true);
}

#[tokio::test]
async fn the_log_is_queried_newest_first_with_filters_cursors_and_an_ndjson_export() {
    let app = spawn_app().await;
    for i in 0..5 {
        let (status, body) = app
            .put(
                &ns(&format!("/deployments/web-{i}")),
                deploy_body("nginx:1", Some(1)),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let viewer = hs_token(&claims("vera", &["viewer"]));
    app.send_as(
        Some(&viewer),
        reqwest::Method::DELETE,
        &ns("/deployments/web-0"),
        None,
    )
    .await;

    let page1 = app.get_json("/v1/audit?action=deploy&limit=4").await.1;
    let items = page1["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert!(
        items
            .windows(2)
            .all(|w| w[0]["seq"].as_i64() > w[1]["seq"].as_i64()),
        "newest first"
    );
    let mut seen: Vec<i64> = items.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    let mut cursor = page1["nextCursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let page = app
            .get_json(&format!("/v1/audit?action=deploy&limit=4&cursor={c}"))
            .await
            .1;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_i64().unwrap()),
        );
        cursor = page["nextCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), 10, "5 intents and 5 outcomes, each once");
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "a stable order across pages"
    );
    assert_eq!(entries(&app, "?subject=vera").await.len(), 1);
    assert_eq!(
        entries(&app, "?outcome=denied").await[0]["action"],
        "delete_deployment"
    );
    assert_eq!(
        entries(&app, "?resource=web-3&cluster=dev&namespace=default")
            .await
            .len(),
        2
    );
    let (status, _) = app.get_json("/v1/audit?from=yesterday").await;
    assert_eq!(status, 422);
    assert!(entries(&app, "?to=2000-01-01T00:00:00Z").await.is_empty());

    let res = app
        .client
        .get(format!("{}/v1/audit?subject=root", app.address))
        .bearer_auth(&app.token)
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let text = res.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 10);
    assert!(lines.iter().all(|l| l["subject"] == "root"));

    // Only auditors (and admins) read it.
    let deployer = hs_token(&claims("dan", &["deployer"]));
    assert_eq!(
        app.send_as(Some(&deployer), reqwest::Method::GET, "/v1/audit", None)
            .await
            .status()
            .as_u16(),
        403
    );
    let auditor = hs_token(&claims("ada", &["auditor"]));
    assert_eq!(
        app.send_as(
            Some(&auditor),
            reqwest::Method::GET,
            "/v1/audit/verify",
            None
        )
        .await
        .status()
        .as_u16(),
        200
    );
    let (status, _) = app
        .get_json("/v1/audit/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn signed_checkpoints_are_verified_with_the_chain() {
    let app = spawn_app_with(Options {
        config: Box::new(|c| c.audit_signing_key = Some(format!("{KEYS}/ed.key").into())),
        ..Default::default()
    })
    .await;
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    let (status, cp) = app.post("/v1/audit/checkpoints", json!({})).await;
    assert_eq!(status, 201, "{cp}");
    assert_eq!(cp["seq"], 2);
    assert_eq!(cp["signature"].as_str().unwrap().len(), 128);
    app.put(&ns("/deployments/web/replicas"), json!({"replicas": 2}))
        .await;
    let v = verify(&app).await;
    assert_eq!(
        (v["intact"].as_bool(), v["checkpointsVerified"].as_u64()),
        (Some(true), Some(1)),
        "{v}"
    );
    let (_, list) = app.get_json("/v1/audit/checkpoints").await;
    assert_eq!(list["items"][0]["hash"], cp["hash"]);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubegate"))
        .args(["audit", "verify", "--public-key", &format!("{KEYS}/ed.pub")])
        .env("DATABASE_URL", &app.database_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["checkpointsVerified"], 1);

    // A forged signature is caught.
    let mut su = superuser(&app).await;
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut su)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_checkpoint SET signed_at_us = signed_at_us + 1")
        .execute(&mut su)
        .await
        .unwrap();
    let v = verify(&app).await;
    assert_eq!(v["intact"], false);
    assert!(
        v["firstBreak"]["reason"]
            .as_str()
            .unwrap()
            .contains("signature")
    );
}

/// kubegate reaching PostgreSQL through a proxy the test can cut, with `web` deployed and the
/// fake's request log cleared.
pub async fn deployed_behind_a_cuttable_proxy(
    database_timeout: Duration,
) -> (crate::helpers::Cuttable, TestApp) {
    let proxy = crate::helpers::Cuttable::to_postgres().await;
    let port = proxy.port;
    let app = spawn_app_with(Options {
        config: Box::new(move |c| {
            use secrecy::ExposeSecret;
            let mut url = url::Url::parse(c.database_url.expose_secret()).unwrap();
            url.set_port(Some(port)).unwrap();
            c.database_url = secrecy::SecretString::from(url.to_string());
            c.database_timeout = database_timeout;
        }),
        ..Default::default()
    })
    .await;
    let fake = app.fake("dev");
    app.deploy_web().await;
    fake.clear_requests();
    (proxy, app)
}

#[tokio::test]
async fn when_postgresql_drops_every_connection_the_audit_log_carries_on_with_new_ones() {
    let (proxy, app) = deployed_behind_a_cuttable_proxy(Duration::from_secs(2)).await;
    let fake = app.fake("dev");

    // The audit writer's connection (and every other) is gone. The writer finds its statement
    // failed, closes the broken connections and writes on a new one: nothing is refused.
    proxy.reset_connections();
    let (first, body) = app
        .put(&ns("/deployments/web/replicas"), json!({"replicas": 2}))
        .await;
    assert_eq!(first, 200, "{body}");
    proxy.reset_connections();
    let (second, body) = app
        .put(&ns("/deployments/web/replicas"), json!({"replicas": 3}))
        .await;
    assert_eq!(second, 200, "{body}");
    assert_eq!(
        fake.get(Kind::Deployment, "default", "web").unwrap()["spec"]["replicas"],
        3
    );
    let v = verify(&app).await;
    assert_eq!(v["intact"], true, "{v}");
    let entries = entries(&app, "?action=scale").await;
    assert_eq!(
        entries.len(),
        4,
        "one intent and one outcome per scale, none twice: {entries:?}"
    );
}

/// The pid of a backend of the app's database waiting for a lock, other than `besides`.
async fn waiting_for_a_lock(watcher: &mut sqlx::PgConnection, besides: i32) -> i32 {
    crate::helpers::eventually(
        "a backend waiting for a lock",
        Duration::from_secs(10),
        async || {
            sqlx::query_scalar(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND pid <> $1 ORDER BY pid LIMIT 1",
            )
            .bind(besides)
            .fetch_optional(&mut *watcher)
            .await
            .unwrap()
        },
    )
    .await
}

#[tokio::test]
async fn an_append_still_running_when_its_answer_is_lost_is_written_once() {
    let (proxy, app) = deployed_behind_a_cuttable_proxy(Duration::from_secs(2)).await;
    let fake = app.fake("dev");
    // Another session holds the head row, so the writer's next statement waits in PostgreSQL.
    let mut holder = superuser(&app).await;
    let mut watcher = superuser(&app).await;
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
        .execute(&mut holder)
        .await
        .unwrap();

    let replicas = ns("/deployments/web/replicas");
    let scale = app.put(&replicas, json!({"replicas": 2}));
    let meanwhile = async {
        // The intent's statement waits; then its connection drops. Its backend does not notice
        // (it is waiting for the lock), so it would still commit once the lock is free. The
        // writer tries again on a new connection; once that attempt waits too, the lock goes.
        let first = waiting_for_a_lock(&mut watcher, 0).await;
        proxy.reset_connections();
        waiting_for_a_lock(&mut watcher, first).await;
        sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
    };
    let ((status, body), ()) = tokio::join!(scale, meanwhile);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        fake.get(Kind::Deployment, "default", "web").unwrap()["spec"]["replicas"],
        2
    );
    let entries = entries(&app, "?action=scale").await;
    let stages: Vec<&str> = entries
        .iter()
        .map(|e| e["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        ["outcome", "intent"],
        "the intent once: {entries:?}"
    );
    assert_eq!(verify(&app).await["intact"], true);
}

#[tokio::test]
async fn with_async_outcomes_the_answer_does_not_wait_for_the_outcome_but_audit_reads_do() {
    let app = spawn_app_with(Options {
        config: Box::new(|c| c.audit_outcome = kubegate::config::AuditOutcome::Async),
        ..Default::default()
    })
    .await;
    let fake = app.fake("dev");
    app.deploy_web().await;
    let mut holder = superuser(&app).await;
    let mut watcher = superuser(&app).await;

    // The cluster is slow to answer; while it is, once the intent is committed, another session
    // takes the chain head, so the outcome cannot be written until it lets go.
    fake.set_latency(Duration::from_millis(500));
    let replicas = ns("/deployments/web/replicas");
    let scale = app.put(&replicas, json!({"replicas": 3}));
    let hold = hold_the_audit_head_after_an_intent(&mut watcher, &mut holder, "scale");
    let ((status, body), ()) =
        tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(scale, hold) })
            .await
            .expect("the answer came while the outcome could not be committed");
    assert_eq!(status, 200, "{body}");
    fake.set_latency(Duration::ZERO);
    let committed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_event WHERE action = 'scale' AND stage = 'outcome'",
    )
    .fetch_one(&mut watcher)
    .await
    .unwrap();
    assert_eq!(committed, 0, "the outcome is still queued");

    // A read of the log waits for what was queued before it.
    let audit_id = body["auditId"].as_str().unwrap().to_owned();
    let path = format!("/v1/audit/{audit_id}");
    let read = app.get_json(&path);
    tokio::pin!(read);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut read)
            .await
            .is_err(),
        "the read waits for the queued outcome"
    );
    sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
    let (status, page) = read.await;
    assert_eq!(status, 200, "{page}");
    let stages: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["outcome", "intent"], "{page}");
    assert_eq!(page["items"][0]["outcome"], "succeeded");
    assert_eq!(verify(&app).await["intact"], true);
}

#[tokio::test]
async fn an_outcome_that_could_not_be_written_is_written_once_the_log_is_back() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    app.deploy_web().await;
    let mut su = superuser(&app).await;
    let mut watcher = superuser(&app).await;

    // Once the scale's intent is committed, and while the cluster is slow, the log's table goes
    // away: writing the outcome fails.
    fake.set_latency(Duration::from_millis(500));
    let replicas = ns("/deployments/web/replicas");
    let scale = app.put(&replicas, json!({"replicas": 3}));
    let away = async {
        crate::helpers::wait_for_an_intent(&mut watcher, "scale").await;
        sqlx::query("ALTER TABLE audit_event RENAME TO audit_event_away")
            .execute(&mut su)
            .await
            .unwrap();
    };
    let ((status, body), ()) = tokio::join!(scale, away);
    assert_eq!(status, 200, "{body}");
    fake.set_latency(Duration::ZERO);
    // The writer tries again every second; let it fail a few times (the first write and two
    // retries).
    let failures = "kubegate_audit_append_failures_total";
    crate::helpers::eventually("three failed writes", Duration::from_secs(10), async || {
        (crate::helpers::counter(&app, failures).await >= 3.0).then_some(())
    })
    .await;
    let outcomes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_event_away WHERE action = 'scale' AND stage = 'outcome'",
    )
    .fetch_one(&mut watcher)
    .await
    .unwrap();
    assert_eq!(outcomes, 0, "not written while the table is away");

    sqlx::query("ALTER TABLE audit_event_away RENAME TO audit_event")
        .execute(&mut su)
        .await
        .unwrap();
    let audit_id = body["auditId"].as_str().unwrap().to_owned();
    assert_eq!(
        stages_once_closed(&app, &audit_id).await,
        ["intent", "outcome"],
        "written once, after its intent"
    );
    assert_eq!(verify(&app).await["intact"], true);
}

#[tokio::test]
async fn an_outcome_the_log_refuses_holds_up_no_other_append_and_is_written_once_accepted() {
    let app = spawn_app().await;
    app.deploy_web().await;
    let mut su = superuser(&app).await;
    // PostgreSQL answers, but refuses the outcome of a scale (a trigger raises).
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_scale_outcomes() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.stage = 'outcome' AND NEW.action = 'scale' THEN \
         RAISE EXCEPTION 'scale outcomes refused (test)'; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER refuse_scale_outcomes BEFORE INSERT ON audit_event \
         FOR EACH ROW EXECUTE FUNCTION refuse_scale_outcomes();",
    )
    .execute(&mut su)
    .await
    .unwrap();

    let (status, scaled) = app
        .put(&ns("/deployments/web/replicas"), json!({"replicas": 2}))
        .await;
    assert_eq!(status, 200, "{scaled}");
    let scale_id = scaled["auditId"].as_str().unwrap().to_owned();
    // The writer keeps the refused outcome and tries it again each second, in a statement of
    // its own: the next mutations' intents and outcomes are written meanwhile.
    let failures = "kubegate_audit_append_failures_total";
    for round in 0..3 {
        let failed = crate::helpers::counter(&app, failures).await;
        let (status, labelled) = app
            .put(
                &ns("/deployments/web/labels"),
                json!({"set": {format!("round-{round}"): "done"}}),
            )
            .await;
        assert_eq!(status, 200, "{labelled}");
        let label_id = labelled["auditId"].as_str().unwrap();
        assert_eq!(stages_of(&app, label_id).await, ["intent", "outcome"]);
        // The refused outcome is tried again (and refused again) before the next round.
        crate::helpers::eventually(
            "another refused retry",
            Duration::from_secs(10),
            async || (crate::helpers::counter(&app, failures).await > failed).then_some(()),
        )
        .await;
    }
    assert_eq!(stages_of(&app, &scale_id).await, ["intent"]);

    sqlx::raw_sql("DROP TRIGGER refuse_scale_outcomes ON audit_event")
        .execute(&mut su)
        .await
        .unwrap();
    assert_eq!(
        stages_once_closed(&app, &scale_id).await,
        ["intent", "outcome"],
        "written once accepted, once"
    );
    assert_eq!(verify(&app).await["intact"], true);
}

#[tokio::test]
async fn with_a_pool_of_one_connection_the_audit_writer_leaves_it_to_others_between_batches() {
    let app = spawn_app_with(Options {
        config: Box::new(|c| {
            c.database_max_connections = 1;
            c.database_timeout = Duration::from_secs(2);
        }),
        ..Default::default()
    })
    .await;
    app.deploy_web().await;
    for replicas in [2, 3] {
        let (status, body) = app
            .put(
                &ns("/deployments/web/replicas"),
                json!({"replicas": replicas}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        // Reads of the log need the same single connection.
        assert_eq!(
            entries(&app, "?action=scale").await.len(),
            2 * (replicas - 1)
        );
    }
    assert_eq!(verify(&app).await["intact"], true);
}

#[tokio::test]
async fn when_postgresql_becomes_unreachable_mutations_answer_503_and_the_cluster_sees_nothing() {
    let (proxy, app) = deployed_behind_a_cuttable_proxy(Duration::from_secs(1)).await;
    let fake = app.fake("dev");

    proxy.cut();
    let (status, body) = app
        .put(&ns("/deployments/web/replicas"), json!({"replicas": 4}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], "urn:kubegate:problem:audit-unavailable");
    assert!(
        fake.mutations().is_empty(),
        "no cluster call without the intent: {:?}",
        fake.mutations()
    );
    let (status, _) = app.get_json(&ns("/deployments/web")).await;
    assert_eq!(status, 200, "reads still work");
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(
        (status, body["database"]["reachable"].as_bool()),
        (503, Some(false))
    );
}

/// Outcome rows of `audit_id` in the database itself (audit reads would flush the queue first).
async fn outcomes_stored(pool: &sqlx::PgPool, audit_id: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM audit_event WHERE audit_id = $1::uuid AND stage = 'outcome'",
    )
    .bind(audit_id)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_answered_change_already_has_its_outcome_in_the_log() {
    // Every outcome's insert takes 300 ms: an answer that did not wait for it comes first.
    let slow_outcomes = "CREATE FUNCTION slow_outcome() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.stage = 'outcome' THEN PERFORM pg_sleep(0.3); END IF; RETURN NEW; END $$; \
         CREATE TRIGGER slow_outcome BEFORE INSERT ON audit_event \
         FOR EACH ROW EXECUTE FUNCTION slow_outcome()";
    let app = spawn_app().await;
    app.deploy_web().await;
    let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
    sqlx::raw_sql(slow_outcomes).execute(&pool).await.unwrap();
    let path = ns("/deployments/web/replicas");
    let answers = join_all((1..=4).map(|r| app.put(&path, json!({"replicas": r})))).await;
    for (status, body) in answers {
        assert_eq!(status, 200, "{body}");
        let id = body["auditId"].as_str().unwrap();
        assert_eq!(
            outcomes_stored(&pool, id).await,
            1,
            "answered before its outcome: {id}"
        );
    }
}

#[tokio::test]
async fn postgresql_restarting_under_load_leaves_every_answered_change_with_its_outcome() {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};
    let (proxy, app) = deployed_behind_a_cuttable_proxy(Duration::from_secs(2)).await;
    let app = Arc::new(app);
    let answered = Arc::new(Mutex::new(Vec::<String>::new()));
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..64)
        .map(|i| {
            let (app, answered, refused, stop) =
                (app.clone(), answered.clone(), refused.clone(), stop.clone());
            tokio::spawn(async move {
                let path = ns("/deployments/web/replicas");
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let (status, body) = app.put(&path, json!({"replicas": 1 + (i + n) % 3})).await;
                    match status {
                        200 => answered
                            .lock()
                            .unwrap()
                            .push(body["auditId"].as_str().unwrap().to_owned()),
                        // The intent could not be committed: nothing happened.
                        503 => {
                            assert_eq!(body["type"], "urn:kubegate:problem:audit-unavailable");
                            refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        other => panic!("{other} {body}"),
                    }
                }
            })
        })
        .collect();
    // PostgreSQL restarts three times (every connection drops) while the load goes on.
    for round in 1..=3 {
        eventually(
            "answers between restarts",
            Duration::from_secs(60),
            async || (answered.lock().unwrap().len() >= 150 * round).then_some(()),
        )
        .await;
        proxy.reset_connections();
    }
    eventually(
        "answers after the last restart",
        Duration::from_secs(60),
        async || (answered.lock().unwrap().len() >= 600).then_some(()),
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }

    // Read straight from the database once kubegate's queue is empty (an audit read flushes it).
    assert_eq!(verify(&app).await["intact"], true);
    let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
    let outcomes: HashSet<String> = sqlx::query_scalar(
        "SELECT audit_id::text FROM audit_event WHERE stage = 'outcome' AND action = 'scale'",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let answered: HashSet<String> = answered.lock().unwrap().iter().cloned().collect();
    let missing = answered.difference(&outcomes).count();
    assert_eq!(missing, 0, "answered changes without an outcome");
    assert_eq!(
        crate::helpers::entries_written_twice(&pool).await,
        0,
        "an entry written twice"
    );
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_event i WHERE stage = 'intent' AND NOT EXISTS \
         (SELECT 1 FROM audit_event o WHERE o.audit_id = i.audit_id AND o.stage <> 'intent')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(open, 0, "every intent has its outcome");
}
