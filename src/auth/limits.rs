//! Rate limits per subject (not per IP: bots share addresses), with a rate per role. Each replica
//! decides in memory (no round trip per request); with sharing on (the default), replicas keep
//! one budget between them through PostgreSQL: every `SYNC_EVERY` a replica publishes what its
//! callers took and takes from its own buckets what the others published, so N replicas allow
//! the rate once, give or take one sync interval's worth. Never fails open into an error: a
//! refused request is a 429 problem with `Retry-After`.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use sqlx::PgPool;
use uuid::Uuid;

use super::{Grant, Principal, Role};

type Limiter = RateLimiter<String, HashMapStateStore<String>, DefaultClock>;

/// How often replicas exchange what their callers took.
const SYNC_EVERY: Duration = Duration::from_millis(100);
/// How far back a sync looks for the others' usage (rows may commit out of id order), and how
/// long rows are kept.
const LOOKBACK_US: i64 = 2_000_000;
const KEEP_US: i64 = 60_000_000;

pub struct RateLimits {
    default: Option<(u32, Limiter)>,
    by_role: HashMap<Role, (u32, Limiter)>,
    /// With sharing: what callers took since the last sync, by bucket (`LIMITER KEY`).
    taken: Option<Mutex<HashMap<String, u32>>>,
}

fn limiter(rate: u32) -> Option<(u32, Limiter)> {
    let per_second = NonZeroU32::new(rate)?;
    let burst = NonZeroU32::new(rate.saturating_mul(2)).unwrap_or(per_second);
    Some((
        rate,
        RateLimiter::hashmap(Quota::per_second(per_second).allow_burst(burst)),
    ))
}

impl RateLimits {
    /// `shared`: keep one budget across replicas (`keep_sharing` must then run).
    pub fn new(default: u32, by_role: &[(Role, u32)], shared: bool) -> Self {
        let default = limiter(default);
        let by_role: HashMap<Role, (u32, Limiter)> = by_role
            .iter()
            .filter_map(|(role, rate)| limiter(*rate).map(|l| (*role, l)))
            .collect();
        // Nothing to share without a limit.
        let shared = shared && (default.is_some() || !by_role.is_empty());
        Self {
            default,
            by_role,
            taken: shared.then(Default::default),
        }
    }

    /// Take one request from the caller's budget; `Err(wait)` when it is spent.
    pub fn check(&self, principal: &Principal, grants: &[Grant]) -> Result<(), Duration> {
        // The most generous of the caller's roles; otherwise the default.
        let chosen = grants
            .iter()
            .filter_map(|g| self.by_role.get_key_value(&g.role))
            .max_by_key(|(_, (rate, _))| *rate)
            .map(|(role, l)| (role.as_str(), l))
            .or(self.default.as_ref().map(|l| ("default", l)));
        let Some((name, (_, limiter))) = chosen else {
            return Ok(());
        };
        let key = format!("{}#{}", principal.issuer, principal.subject);
        limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))?;
        if let Some(taken) = &self.taken {
            *taken
                .lock()
                .expect("rate usage")
                .entry(format!("{name} {key}"))
                .or_default() += 1;
        }
        Ok(())
    }

    /// Take `n` from a bucket another replica's callers used: as much as it holds (a bucket
    /// never goes below empty).
    fn charge(&self, bucket: &str, n: u32) {
        let Some((name, key)) = bucket.split_once(' ') else {
            return;
        };
        let limiter = if name == "default" {
            self.default.as_ref()
        } else {
            self.by_role
                .iter()
                .find(|(role, _)| role.as_str() == name)
                .map(|(_, l)| l)
        };
        let Some((_, limiter)) = limiter else { return };
        let key = key.to_owned();
        let mut left = n;
        let mut step = n;
        while left > 0 && step > 0 {
            let Some(k) = NonZeroU32::new(step.min(left)) else {
                break;
            };
            match limiter.check_key_n(&key, k) {
                Ok(Ok(())) => left -= k.get(),
                // Not that much now (or more than a burst): take less.
                _ => step /= 2,
            }
        }
    }

    /// Exchange usage with the other replicas until the process ends: publish what this one's
    /// callers took, charge what the others' took. A failed exchange keeps this replica's usage
    /// for the next one (decisions stay local meanwhile: a database outage never refuses or
    /// delays a request because of this).
    pub async fn keep_sharing(&self, pool: PgPool, synced: prometheus::IntCounter) {
        let Some(taken) = &self.taken else { return };
        let me = Uuid::new_v4();
        let mut seen: HashSet<i64> = HashSet::new();
        let mut tick = tokio::time::interval(SYNC_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pruned = std::time::Instant::now();
        let mut failing = false;
        loop {
            tick.tick().await;
            let mine: Vec<(String, u32)> = taken.lock().expect("rate usage").drain().collect();
            let buckets: Vec<&str> = mine.iter().map(|(b, _)| b.as_str()).collect();
            let counts: Vec<i32> = mine
                .iter()
                .map(|(_, n)| i32::try_from(*n).unwrap_or(i32::MAX))
                .collect();
            // One round trip: this replica's usage in, the others' recent usage out (the
            // database's clock, so replicas' clocks need not agree).
            let others = sqlx::query_as::<_, (i64, String, i32)>(
                "WITH now_us AS (SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::bigint AS t), \
                 mine AS (INSERT INTO rate_usage (replica, bucket, used, at_us) \
                   SELECT $1, b, n, (SELECT t FROM now_us) FROM UNNEST($2::text[], $3::integer[]) AS u(b, n)) \
                 SELECT id, bucket, used FROM rate_usage \
                 WHERE replica <> $1 AND at_us > (SELECT t FROM now_us) - $4",
            )
            .bind(me)
            .bind(&buckets)
            .bind(&counts)
            .bind(LOOKBACK_US)
            .fetch_all(&pool)
            .await;
            match others {
                Ok(rows) => {
                    let now_seen: HashSet<i64> = rows.iter().map(|(id, _, _)| *id).collect();
                    for (id, bucket, used) in rows {
                        if !seen.contains(&id) {
                            self.charge(&bucket, u32::try_from(used).unwrap_or(0));
                        }
                    }
                    seen = now_seen;
                    synced.inc();
                    if failing {
                        tracing::info!("rate limits are shared with the other replicas again");
                        failing = false;
                    }
                }
                Err(e) => {
                    // Ours again, for the next exchange.
                    let mut t = taken.lock().expect("rate usage");
                    for (b, n) in mine {
                        *t.entry(b).or_default() += n;
                    }
                    if !failing {
                        tracing::warn!(error = %e, "rate limits not shared with the other replicas (each decides alone meanwhile)");
                        failing = true;
                    }
                }
            }
            if pruned.elapsed() >= Duration::from_secs(10) {
                pruned = std::time::Instant::now();
                let _ = sqlx::query(
                    "DELETE FROM rate_usage \
                     WHERE at_us < (extract(epoch FROM clock_timestamp()) * 1e6)::bigint - $1",
                )
                .bind(KEEP_US)
                .execute(&pool)
                .await;
            }
        }
    }
}
