//! Syncs asked for from outside the watch: the push-webhook receiver hands a GitSync to the running controller
//! (through `Controller::reconcile_on`) and finds GitSyncs by their webhook path in the controller's own cache. It
//! keeps when each trigger was asked for, so the controller can measure webhook → applied. No I/O here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use futures::Stream;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::GitSync;

/// How many triggers may wait for the controller before the oldest are dropped (polling still catches up).
const QUEUE: usize = 1024;

/// The controller's object reference type.
pub type GitSyncRef = ObjectRef<DeserializeGuard<GitSync>>;

/// The link between the webhook receiver and the GitSync controller; cheap to clone, one per agent.
#[derive(Clone)]
pub struct SyncTriggers {
    inner: Arc<Inner>,
}

struct Inner {
    sender: tokio::sync::broadcast::Sender<GitSyncRef>,
    /// The caches of the running controllers: one, or one per watched namespace in a namespaced install.
    stores: RwLock<Vec<Store<DeserializeGuard<GitSync>>>>,
    requested: Mutex<HashMap<(String, String), Instant>>,
}

impl Default for SyncTriggers {
    fn default() -> Self {
        let (sender, _) = tokio::sync::broadcast::channel(QUEUE);
        Self {
            inner: Arc::new(Inner {
                sender,
                stores: RwLock::new(Vec::new()),
                requested: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl SyncTriggers {
    /// Asks the running controller to sync GitSync `namespace/name` now. False when no controller runs (a
    /// standby replica, or before the CRDs are established).
    pub fn trigger(&self, namespace: &str, name: &str) -> bool {
        let key = (namespace.to_string(), name.to_string());
        // Noted before sending, so that the sync it starts finds it.
        let noted = match self.inner.requested.lock() {
            Ok(mut requested) if !requested.contains_key(&key) => {
                requested.insert(key.clone(), Instant::now());
                true
            }
            _ => false,
        };
        let sent = self.inner.sender.send(ObjectRef::new(name).within(namespace)).is_ok();
        if !sent
            && noted
            && let Ok(mut requested) = self.inner.requested.lock()
        {
            requested.remove(&key);
        }
        sent
    }

    /// The GitSyncs of the controllers' caches, or `None` while no controller runs.
    pub fn gitsyncs(&self) -> Option<Vec<Arc<GitSync>>> {
        let stores = self.inner.stores.read().ok()?;
        if stores.is_empty() {
            return None;
        }
        Some(
            stores
                .iter()
                .flat_map(Store::state)
                .filter_map(|guarded| guarded.0.as_ref().ok().map(|gitsync| Arc::new(gitsync.clone())))
                .collect(),
        )
    }

    /// The GitSync whose `status.webhookPath` is `path`: `Err(())` while no controller runs, `Ok(None)` when none has
    /// it.
    #[allow(clippy::result_unit_err)]
    pub fn find_by_webhook_path(&self, path: &str) -> Result<Option<Arc<GitSync>>, ()> {
        let stores = self.inner.stores.read().map_err(|_| ())?;
        if stores.is_empty() {
            return Err(());
        }
        Ok(stores
            .iter()
            .find_map(|store| {
                store.find(|guarded| {
                    guarded
                        .0
                        .as_ref()
                        .ok()
                        .and_then(|gitsync| gitsync.status.as_ref()?.webhook_path.as_deref())
                        == Some(path)
                })
            })
            .and_then(|guarded| guarded.0.as_ref().ok().map(|gitsync| Arc::new(gitsync.clone()))))
    }

    /// Called by a controller when it starts: its cache and the stream of triggers it reconciles on (every
    /// controller gets every trigger; one whose cache lacks the GitSync does nothing with it).
    pub fn attach(&self, store: Store<DeserializeGuard<GitSync>>) -> impl Stream<Item = GitSyncRef> + Send + 'static {
        if let Ok(mut stores) = self.inner.stores.write() {
            stores.push(store);
        }
        let receiver = self.inner.sender.subscribe();
        futures::stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(reference) => return Some((reference, receiver)),
                    // Dropped triggers are caught up by the next poll.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
    }

    /// Called by the controllers when they stop (they stop together): no more triggers are accepted.
    pub fn detach(&self) {
        if let Ok(mut stores) = self.inner.stores.write() {
            stores.clear();
        }
    }

    /// When a trigger of `namespace/name` was asked for, if one was asked for no later than `started` (the start of
    /// the sync that handles it); forgets it.
    pub fn take_requested(&self, namespace: &str, name: &str, started: Instant) -> Option<Instant> {
        let mut requested = self.inner.requested.lock().ok()?;
        let key = (namespace.to_string(), name.to_string());
        match requested.get(&key) {
            Some(at) if *at <= started => requested.remove(&key),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_controller_means_no_trigger_and_no_lookup() {
        let triggers = SyncTriggers::default();
        assert!(!triggers.trigger("default", "config"));
        assert!(triggers.find_by_webhook_path("/hook/00").is_err());
        assert!(triggers.gitsyncs().is_none());
    }

    #[test]
    fn a_request_is_taken_once_by_a_sync_that_started_after_it() {
        let triggers = SyncTriggers::default();
        // A controller listening (the channel keeps the trigger until its stream is polled).
        let _listening = triggers.inner.sender.subscribe();
        let before = Instant::now();
        triggers.trigger("default", "config");
        assert_eq!(triggers.take_requested("default", "config", before), None);
        let after = Instant::now();
        assert!(triggers.take_requested("default", "config", after).is_some());
        assert_eq!(triggers.take_requested("default", "config", after), None);
    }
}
