//! kubectl's text for what a command did: `get`'s tables (columns and AGE as kubectl prints
//! them), `describe`'s blocks, `rollout history`, and the one-line answers of changes
//! (`deployment.apps/web scaled`). It renders the very views the REST operations answer with.

use std::collections::BTreeMap;

use super::clusters::{ClusterView, NodeList};
use super::results::Answer;
use super::views::{
    AutoscalerView, CronJobView, DaemonSetView, DeploymentList, DeploymentView, EventList,
    FoundView, JobView, PodList, PodView, ReplicaSetList, RevisionList, RolloutView, ServiceList,
    ServiceView, StatefulSetView,
};
use crate::action::Kind;
use crate::chatops::Command;

/// What kubectl prints for a read.
pub fn read(command: &Command, found: &FoundView, namespace: &str) -> String {
    match found {
        FoundView::Deployments(l) => deployment_table(l, namespace, false),
        FoundView::ReplicaSets(l) => replicaset_table(l, namespace, false),
        FoundView::Pods(l) => pod_table(l, namespace, false),
        FoundView::Services(l) => service_table(l, namespace, false),
        FoundView::All(all) => {
            // In the order kubectl prints them.
            let sections: Vec<String> = [
                pod_table(&all.pods, namespace, true),
                service_table(&all.services, namespace, true),
                daemonset_table(&all.daemon_sets),
                deployment_table(&all.deployments, namespace, true),
                replicaset_table(&all.replica_sets, namespace, true),
                statefulset_table(&all.stateful_sets),
                autoscaler_table(&all.horizontal_pod_autoscalers),
                cronjob_table(&all.cron_jobs),
                job_table(&all.jobs),
            ]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
            if sections.is_empty() {
                format!("No resources found in {namespace} namespace.")
            } else {
                sections.join("\n\n")
            }
        }
        FoundView::Deployment(d) => describe_deployment(d),
        FoundView::Pod(p) => describe_pod(p),
        FoundView::Service(s) => describe_service(s),
        FoundView::ReplicaSet(r) => format!("replicaset.apps/{}", r.name),
        FoundView::Logs(text) => text.clone(),
        FoundView::Rollout(r) => {
            let mut out = r.message.clone();
            if r.timed_out {
                out.push_str("\nerror: timed out waiting for the condition");
            }
            out
        }
        FoundView::Revisions(r) => match command {
            Command::RolloutHistory { name } => history(name, r),
            _ => history("", r),
        },
        FoundView::Events(l) => event_table(l, namespace),
    }
}

