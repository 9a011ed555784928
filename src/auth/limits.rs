//! Rate limits per subject (not per IP: bots share addresses), with a rate per role. In memory,
//! per replica (documented): N replicas allow up to N times the rate. Never fails open into an
//! error: a refused request is a 429 problem with `Retry-After`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use super::{Grant, Principal, Role};

type Limiter = RateLimiter<String, HashMapStateStore<String>, DefaultClock>;

pub struct RateLimits {
    default: Option<(u32, Limiter)>,
    by_role: HashMap<Role, (u32, Limiter)>,
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
    pub fn new(default: u32, by_role: &[(Role, u32)]) -> Self {
        Self {
            default: limiter(default),
            by_role: by_role
                .iter()
                .filter_map(|(role, rate)| limiter(*rate).map(|l| (*role, l)))
                .collect(),
        }
    }

    /// Take one request from the caller's budget; `Err(wait)` when it is spent.
    pub fn check(&self, principal: &Principal, grants: &[Grant]) -> Result<(), Duration> {
        // The most generous of the caller's roles; otherwise the default.
        let chosen = grants
            .iter()
            .filter_map(|g| self.by_role.get(&g.role))
            .max_by_key(|(rate, _)| *rate)
            .or(self.default.as_ref());
        let Some((_, limiter)) = chosen else {
            return Ok(());
        };
        let key = format!("{}#{}", principal.issuer, principal.subject);
        limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}
