//! What the audit log costs an audited mutation (its intent and its outcome, each committed before
//! kubegate goes on) and how many audited mutations per second one kubegate can record, with the
//! hash chain verified intact afterwards. Needs PostgreSQL at DATABASE_URL (scripts/test's
//! default: postgres://postgres@127.0.0.1:5432/postgres); works in a throwaway database. Run:
//!
//!     cargo bench --bench audit_append            # 1, 8 and 64 concurrent clients, 5 s each
//!     BENCH_SECONDS=2 cargo bench --bench audit_append

use std::time::{Duration, Instant};

use kubegate::audit::{AuditLog, Entry, now_us};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn entry(stage: &str, outcome: &str, audit_id: uuid::Uuid) -> Entry {
    Entry {
        audit_id,
        stage: stage.into(),
        outcome: outcome.into(),
        received_at_us: now_us(),
        request_id: Some(uuid::Uuid::new_v4().to_string()),
        subject: Some("bench".into()),
        issuer: Some("kubegate".into()),
        groups: vec!["sre".into()],
        decision: Some("deployer on clusters dev namespaces * (token)".into()),
        source_ip: Some("127.0.0.1".into()),
        action: Some("scale".into()),
        http_method: Some("PUT".into()),
        http_path: Some("/v1/clusters/dev/namespaces/default/deployments/web/replicas".into()),
        cluster: Some("dev".into()),
        namespace: Some("default".into()),
        resource_kind: Some("deployment".into()),
        resource_name: Some("web".into()),
        request_summary: Some(r#"{"replicas":3}"#.into()),
        ..Entry::default()
    }
}

fn main() {
    kubegate::install_crypto_provider();
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let admin = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let name = format!("kubegate_bench_{}", uuid::Uuid::new_v4().simple());
        let admin_pool = sqlx::PgPool::connect(&admin)
            .await
            .expect("PostgreSQL at DATABASE_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&admin_pool)
            .await
            .unwrap();
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&name);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(10)
            .connect(url.as_str())
            .await
            .unwrap();
        kubegate::db::MIGRATOR.run(&pool).await.unwrap();
        let log = AuditLog::start(pool.clone(), None);

        println!("| clients | audited mutations/s | audit latency p50 | p99 | p99.9 |");
        println!("| ---: | ---: | ---: | ---: | ---: |");
        for clients in [1usize, 8, 64] {
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let started = Instant::now();
            let tasks: Vec<_> = (0..clients)
                .map(|_| {
                    let log = log.clone();
                    tokio::spawn(async move {
                        let mut lat = Vec::new();
                        while Instant::now() < deadline {
                            let id = uuid::Uuid::new_v4();
                            let t = Instant::now();
                            log.append(vec![entry("intent", "pending", id)])
                                .await
                                .unwrap();
                            log.append(vec![entry("outcome", "succeeded", id)])
                                .await
                                .unwrap();
                            lat.push(t.elapsed());
                        }
                        lat
                    })
                })
                .collect();
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            let elapsed = started.elapsed().as_secs_f64();
            all.sort();
            println!(
                "| {clients} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms |",
                all.len() as f64 / elapsed,
                percentile(&all, 0.5).as_secs_f64() * 1e3,
                percentile(&all, 0.99).as_secs_f64() * 1e3,
                percentile(&all, 0.999).as_secs_f64() * 1e3,
            );
        }
        // The writer keeps its connection while the log is alive; the pool closes only when
        // every connection is back.
        drop(log);
        let v = kubegate::audit::verify::verify(&pool, None, None, None)
            .await
            .unwrap();
        println!(
            "\nchain intact: {} ({} entries verified)",
            v.intact, v.checked
        );
        pool.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE \"{name}\" WITH (FORCE)"
        )))
        .execute(&admin_pool)
        .await
        .unwrap();
        assert!(v.intact, "the chain must be intact");
    });
}