/// `kubectl get events` (kubectl's printEvent): LAST SEEN, TYPE, REASON, OBJECT, MESSAGE.
fn event_table(l: &EventList, namespace: &str) -> String {
    if l.items.is_empty() {
        return format!("No resources found in {namespace} namespace.");
    }
    let rows = l
        .items
        .iter()
        .map(|e| {
            vec![
                age(e.last_seen.as_deref()),
                e.type_.clone(),
                e.reason.clone(),
                format!("{}/{}", e.object.kind.to_lowercase(), e.object.name),
                e.message.trim().to_owned(),
            ]
        })
        .collect();
    table(&["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], rows)
}

/// The Events section `kubectl describe` ends with (its DescribeEvents): `<none>`, or a table
/// whose Age reads `LAST (xCOUNT over FIRST)` for a repeated event.
pub fn events_section(l: &EventList) -> String {
    if l.items.is_empty() {
        return "Events:  <none>".into();
    }
    let mut rows = vec![vec![
        "----".to_owned(),
        "------".to_owned(),
        "----".to_owned(),
        "----".to_owned(),
        "-------".to_owned(),
    ]];
    rows.extend(l.items.iter().map(|e| {
        let first = age(e.first_seen.as_deref().or(e.last_seen.as_deref()));
        let when = if e.count > 1 {
            format!(
                "{} (x{} over {first})",
                age(e.last_seen.as_deref()),
                e.count
            )
        } else {
            first
        };
        let from = e.source.split(", ").next().unwrap_or_default().to_owned();
        vec![
            e.type_.clone(),
            e.reason.clone(),
            when,
            from,
            e.message.trim().to_owned(),
        ]
    }));
    let t = padded_table(&["Type", "Reason", "Age", "From", "Message"], rows, 2);
    let indented: Vec<String> = t.lines().map(|l| format!("  {l}")).collect();
    format!("Events:\n{}", indented.join("\n"))
}

/// What kubectl prints for `version` and `cluster-info`.
pub fn cluster(command: &Command, c: &ClusterView) -> String {
    match (command, &c.version) {
        (Command::ClusterInfo, _) => format!("Kubernetes control plane is running at {}", c.server),
        (_, Some(v)) => format!("Server Version: {}", v.git_version),
        (_, None) => format!(
            "error: the server could not be reached: {}",
            c.error.clone().unwrap_or_default()
        ),
    }
}

/// What kubectl prints for `get nodes`.
pub fn nodes(l: &NodeList) -> String {
    node_table(l)
}

/// What kubectl prints for a change (with `--wait`, what `rollout status` would add).
pub fn change(command: &Command, answer: &Answer, namespace: &str, dry_run: bool) -> String {
    let dry = if dry_run { " (server dry run)" } else { "" };
    let line = match (command, answer) {
        (Command::CreateDeployment { name, .. }, _) => {
            // Not created: another request created it between the check and the apply, which
            // then updated it (server-side apply cannot create only), so say what happened.
            let verb = if answer.created() {
                "created"
            } else {
                "configured"
            };
            format!("deployment.apps/{name} {verb}{dry}")
        }
        (Command::Expose { .. }, Answer::Service(s)) => {
            format!("service/{} exposed{dry}", s.service.name)
        }
        (Command::Scale { name, .. }, _) => format!("deployment.apps/{name} scaled{dry}"),
        (Command::SetImage { name, .. }, _) => format!("deployment.apps/{name} image updated{dry}"),
        (Command::RolloutUndo { .. }, Answer::Rollback(r)) => format!("{}{dry}", r.message),
        (Command::RolloutRestart { name }, _) => format!("deployment.apps/{name} restarted{dry}"),
        (Command::Label { kind, name, .. }, _) => format!("{}/{name} labeled{dry}", kind.kubectl()),
        (
            Command::Delete { kind, .. } | Command::DeleteSelected { kind, .. },
            Answer::Deleted(d),
        ) => deleted(*kind, &d.deleted, dry, namespace),
        _ => String::new(),
    };
    with_rollout(line, answer.rollout())
}

/// After a change with `--wait`: what `kubectl rollout status` would add.
fn with_rollout(out: String, rollout: Option<&RolloutView>) -> String {
    match rollout {
        None => out,
        Some(r) if r.timed_out => format!(
            "{out}\n{}\nerror: timed out waiting for the condition",
            r.message
        ),
        Some(r) => format!("{out}\n{}", r.message),
    }
}

fn deleted(kind: Kind, names: &[String], dry: &str, namespace: &str) -> String {
    if names.is_empty() {
        return format!("No resources found in {namespace} namespace.");
    }
    names
        .iter()
        .map(|n| format!("{} {n:?} deleted{dry}", kind.kubectl()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// kubectl's tables: columns padded to the widest cell plus three spaces, the last not padded.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    padded_table(header, rows, 3)
}

/// A table whose columns are padded by `gap` spaces (`describe` writes with a gap of two).
fn padded_table(header: &[&str], rows: Vec<Vec<String>>, gap: usize) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    c
                } else {
                    let pad = widths[i] + gap - c.chars().count();
                    format!("{c}{}", " ".repeat(pad))
                }
            })
            .collect::<String>()
    };
    std::iter::once(line(header.iter().map(|h| (*h).to_owned()).collect()))
        .chain(rows.into_iter().map(line))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `kubectl get` of an empty namespace; with `all`, empty kinds print nothing.
fn listing(
    rows: Vec<Vec<String>>,
    header: &[&str],
    namespace: &str,
    all: bool,
    prefix: &str,
) -> String {
    if rows.is_empty() {
        return if all {
            String::new()
        } else {
            format!("No resources found in {namespace} namespace.")
        };
    }
    let rows = rows
        .into_iter()
        .map(|mut r| {
            if all {
                r[0] = format!("{prefix}/{}", r[0]);
            }
            r
        })
        .collect();
    table(header, rows)
}

