//! Workload emulation: a StatefulSet controller that creates Pods `<sts>-<i>` from the template (OrderedReady
//! or Parallel), makes them Ready after a delay with an IP from a pluggable allocator, rolls template changes
//! one pod at a time from the highest ordinal (honouring `partition` and `OnDelete`), scales up and down, and
//! keeps the StatefulSet status counts.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::resources::GroupResource;
use super::selector::{FieldSelector, LabelSelector};
use super::store::{State, Store, Subresource, WriteOptions, now_rfc3339};

/// Chooses the IP of an emulated Pod. The default gives every pod `127.0.0.1`; the Redis Enterprise
/// emulator gives each REC pod its own loopback address.
///
/// Both methods run while the object store is locked: they must not call back into
/// [`Objects`](super::Objects) (keep a table of your own, and react to pods through
/// [`Objects::subscribe`](super::Objects::subscribe) instead).
pub trait PodIpAllocator: Send + Sync {
    /// The IP for a pod about to be created (the pod object carries name, namespace, labels and owner).
    fn allocate(&self, pod: &Value) -> String;
    /// Called when a pod is gone, so its address can be reused.
    fn release(&self, _pod: &Value) {}
    /// Whether a pod whose ready delay has passed may become Ready now (e.g. once the emulated Redis
    /// Enterprise node behind it answers); asked again on every pass until it says yes.
    fn may_become_ready(&self, _pod: &Value) -> bool {
        true
    }
}

/// Gives every pod `127.0.0.1`.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoopbackAllocator;

impl PodIpAllocator for LoopbackAllocator {
    fn allocate(&self, _pod: &Value) -> String {
        "127.0.0.1".into()
    }
}

const MANAGER: &str = "sandbox-statefulset-controller";

fn options() -> WriteOptions {
    WriteOptions {
        field_manager: MANAGER.into(),
        ..WriteOptions::default()
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// The number a PDB's `minAvailable`/`maxUnavailable` stands for with `expected` pods (`"50%"` rounds up).
fn budget_count(value: &Value, expected: i64) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => match s.strip_suffix('%') {
            Some(percent) => percent.parse::<i64>().ok().map(|p| (p * expected + 99) / 100),
            None => s.parse().ok(),
        },
        _ => None,
    }
}

/// Keeps PodDisruptionBudget status (healthy counts, allowed disruptions) in line with the pods it selects.
fn reconcile_disruption_budgets(state: &mut State) {
    let Some(pdb_info) = state
        .registry
        .get(&GroupResource::new("policy", "poddisruptionbudgets"))
    else {
        return;
    };
    let budgets: Vec<Value> = state
        .list(
            &pdb_info.storage_resource(),
            None,
            &LabelSelector::default(),
            &FieldSelector::default(),
        )
        .into_iter()
        .cloned()
        .collect();
    for pdb in budgets {
        let namespace = str_at(&pdb, "/metadata/namespace").to_string();
        let name = str_at(&pdb, "/metadata/name").to_string();
        let selector = LabelSelector::from_label_selector_object(pdb.pointer("/spec/selector").unwrap_or(&Value::Null));
        let pods = state.list(
            &GroupResource::new("", "pods"),
            Some(&namespace),
            &selector,
            &FieldSelector::default(),
        );
        let expected = pods.len() as i64;
        let healthy = pods.iter().filter(|p| is_ready(p)).count() as i64;
        let desired = match (pdb.pointer("/spec/minAvailable"), pdb.pointer("/spec/maxUnavailable")) {
            (Some(min), _) => budget_count(min, expected).unwrap_or(0),
            (None, Some(max)) => expected - budget_count(max, expected).unwrap_or(0),
            (None, None) => expected,
        }
        .max(0);
        let status = json!({
            "observedGeneration": pdb.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
            "disruptionsAllowed": (healthy - desired).max(0),
        });
        if pdb.get("status").map(|s| {
            [
                "observedGeneration",
                "currentHealthy",
                "desiredHealthy",
                "expectedPods",
                "disruptionsAllowed",
            ]
            .iter()
            .all(|k| s.get(*k) == status.get(*k))
        }) == Some(true)
        {
            continue;
        }
        let mut updated = pdb.clone();
        if let Some(map) = updated.as_object_mut() {
            map.insert("status".into(), status);
        }
        let _ = state.update(
            &pdb_info,
            "v1",
            Some(&namespace),
            &name,
            updated,
            Subresource::Status,
            &options(),
        );
    }
}

