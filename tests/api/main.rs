//! kubegate's integration tests: one binary, the real server over HTTP, a fresh PostgreSQL database
//! per test and fake Kubernetes API servers.

mod apply;
mod audit;
mod auth;
mod bots;
mod browser;
mod cli;
mod clusters;
mod commands;
mod console;
mod contract;
mod control_plane;
mod deploy_manifests;
mod deployments;
mod errors;
mod events;
pub mod exec;
mod fake_kube;
mod fake_kube_behaviour;
mod health;
mod helpers;
mod image;
mod kubeapi;
mod kubectl_crosscheck;
mod metrics;
mod openapi;
mod operations;
mod pods;
pub mod portforward;
mod proxy;
mod readme;
mod real_cluster;
mod services;
mod slack;
mod watch_cache;
mod workloads;