fn age(created: Option<&str>) -> String {
    let Some(t) = created.and_then(|c| c.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    let secs = jiff::Timestamp::now().as_second() - t.as_second();
    human_duration(secs)
}

/// kubectl's `duration.HumanDuration` (the AGE column).
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn deployment_table(l: &DeploymentList, ns: &str, all: bool) -> String {
    let rows = l
        .items
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                format!("{}/{}", d.replicas.ready, d.replicas.desired),
                d.replicas.updated.to_string(),
                d.replicas.available.to_string(),
                age(d.created_at.as_deref()),
            ]
        })
        .collect();
    listing(
        rows,
        &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        ns,
        all,
        "deployment.apps",
    )
}

fn pod_table(l: &PodList, ns: &str, all: bool) -> String {
    let rows = l
        .items
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                format!("{}/{}", p.ready_containers, p.total_containers),
                p.status.clone(),
                p.restarts.to_string(),
                age(p.created_at.as_deref()),
            ]
        })
        .collect();
    listing(
        rows,
        &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        ns,
        all,
        "pod",
    )
}

fn ports(s: &ServiceView) -> String {
    if s.ports.is_empty() {
        return "<none>".into();
    }
    s.ports
        .iter()
        .map(|p| match p.node_port {
            Some(n) => format!("{}:{n}/{}", p.port, p.protocol),
            None => format!("{}/{}", p.port, p.protocol),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn external_ip(s: &ServiceView) -> String {
    match s.service_type.as_str() {
        "ExternalName" => s.external_name.clone().unwrap_or_else(|| "<none>".into()),
        "LoadBalancer" if s.load_balancer_ingress.is_empty() => "<pending>".into(),
        "LoadBalancer" => s.load_balancer_ingress.join(","),
        _ => "<none>".into(),
    }
}

fn service_table(l: &ServiceList, ns: &str, all: bool) -> String {
    let rows = l
        .items
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.service_type.clone(),
                s.cluster_ip.clone().unwrap_or_else(|| "<none>".into()),
                external_ip(s),
                ports(s),
                age(s.created_at.as_deref()),
            ]
        })
        .collect();
    listing(
        rows,
        &[
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
        ],
        ns,
        all,
        "service",
    )
}

fn replicaset_table(l: &ReplicaSetList, ns: &str, all: bool) -> String {
    let rows = l
        .items
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.desired.to_string(),
                r.current.to_string(),
                r.ready.to_string(),
                age(r.created_at.as_deref()),
            ]
        })
        .collect();
    listing(
        rows,
        &["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        ns,
        all,
        "replicaset.apps",
    )
}

/// A `get all` section (kubectl prints none for an empty kind).
fn section(header: &[&str], prefix: &str, rows: Vec<Vec<String>>) -> String {
    if rows.is_empty() {
        return String::new();
    }
    listing(rows, header, "", true, prefix)
}

fn daemonset_table(items: &[DaemonSetView]) -> String {
    let rows = items
        .iter()
        .map(|d| {
            let selector = if d.node_selector.is_empty() {
                "<none>".to_owned()
            } else {
                map_text(&d.node_selector)
            };
            vec![
                d.name.clone(),
                d.desired.to_string(),
                d.current.to_string(),
                d.ready.to_string(),
                d.up_to_date.to_string(),
                d.available.to_string(),
                selector,
                age(d.created_at.as_deref()),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "DESIRED",
        "CURRENT",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "NODE SELECTOR",
        "AGE",
    ];
    section(&header, "daemonset.apps", rows)
}

fn statefulset_table(items: &[StatefulSetView]) -> String {
    let rows = items
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                format!("{}/{}", s.ready, s.desired),
                age(s.created_at.as_deref()),
            ]
        })
        .collect();
    section(&["NAME", "READY", "AGE"], "statefulset.apps", rows)
}