/// The revision name of a pod template, as `controller-revision-hash` labels carry it.
pub fn template_revision(statefulset_name: &str, template: &Value) -> String {
    let digest = Sha256::digest(template.to_string().as_bytes());
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("{statefulset_name}-{hex}")
}

/// The controller's memory between passes.
pub struct Controller {
    store: Store,
    allocator: Arc<dyn PodIpAllocator>,
    ready_delay: Duration,
    created: HashMap<String, Instant>,
    ips: HashMap<String, Value>,
    /// The pod creations that failed and were reported (StatefulSet uid, pod, error), so each is reported once.
    failures: HashSet<(String, String, String)>,
}

impl Controller {
    /// A controller over a store.
    pub fn new(store: Store, allocator: Arc<dyn PodIpAllocator>, ready_delay: Duration) -> Self {
        Controller {
            store,
            allocator,
            ready_delay,
            created: HashMap::new(),
            ips: HashMap::new(),
            failures: HashSet::new(),
        }
    }

    /// Runs until `shutdown` flips, reconciling on every StatefulSet/Pod change and on a short tick.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let subscription = self.store.lock().subscribe(None, None, None);
        let Ok((_, mut events)) = subscription else {
            return;
        };
        let mut ticker = tokio::time::interval(Duration::from_millis(50));
        loop {
            tokio::select! {
                event = events.recv() => {
                    match event {
                        Some(event) => {
                            let relevant = (event.resource.group == "apps" && event.resource.plural == "statefulsets")
                                || (event.resource.group.is_empty() && event.resource.plural == "pods");
                            if !relevant {
                                continue;
                            }
                        }
                        None => {
                            // Watches were dropped (fault injection): subscribe again.
                            match self.store.lock().subscribe(None, None, None) {
                                Ok((_, receiver)) => events = receiver,
                                Err(_) => return,
                            }
                        }
                    }
                }
                _ = ticker.tick() => {}
                _ = shutdown.changed() => return,
            }
            self.reconcile_all();
        }
    }

    /// One pass over every StatefulSet.
    pub fn reconcile_all(&mut self) {
        let store = self.store.clone();
        let mut state = store.lock();
        let sts_resource = GroupResource::new("apps", "statefulsets");
        let pods_resource = GroupResource::new("", "pods");
        let statefulsets: Vec<Value> = state
            .list(
                &sts_resource,
                None,
                &LabelSelector::default(),
                &FieldSelector::default(),
            )
            .into_iter()
            .cloned()
            .collect();
        for sts in statefulsets {
            self.reconcile(&mut state, &sts);
        }
        reconcile_disruption_budgets(&mut state);
        // Release addresses of pods that are gone.
        let live: Vec<String> = state
            .list(
                &pods_resource,
                None,
                &LabelSelector::default(),
                &FieldSelector::default(),
            )
            .iter()
            .map(|p| str_at(p, "/metadata/uid").to_string())
            .collect();
        let gone: Vec<String> = self.ips.keys().filter(|uid| !live.contains(uid)).cloned().collect();
        for uid in gone {
            if let Some(pod) = self.ips.remove(&uid) {
                self.allocator.release(&pod);
            }
            self.created.remove(&uid);
        }
    }

    fn reconcile(&mut self, state: &mut State, sts: &Value) {
        let Some(pods_info) = state.registry.get(&GroupResource::new("", "pods")) else {
            return;
        };
        let Some(sts_info) = state.registry.get(&GroupResource::new("apps", "statefulsets")) else {
            return;
        };
        let namespace = str_at(sts, "/metadata/namespace").to_string();
        let name = str_at(sts, "/metadata/name").to_string();
        let uid = str_at(sts, "/metadata/uid").to_string();
        if sts.pointer("/metadata/deletionTimestamp").is_some() {
            return;
        }
        let replicas = sts.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1) as usize;
        let template = sts.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let revision = template_revision(&name, &template);
        let ordered = str_at(sts, "/spec/podManagementPolicy") != "Parallel";
        let pods_resource = pods_info.group_resource();
        let pod_name = |i: usize| format!("{name}-{i}");

        self.adopt_orphans(state, sts, &pods_info);
        // Our pods: owned by this StatefulSet, indexed by ordinal.
        let mut owned: Vec<(usize, Value)> = state
            .list(
                &pods_resource,
                Some(&namespace),
                &LabelSelector::default(),
                &FieldSelector::default(),
            )
            .into_iter()
            .filter(|p| {
                p.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| {
                        refs.iter()
                            .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid.as_str()))
                    })
            })
            .filter_map(|p| {
                let pname = str_at(p, "/metadata/name");
                let ordinal = pname.strip_prefix(&format!("{name}-"))?.parse::<usize>().ok()?;
                Some((ordinal, p.clone()))
            })
            .collect();
        owned.sort_by_key(|(i, _)| *i);

        // Make created pods Ready once their delay has passed.
        let now = Instant::now();
        for (_, pod) in &owned {
            let pod_uid = str_at(pod, "/metadata/uid").to_string();
            let created = *self.created.entry(pod_uid).or_insert(now);
            if !is_ready(pod) && now.duration_since(created) >= self.ready_delay && self.allocator.may_become_ready(pod)
            {
                let mut ready = pod.clone();
                let ts = now_rfc3339();
                let ip = str_at(pod, "/status/podIP").to_string();
                let containers: Vec<Value> = pod
                    .pointer("/spec/containers")
                    .and_then(Value::as_array)
                    .map(|cs| {
                        cs.iter()
                            .map(|c| {
                                json!({"name": c.get("name").cloned().unwrap_or(json!("main")),
                                    "image": c.get("image").cloned().unwrap_or(json!("")),
                                    "imageID": "", "ready": true, "started": true, "restartCount": 0,
                                    "state": {"running": {"startedAt": ts}}})
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let condition =
                    |t: &str| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": ts});
                if let Some(map) = ready.as_object_mut() {
                    map.insert(
                        "status".into(),
                        json!({
                            "phase": "Running",
                            "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "127.0.0.1",
                            "startTime": ts, "qosClass": "BestEffort",
                            "conditions": [condition("PodScheduled"), condition("Initialized"), condition("ContainersReady"), condition("Ready")],
                            "containerStatuses": containers,
                        }),
                    );
                }
                let pod_name = str_at(pod, "/metadata/name").to_string();
                let _ = state.update(
                    &pods_info,
                    "v1",
                    Some(&namespace),
                    &pod_name,
                    ready,
                    Subresource::Status,
                    &options(),
                );
            }
        }
        let owned: Vec<(usize, Value)> = owned
            .into_iter()
            .filter_map(|(i, p)| {
                let current = state
                    .get(&pods_resource, &namespace, str_at(&p, "/metadata/name"))
                    .cloned();
                current.map(|c| (i, c))
            })
            .collect();
        let ready_count = owned.iter().filter(|(_, p)| is_ready(p)).count();
        let all_present_ready = (0..replicas).all(|i| owned.iter().any(|(j, p)| *j == i && is_ready(p)));

        // Scale down: remove the highest ordinal beyond replicas, one at a time when ordered.
        let surplus: Vec<&(usize, Value)> = owned.iter().filter(|(i, _)| *i >= replicas).collect();
        let mut acted = false;
        if let Some((_, pod)) = surplus.last() {
            let pod_name = str_at(pod, "/metadata/name").to_string();
            let _ = state.delete(&pods_info, "v1", Some(&namespace), &pod_name, &Default::default());
            acted = true;
        }
        // Scale up / replace missing pods in ordinal order.
        if !acted {
            for i in 0..replicas {
                if owned.iter().any(|(j, _)| *j == i) {
                    continue;
                }
                if ordered && !(0..i).all(|j| owned.iter().any(|(k, p)| *k == j && is_ready(p))) {
                    break;
                }
                self.create_pod(
                    state,
                    sts,
                    &pods_info,
                    &namespace,
                    &pod_name(i),
                    i,
                    &revision,
                    &template,
                );
                acted = true;
                if ordered {
                    break;
                }
            }
        }
        // Rolling update: once everything is Ready, replace the highest ordinal still on an old revision.
        // OnDelete leaves replacing pods to the user; a partition keeps ordinals below it on the old revision.
        let on_delete = str_at(sts, "/spec/updateStrategy/type") == "OnDelete";
        let partition = sts
            .pointer("/spec/updateStrategy/rollingUpdate/partition")
            .and_then(Value::as_u64)
            .unwrap_or(0) as usize;
        if !acted && all_present_ready && !on_delete {
            let outdated = owned
                .iter()
                .filter(|(i, _)| *i < replicas && *i >= partition)
                .filter(|(_, p)| str_at(p, "/metadata/labels/controller-revision-hash") != revision)
                .max_by_key(|(i, _)| *i);
            if let Some((_, pod)) = outdated {
                let pod_name = str_at(pod, "/metadata/name").to_string();
                let _ = state.delete(&pods_info, "v1", Some(&namespace), &pod_name, &Default::default());
            }
        }

        // Status counts.
        let live: Vec<(usize, Value)> = owned
            .into_iter()
            .filter(|(_, p)| {
                state
                    .get(&pods_resource, &namespace, str_at(p, "/metadata/name"))
                    .is_some()
            })
            .collect();
        let updated = live
            .iter()
            .filter(|(_, p)| str_at(p, "/metadata/labels/controller-revision-hash") == revision)
            .count();
        let previous_current = str_at(sts, "/status/currentRevision").to_string();
        let current_revision = if updated == live.len() && live.len() == replicas || previous_current.is_empty() {
            revision.clone()
        } else {
            previous_current
        };
        let current = live
            .iter()
            .filter(|(_, p)| str_at(p, "/metadata/labels/controller-revision-hash") == current_revision)
            .count();
        let status = json!({
            "observedGeneration": sts.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
            "replicas": live.len(),
            "readyReplicas": ready_count.min(live.len()),
            "availableReplicas": ready_count.min(live.len()),
            "currentReplicas": current,
            "updatedReplicas": updated,
            "currentRevision": current_revision,
            "updateRevision": revision,
            "collisionCount": 0,
        });
        if sts.get("status") != Some(&status)
            && let Some(latest) = state.get(&sts_info.group_resource(), &namespace, &name).cloned()
        {
            let mut with_status = latest;
            if let Some(map) = with_status.as_object_mut() {
                map.insert("status".into(), status);
            }
            let _ = state.update(
                &sts_info,
                "v1",
                Some(&namespace),
                &name,
                with_status,
                Subresource::Status,
                &options(),
            );
        }
    }

    /// Records the `FailedCreate` Warning event the StatefulSet controller emits when the API server refuses a
    /// pod (for example a `controller-revision-hash` label over 63 characters), once per error.
    fn report_failed_create(&mut self, state: &mut State, sts: &Value, pod_name: &str, error: &str) {
        let uid = str_at(sts, "/metadata/uid").to_string();
        if !self
            .failures
            .insert((uid.clone(), pod_name.to_string(), error.to_string()))
        {
            return;
        }
        let Some(events_info) = state.registry.get(&GroupResource::new("", "events")) else {
            return;
        };
        let name = str_at(sts, "/metadata/name");
        let namespace = str_at(sts, "/metadata/namespace");
        let now = now_rfc3339();
        let event = json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{name}.{:x}", k8s_openapi::jiff::Timestamp::now().as_nanosecond()), "namespace": namespace},
            "involvedObject": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name,
                "namespace": namespace, "uid": uid},
            "reason": "FailedCreate", "type": "Warning",
            "message": format!("create Pod {pod_name} in StatefulSet {name} failed error: {error}"),
            "source": {"component": "statefulset-controller"},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1});
        let _ = state.create(&events_info, "v1", Some(namespace), event, &options());
    }

    /// Adopts the pods `<name>-<ordinal>` that have no controller and match the selector, as the StatefulSet
    /// controller's `ClaimPods` does: a StatefulSet deleted with orphan propagation and created again takes its
    /// running pods back instead of replacing them.
    fn adopt_orphans(&self, state: &mut State, sts: &Value, pods_info: &super::resources::ResourceInfo) {
        let namespace = str_at(sts, "/metadata/namespace").to_string();
        let name = str_at(sts, "/metadata/name").to_string();
        let selector = sts
            .pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if selector.is_empty() {
            return;
        }
        let orphans: Vec<Value> = state
            .list(
                &pods_info.group_resource(),
                Some(&namespace),
                &LabelSelector::default(),
                &FieldSelector::default(),
            )
            .into_iter()
            .filter(|p| {
                let controlled = p
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| refs.iter().any(|r| r.get("controller") == Some(&json!(true))));
                let ordinal = str_at(p, "/metadata/name")
                    .strip_prefix(&format!("{name}-"))
                    .is_some_and(|rest| rest.parse::<usize>().is_ok());
                let labels = p.pointer("/metadata/labels").and_then(Value::as_object);
                let matches = selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
                !controlled && ordinal && matches && p.pointer("/metadata/deletionTimestamp").is_none()
            })
            .cloned()
            .collect();
        for mut pod in orphans {
            let pod_name = str_at(&pod, "/metadata/name").to_string();
            let reference = json!({
                "apiVersion": "apps/v1", "kind": "StatefulSet",
                "name": name, "uid": str_at(sts, "/metadata/uid"),
                "controller": true, "blockOwnerDeletion": true
            });
            if let Some(metadata) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
                let references = metadata.entry("ownerReferences").or_insert_with(|| json!([]));
                if let Some(list) = references.as_array_mut() {
                    list.push(reference);
                }
            }
            let _ = state.update(
                pods_info,
                "v1",
                Some(&namespace),
                &pod_name,
                pod,
                Subresource::Main,
                &options(),
            );
        }
    }

    /// Creates the PersistentVolumeClaims `<template>-<pod>` of the volumeClaimTemplates (Bound at once, kept
    /// when the StatefulSet goes, as by default) and mounts them into the pod spec.
    fn ensure_claims(&self, state: &mut State, sts: &Value, namespace: &str, pod_name: &str, spec: &mut Value) {
        let Some(templates) = sts.pointer("/spec/volumeClaimTemplates").and_then(Value::as_array) else {
            return;
        };
        let Some(pvc_info) = state.registry.get(&GroupResource::new("", "persistentvolumeclaims")) else {
            return;
        };
        let selector_labels = sts.pointer("/spec/selector/matchLabels").cloned().unwrap_or(json!({}));
        for template in templates {
            let template_name = str_at(template, "/metadata/name");
            let claim_name = format!("{template_name}-{pod_name}");
            if state
                .get(&pvc_info.storage_resource(), namespace, &claim_name)
                .is_none()
            {
                let mut labels = template.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
                if let (Some(l), Some(selector)) = (labels.as_object_mut(), selector_labels.as_object()) {
                    for (k, v) in selector {
                        l.insert(k.clone(), v.clone());
                    }
                }
                let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": claim_name, "namespace": namespace, "labels": labels},
                    "spec": template.get("spec").cloned().unwrap_or(json!({}))});
                if let Ok(created) = state.create(&pvc_info, "v1", Some(namespace), claim, &options()) {
                    let mut bound = created.object;
                    let capacity = bound.pointer("/spec/resources/requests").cloned().unwrap_or(json!({}));
                    let modes = bound
                        .pointer("/spec/accessModes")
                        .cloned()
                        .unwrap_or(json!(["ReadWriteOnce"]));
                    if let Some(map) = bound.as_object_mut() {
                        map.insert(
                            "status".into(),
                            json!({"phase": "Bound", "capacity": capacity, "accessModes": modes}),
                        );
                    }
                    let _ = state.update(
                        &pvc_info,
                        "v1",
                        Some(namespace),
                        &claim_name,
                        bound,
                        Subresource::Status,
                        &options(),
                    );
                }
            }
            if let Some(spec) = spec.as_object_mut() {
                let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
                if let Some(volumes) = volumes.as_array_mut()
                    && !volumes
                        .iter()
                        .any(|v| v.get("name").and_then(Value::as_str) == Some(template_name))
                {
                    volumes.push(json!({"name": template_name, "persistentVolumeClaim": {"claimName": claim_name}}));
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create_pod(
        &mut self,
        state: &mut State,
        sts: &Value,
        pods_info: &super::resources::ResourceInfo,
        namespace: &str,
        pod_name: &str,
        ordinal: usize,
        revision: &str,
        template: &Value,
    ) {
        let mut labels = template.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
        if let Some(l) = labels.as_object_mut() {
            l.insert("controller-revision-hash".into(), json!(revision));
            l.insert("statefulset.kubernetes.io/pod-name".into(), json!(pod_name));
            l.insert("apps.kubernetes.io/pod-index".into(), json!(ordinal.to_string()));
        }
        let mut spec = template.get("spec").cloned().unwrap_or(json!({}));
        if let Some(s) = spec.as_object_mut() {
            s.insert("hostname".into(), json!(pod_name));
            if let Some(service) = sts.pointer("/spec/serviceName") {
                s.insert("subdomain".into(), service.clone());
            }
            s.entry("nodeName").or_insert(json!("sandbox-node"));
        }
        let mut metadata = json!({
            "name": pod_name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "StatefulSet",
                "name": str_at(sts, "/metadata/name"), "uid": str_at(sts, "/metadata/uid"),
                "controller": true, "blockOwnerDeletion": true
            }],
        });
        if let (Some(annotations), Some(m)) = (template.pointer("/metadata/annotations"), metadata.as_object_mut()) {
            m.insert("annotations".into(), annotations.clone());
        }
        self.ensure_claims(state, sts, namespace, pod_name, &mut spec);
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec});
        let ip = self.allocator.allocate(&pod);
        let outcome = match state.create(pods_info, "v1", Some(namespace), pod, &options()) {
            Ok(outcome) => outcome,
            Err(error) => {
                self.report_failed_create(state, sts, pod_name, &error.to_string());
                return;
            }
        };
        let mut created = outcome.object;
        let uid = str_at(&created, "/metadata/uid").to_string();
        self.created.insert(uid.clone(), Instant::now());
        self.ips.insert(uid, created.clone());
        if let Some(map) = created.as_object_mut() {
            map.insert(
                "status".into(),
                json!({"phase": "Pending", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "127.0.0.1", "qosClass": "BestEffort"}),
            );
        }
        let _ = state.update(
            pods_info,
            "v1",
            Some(namespace),
            pod_name,
            created,
            Subresource::Status,
            &options(),
        );
    }
}
