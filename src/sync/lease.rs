//! Leader election with a `coordination.k8s.io/v1` Lease, so a second agent replica waits instead of polling Git
//! and writing twice. The holder renews the Lease; another replica takes it over only once it has expired. Every
//! write carries the resourceVersion it read, so two replicas can never both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;

/// One replica's claim on a Lease.
pub struct LeaderLease {
    api: Api<Lease>,
    name: String,
    holder: String,
    duration: Duration,
}

/// What a try to hold the Lease found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    /// This replica holds the Lease (it created, renewed or took it over).
    Held,
    /// Another replica holds it, until its renewal is older than the lease duration.
    HeldBy(String),
}

impl LeaderLease {
    /// A claim on Lease `name` in `namespace` for `holder` (the pod name), valid for `duration` after each renewal.
    pub fn new(client: kube::Client, namespace: &str, name: &str, holder: &str, duration: Duration) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            holder: holder.to_string(),
            duration,
        }
    }

    /// Tries once to create, renew or take over the Lease.
    pub async fn try_hold(&self) -> Result<LeaseState, kube::Error> {
        let now = Timestamp::now();
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX).max(1);
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.holder.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(LeaseState::Held),
                Err(kube::Error::Api(response)) if response.code == 409 => {
                    Ok(LeaseState::HeldBy("another replica".into()))
                }
                Err(error) => Err(error),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let current = spec.holder_identity.clone().unwrap_or_default();
        let renewed = spec.renew_time.as_ref().map(|time| time.0);
        let valid_for = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(seconds)));
        let expired = renewed.is_none_or(|renewed| renewed + valid_for < now);
        if current != self.holder && !current.is_empty() && !expired {
            return Ok(LeaseState::HeldBy(current));
        }
        if current != self.holder {
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.holder.clone());
        spec.lease_duration_seconds = Some(seconds);
        spec.renew_time = Some(MicroTime(now));
        // The replace carries the resourceVersion just read: of two replicas racing, one gets 409 Conflict.
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(LeaseState::Held),
            Err(kube::Error::Api(response)) if response.code == 409 => Ok(LeaseState::HeldBy(current)),
            Err(error) => Err(error),
        }
    }

    /// Waits until this replica holds the Lease, trying every third of the lease duration.
    pub async fn acquire(&self) {
        let mut reported = None;
        loop {
            match self.try_hold().await {
                Ok(LeaseState::Held) => {
                    tracing::info!(lease = %self.name, holder = %self.holder, "leading: this replica holds the lease");
                    return;
                }
                Ok(LeaseState::HeldBy(other)) => {
                    if reported.as_ref() != Some(&other) {
                        tracing::info!(lease = %self.name, holder = %other, "waiting: another replica holds the lease");
                        reported = Some(other);
                    }
                }
                Err(error) => tracing::warn!(%error, lease = %self.name, "unable to read or write the lease; retrying"),
            }
            tokio::time::sleep(self.duration / 3).await;
        }
    }

    /// Renews the Lease every third of its duration; returns when it is lost (another replica took it, or it could
    /// not be renewed before it expired), at which point this replica must stop writing.
    pub async fn keep(&self) {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.duration / 3).await;
            match self.try_hold().await {
                Ok(LeaseState::Held) => last_renewal = tokio::time::Instant::now(),
                Ok(LeaseState::HeldBy(other)) => {
                    tracing::error!(lease = %self.name, holder = %other, "lost the lease to another replica");
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, lease = %self.name, "unable to renew the lease");
                    if last_renewal.elapsed() >= self.duration {
                        tracing::error!(lease = %self.name, "the lease expired without renewal");
                        return;
                    }
                }
            }
        }
    }
}