fn autoscaler_table(items: &[AutoscalerView]) -> String {
    let rows = items
        .iter()
        .map(|h| {
            vec![
                h.name.clone(),
                h.reference.clone(),
                h.targets.clone(),
                h.min_replicas.to_string(),
                h.max_replicas.to_string(),
                h.replicas.to_string(),
                age(h.created_at.as_deref()),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "REFERENCE",
        "TARGETS",
        "MINPODS",
        "MAXPODS",
        "REPLICAS",
        "AGE",
    ];
    section(&header, "horizontalpodautoscaler.autoscaling", rows)
}

fn cronjob_table(items: &[CronJobView]) -> String {
    let rows = items
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.schedule.clone(),
                c.time_zone.clone().unwrap_or_else(|| "<none>".into()),
                if c.suspend { "True" } else { "False" }.to_owned(),
                c.active.to_string(),
                match &c.last_schedule {
                    Some(t) => age(Some(t)),
                    None => "<none>".into(),
                },
                age(c.created_at.as_deref()),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "SCHEDULE",
        "TIMEZONE",
        "SUSPEND",
        "ACTIVE",
        "LAST SCHEDULE",
        "AGE",
    ];
    section(&header, "cronjob.batch", rows)
}

fn job_table(items: &[JobView]) -> String {
    let rows = items
        .iter()
        .map(|j| {
            vec![
                j.name.clone(),
                j.status.clone(),
                j.completions.clone(),
                j.duration_seconds.map(human_duration).unwrap_or_default(),
                age(j.created_at.as_deref()),
            ]
        })
        .collect();
    let header = ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"];
    section(&header, "job.batch", rows)
}

fn node_table(l: &NodeList) -> String {
    if l.items.is_empty() {
        return "No resources found".into();
    }
    let rows = l
        .items
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.status.clone(),
                if n.roles.is_empty() {
                    "<none>".into()
                } else {
                    n.roles.join(",")
                },
                age(n.created_at.as_deref()),
                n.kubelet_version.clone(),
            ]
        })
        .collect();
    table(&["NAME", "STATUS", "ROLES", "AGE", "VERSION"], rows)
}

fn history(name: &str, r: &RevisionList) -> String {
    let rows = r
        .items
        .iter()
        .map(|v| {
            vec![
                v.revision.to_string(),
                v.change_cause.clone().unwrap_or_else(|| "<none>".into()),
            ]
        })
        .collect();
    format!(
        "deployment.apps/{name} \n{}",
        table(&["REVISION", "CHANGE-CAUSE"], rows)
    )
}

