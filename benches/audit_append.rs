//! What the audit log costs an audited mutation (its intent and its outcome, each committed before
//! kubegate goes on) and how many audited mutations per second one kubegate can record, with the
//! hash chain verified intact afterwards. Needs PostgreSQL at DATABASE_URL (scripts/test's
//! default: postgres://postgres@127.0.0.1:5432/postgres); works in a throwaway database. Run:
//!
//!     cargo bench --bench audit_append            # 1, 8 and 64 concurrent clients, 5 s each
//!     BENCH_SECONDS=2 cargo bench --bench audit_append
//!     BENCH_LOG_ROWS=3000000 cargo bench --bench audit_append     # on a log that holds 3M rows
//!     BENCH_IDS=random BENCH_LOG_ROWS=3000000 cargo bench --bench audit_append
//!
//! Each client count starts just after a CHECKPOINT (as every append does sooner or later), and
//! the WAL column is what PostgreSQL wrote per audited mutation (pg_current_wal_lsn). BENCH_IDS:
//! `ordered` (default, kubegate's own ids: UUIDv7) or `random` (UUIDv4), for audit and request
//! ids alike, in the rows the log is filled with too.

use std::time::{Duration, Instant};

use kubegate::audit::{AuditLog, Entry, now_us};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// An id as kubegate makes them (`ordered`) or a random one.
fn new_id(random: bool) -> uuid::Uuid {
    if random {
        uuid::Uuid::new_v4()
    } else {
        kubegate::audit::new_id()
    }
}

fn entry(stage: &str, outcome: &str, audit_id: uuid::Uuid, random: bool) -> Entry {
    Entry {
        audit_id,
        stage: stage.into(),
        outcome: outcome.into(),
        received_at_us: now_us(),
        request_id: Some(new_id(random).to_string()),
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
    let log_rows: i64 = std::env::var("BENCH_LOG_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let random = match std::env::var("BENCH_IDS").as_deref() {
        Ok("random") => true,
        Ok("ordered") | Err(_) => false,
        Ok(other) => panic!("BENCH_IDS is ordered or random, not {other}"),
    };
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
        if log_rows > 0 {
            fill(&pool, log_rows, random).await;
        }
        let log = AuditLog::start(pool.clone(), None);

        println!(
            "ids: {}, log rows before: {log_rows}\n",
            if random {
                "random (UUIDv4)"
            } else {
                "ordered (UUIDv7)"
            }
        );
        println!(
            "| clients | audited mutations/s | audit latency p50 | p99 | p99.9 | WAL per mutation |"
        );
        println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
        for clients in [1usize, 8, 64] {
            sqlx::query("CHECKPOINT")
                .execute(&admin_pool)
                .await
                .unwrap();
            let wal_before = wal_lsn(&admin_pool).await;
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let started = Instant::now();
            let tasks: Vec<_> = (0..clients)
                .map(|_| {
                    let log = log.clone();
                    tokio::spawn(async move {
                        let mut lat = Vec::new();
                        while Instant::now() < deadline {
                            let id = new_id(random);
                            let t = Instant::now();
                            log.append(vec![entry("intent", "pending", id, random)])
                                .await
                                .unwrap();
                            log.append(vec![entry("outcome", "succeeded", id, random)])
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
            let wal = wal_lsn(&admin_pool).await - wal_before;
            all.sort();
            println!(
                "| {clients} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} KiB |",
                all.len() as f64 / elapsed,
                percentile(&all, 0.5).as_secs_f64() * 1e3,
                percentile(&all, 0.99).as_secs_f64() * 1e3,
                percentile(&all, 0.999).as_secs_f64() * 1e3,
                wal as f64 / all.len() as f64 / 1024.0,
            );
        }
        // The writer keeps its connection while the log is alive; the pool closes only when
        // every connection is back.
        drop(log);
        // The rows the log was filled with carry made-up hashes: the chain is verified from the
        // first one appended here.
        let v = kubegate::audit::verify::verify(&pool, Some(log_rows + 1), None, None)
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

/// Where PostgreSQL's WAL ends now, in bytes.
async fn wal_lsn(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Fill the log with `rows` rows like the bench's own, a millisecond apart in time (their ids
/// ordered, or random), then move the head after them. Their hashes are made up (the chain is
/// verified from the first row appended after them).
async fn fill(pool: &sqlx::PgPool, rows: i64, random: bool) {
    let id = if random {
        "gen_random_uuid()"
    } else {
        // UUIDv7's layout: 48 bits of milliseconds, the version, random bits, the variant.
        "(lpad(to_hex(1700000000000 + g), 12, '0') || '7' || substr(md5(g::text), 1, 3) || '8' \
         || substr(md5(g::text), 4, 15))::uuid"
    };
    let started = Instant::now();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO audit_event (seq, audit_id, stage, outcome, received_at_us, request_id, subject, \
           issuer, groups, decision, source_ip, action, http_method, http_path, cluster, namespace, \
           resource_kind, resource_name, request_summary, prev_hash, hash) \
         SELECT g, {id}, 'intent', 'pending', (1700000000000 + g) * 1000, {id}::text, 'bench', \
           'kubegate', '{{sre}}', 'deployer on clusters dev namespaces * (token)', '127.0.0.1', \
           'scale', 'PUT', '/v1/clusters/dev/namespaces/default/deployments/web/replicas', 'dev', \
           'default', 'deployment', 'web', '{{\"replicas\":3}}', \
           sha256(int8send(g - 1)), sha256(int8send(g)) \
         FROM generate_series(1, $1) AS g"
    )))
    .bind(rows)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("UPDATE audit_head SET seq = $1, hash = sha256(int8send($1)) WHERE id = 1")
        .bind(rows)
        .execute(pool)
        .await
        .unwrap();
    sqlx::raw_sql("VACUUM ANALYZE audit_event")
        .execute(pool)
        .await
        .unwrap();
    println!(
        "log filled with {rows} rows in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
