//! Reading the log: filtered pages, newest first, and a streamed export.

use super::entry::{COLUMNS, Stored};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

/// Filters of `GET /v1/audit`.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub subject: Option<String>,
    pub delegated_by: Option<String>,
    pub action: Option<String>,
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    pub resource: Option<String>,
    pub outcome: Option<String>,
    pub request_id: Option<String>,
    pub audit_id: Option<Uuid>,
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
    /// Entries strictly older (lower seq) than this, for cursor pagination.
    pub before_seq: Option<i64>,
}

fn filtered(f: &Filter) -> QueryBuilder<Postgres> {
    let mut q: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {COLUMNS} FROM audit_event WHERE true"));
    let mut eq = |col: &'static str, v: &Option<String>| {
        if let Some(v) = v {
            q.push(format!(" AND {col} = ")).push_bind(v.clone());
        }
    };
    eq("subject", &f.subject);
    eq("delegated_by", &f.delegated_by);
    eq("action", &f.action);
    eq("cluster", &f.cluster);
    eq("namespace", &f.namespace);
    eq("resource_name", &f.resource);
    eq("outcome", &f.outcome);
    eq("request_id", &f.request_id);
    if let Some(id) = f.audit_id {
        q.push(" AND audit_id = ").push_bind(id);
    }
    if let Some(t) = f.from_us {
        q.push(" AND received_at_us >= ").push_bind(t);
    }
    if let Some(t) = f.to_us {
        q.push(" AND received_at_us < ").push_bind(t);
    }
    if let Some(s) = f.before_seq {
        q.push(" AND seq < ").push_bind(s);
    }
    q.push(" ORDER BY seq DESC");
    q
}

/// Newest first, at most `limit`.
pub async fn query(pool: &PgPool, f: &Filter, limit: i64) -> Result<Vec<Stored>, sqlx::Error> {
    let mut q = filtered(f);
    q.push(" LIMIT ").push_bind(limit);
    q.build_query_as::<Stored>().fetch_all(pool).await
}

/// Every matching entry, newest first, as a stream (export without loading it all): pages of
/// 500 by sequence number, so no long-lived cursor or transaction is held.
pub fn stream(pool: PgPool, f: Filter) -> impl futures::Stream<Item = Result<Stored, sqlx::Error>> {
    type State = (PgPool, Filter, Vec<Stored>, bool);
    futures::stream::unfold(
        (pool, f, Vec::new(), false),
        |(pool, mut f, mut buf, done): State| async move {
            if buf.is_empty() && !done {
                match query(&pool, &f, 500).await {
                    Ok(rows) => {
                        let finished = rows.len() < 500;
                        if let Some(last) = rows.last() {
                            f.before_seq = Some(last.seq);
                        }
                        buf = rows.into_iter().rev().collect();
                        return buf.pop().map(|row| (Ok(row), (pool, f, buf, finished)));
                    }
                    Err(e) => return Some((Err(e), (pool, f, Vec::new(), true))),
                }
            }
            buf.pop().map(|row| (Ok(row), (pool, f, buf, done)))
        },
    )
}