fn map_text(m: &BTreeMap<String, String>) -> String {
    if m.is_empty() {
        return "<none>".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n                   ")
}

/// `kubectl describe`'s key-value block, with the values aligned.
fn fields(pairs: Vec<(&str, String)>) -> String {
    pairs
        .into_iter()
        .map(|(k, v)| format!("{:<19}{v}", format!("{k}:")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn describe_deployment(d: &DeploymentView) -> String {
    let r = &d.replicas;
    let mut out = fields(vec![
        ("Name", d.name.clone()),
        ("Namespace", d.namespace.clone()),
        (
            "CreationTimestamp",
            d.created_at.clone().unwrap_or_default(),
        ),
        ("Labels", map_text(&d.labels)),
        ("Selector", d.selector.clone()),
        (
            "Replicas",
            format!(
                "{} desired | {} updated | {} ready | {} available | {} unavailable",
                r.desired, r.updated, r.ready, r.available, r.unavailable
            ),
        ),
        ("StrategyType", d.strategy.strategy_type.clone()),
        (
            "Revision",
            d.revision.map(|r| r.to_string()).unwrap_or_default(),
        ),
        (
            "Change-Cause",
            d.change_cause.clone().unwrap_or_else(|| "<none>".into()),
        ),
    ]);
    out.push_str("\nContainers:");
    for c in &d.images {
        out.push_str(&format!("\n  {}:\n    Image:  {}", c.container, c.image));
    }
    if !d.conditions.is_empty() {
        out.push_str("\nConditions:\n");
        let rows = d
            .conditions
            .iter()
            .map(|c| {
                vec![
                    c.condition_type.clone(),
                    c.status.clone(),
                    c.reason.clone().unwrap_or_default(),
                ]
            })
            .collect();
        let t = table(&["Type", "Status", "Reason"], rows);
        out.push_str(
            &t.lines()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
    out
}

fn describe_pod(p: &PodView) -> String {
    let mut out = fields(vec![
        ("Name", p.name.clone()),
        ("Namespace", p.namespace.clone()),
        ("Node", p.node.clone().unwrap_or_else(|| "<none>".into())),
        ("Start Time", p.created_at.clone().unwrap_or_default()),
        ("Labels", map_text(&p.labels)),
        ("Status", p.phase.clone()),
        ("IP", p.ip.clone().unwrap_or_default()),
    ]);
    out.push_str("\nContainers:");
    for c in &p.containers {
        out.push_str(&format!(
            "\n  {}:\n    Image:          {}\n    State:          {}{}\n    Ready:          {}\n    Restart Count:  {}",
            c.name,
            c.image,
            c.state,
            c.reason
                .as_ref()
                .map(|r| format!("\n      Reason:       {r}"))
                .unwrap_or_default()
                + &c.last_termination
                    .as_ref()
                    .map(|t| format!(
                        "\n    Last State:     Terminated\n      Reason:       {}\n      Exit Code:    {}",
                        t.reason.as_deref().unwrap_or(""),
                        t.exit_code
                    ))
                    .unwrap_or_default(),
            if c.ready { "True" } else { "False" },
            c.restart_count
        ));
    }
    out
}

fn describe_service(s: &ServiceView) -> String {
    let mut pairs = vec![
        ("Name", s.name.clone()),
        ("Namespace", s.namespace.clone()),
        ("Labels", map_text(&s.labels)),
        ("Selector", map_text(&s.selector)),
        ("Type", s.service_type.clone()),
        ("IP", s.cluster_ip.clone().unwrap_or_else(|| "None".into())),
    ];
    if let Some(e) = &s.external_name {
        pairs.push(("External Name", e.clone()));
    }
    if !s.load_balancer_ingress.is_empty() {
        pairs.push(("LoadBalancer Ingress", s.load_balancer_ingress.join(", ")));
    }
    for port in &s.ports {
        let name = port.name.clone().unwrap_or_else(|| "<unset>".into());
        pairs.push(("Port", format!("{name}  {}/{}", port.port, port.protocol)));
        pairs.push((
            "TargetPort",
            format!("{}/{}", port.target_port, port.protocol),
        ));
        if let Some(n) = port.node_port {
            pairs.push(("NodePort", format!("{name}  {n}/{}", port.protocol)));
        }
    }
    pairs.push(("Endpoints", s.ready_endpoints.to_string()));
    fields(pairs)
}

/// A one-shot exec as kubectl prints it: the output (standard output, then standard error),
/// shortened to `max` characters for chat, and kubectl's line for a non-zero exit.
pub fn exec(out: &crate::gateway::session::Output, max: usize) -> String {
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    if text.chars().count() > max {
        text = text.chars().take(max).collect();
        text.push_str("\n… (output shortened for chat; the REST answer has it all)\n");
    } else if out.truncated {
        text.push_str("\n… (output past the server's limit was dropped)\n");
    }
    if out.timed_out {
        text.push_str("command did not finish within the time limit\n");
    } else if let Some(code) = out.exit_code.filter(|c| *c != 0) {
        text.push_str(&format!("command terminated with exit code {code}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        for (s, want) in [
            (-5, "<invalid>"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60 * 5, "3h5m"),
            (9 * 3600, "9h"),
            (50 * 3600, "2d2h"),
            (10 * 86400, "10d"),
            (800 * 86400, "2y70d"),
        ] {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }

    #[test]
    fn tables_pad_like_kubectl() {
        let t = table(
            &["NAME", "READY"],
            vec![
                vec!["web".into(), "1/1".into()],
                vec!["a-much-longer".into(), "0/1".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME            READY\nweb             1/1\na-much-longer   0/1"
        );
    }
}
