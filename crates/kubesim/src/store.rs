//! The objects and their history. Every write gets the next resourceVersion and is recorded,
//! so a watch can start at any version still in the history (older ones are 410 Expired) and
//! every watcher sees writes in order. A modification carries the version it replaced, so a
//! watch with a selector can tell an object entering it from one leaving it. Versions are
//! shared (`Arc`) between the live objects and the history.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::resources::Resource;

/// ADDED, MODIFIED or DELETED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Modified,
    Deleted,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "ADDED",
            Change::Modified => "MODIFIED",
            Change::Deleted => "DELETED",
        }
    }
}

/// One write, as watchers receive it.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub change: Change,
    pub resource: Resource,
    pub object: Arc<Value>,
    /// The version a MODIFIED event replaced.
    pub previous: Option<Arc<Value>>,
}

type Key = (&'static str, &'static str, String, String);

fn key(resource: &Resource, namespace: &str, name: &str) -> Key {
    (resource.group, resource.plural, namespace.to_owned(), name.to_owned())
}

/// How many writes a watch can resume from before it gets 410.
const HISTORY: usize = 100_000;

/// The objects.
pub struct Store {
    rv: u64,
    uids: u64,
    objects: BTreeMap<Key, Arc<Value>>,
    history: VecDeque<Event>,
    /// The oldest version a watch can start from: every write after it is in the history.
    oldest: u64,
    sender: broadcast::Sender<Event>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(65_536);
        Self {
            rv: 1,
            uids: 0,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            oldest: 0,
            sender,
        }
    }

    /// The current resourceVersion (of the whole store, as LIST reports it).
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion a watch can start from.
    pub fn oldest(&self) -> u64 {
        self.oldest
    }

    pub fn get(&self, resource: &Resource, namespace: &str, name: &str) -> Option<&Value> {
        self.objects.get(&key(resource, namespace, name)).map(|o| &**o)
    }

    /// Objects of a resource, in one namespace or all, ordered by namespace and name.
    pub fn list(&self, resource: &Resource, namespace: Option<&str>) -> Vec<&Value> {
        // A range over the key order (group, plural, namespace, name), not a scan: events
        // pile up by the thousand and the controllers list on every pass.
        let start = (
            resource.group,
            resource.plural,
            namespace.unwrap_or_default().to_owned(),
            String::new(),
        );
        self.objects
            .range(start..)
            .take_while(|((g, p, ns, _), _)| {
                *g == resource.group && *p == resource.plural && namespace.is_none_or(|n| n == ns)
            })
            .map(|(_, v)| &**v)
            .collect()
    }

    /// A fresh uid.
    pub fn uid(&mut self) -> String {
        self.uids += 1;
        let n = self.uids;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            0x6b75_6265_u32,
            n >> 32 & 0xffff,
            n >> 20 & 0xfff,
            n >> 8 & 0xfff,
            n
        )
    }

    /// Stores a new object (its metadata already complete but for resourceVersion).
    pub fn insert(&mut self, resource: &Resource, mut object: Value) -> Value {
        self.stamp(resource, &mut object);
        let (ns, name) = names(&object);
        let shared = Arc::new(object.clone());
        self.record(resource, Change::Added, shared.clone(), None);
        self.objects.insert(key(resource, &ns, &name), shared);
        object
    }

    /// Replaces an object. A write that changes nothing is not a write: no new version, no
    /// event (the API server's no-op behaviour).
    pub fn replace(&mut self, resource: &Resource, mut object: Value) -> Value {
        let (ns, name) = names(&object);
        let k = key(resource, &ns, &name);
        if let Some(current) = self.objects.get(&k) {
            // The stamp below sets the version anyway; borrowing the current one first makes
            // an unchanged object compare equal without a copy.
            object["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
            if object == **current {
                return object;
            }
        }
        self.stamp(resource, &mut object);
        let shared = Arc::new(object.clone());
        let previous = self.objects.insert(k, shared.clone());
        self.record(resource, Change::Modified, shared, previous);
        object
    }

    /// Removes an object; the DELETED event carries its last state with a new version.
    pub fn remove(&mut self, resource: &Resource, namespace: &str, name: &str) -> Option<Value> {
        let removed = self.objects.remove(&key(resource, namespace, name))?;
        let mut object = Arc::unwrap_or_clone(removed);
        self.stamp(resource, &mut object);
        self.record(resource, Change::Deleted, Arc::new(object.clone()), None);
        Some(object)
    }

    /// Events after `rv`, or `Err(oldest)` when `rv` is older than the history.
    pub fn since(&self, rv: u64) -> Result<Vec<Event>, u64> {
        if rv < self.oldest {
            return Err(self.oldest);
        }
        Ok(self.history.iter().filter(|e| e.rv > rv).cloned().collect())
    }

    /// Every later write.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// Forgets the history, so every watch from an earlier version gets 410 (fault injection).
    pub fn compact(&mut self) {
        self.history.clear();
        self.oldest = self.rv;
    }

    fn stamp(&mut self, resource: &Resource, object: &mut Value) {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        object["kind"] = json!(resource.kind);
        object["apiVersion"] = json!(resource.api_version());
    }

    fn record(
        &mut self,
        resource: &Resource,
        change: Change,
        object: Arc<Value>,
        previous: Option<Arc<Value>>,
    ) {
        let event = Event { rv: self.rv, change, resource: *resource, object, previous };
        self.history.push_back(event.clone());
        if self.history.len() > HISTORY
            && let Some(dropped) = self.history.pop_front()
        {
            self.oldest = dropped.rv;
        }
        let _ = self.sender.send(event);
    }
}

/// `(namespace, name)` of an object.
pub fn names(object: &Value) -> (String, String) {
    let m = &object["metadata"];
    (
        m["namespace"].as_str().unwrap_or_default().to_owned(),
        m["name"].as_str().unwrap_or_default().to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::DEPLOYMENTS;

    fn deployment(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"replicas": 1}})
    }

    /// Each write is a new version; a no-op write is not a write.
    #[test]
    fn versions_and_no_ops() {
        let mut s = Store::new();
        let a = s.insert(&DEPLOYMENTS, deployment("a"));
        let v1 = a["metadata"]["resourceVersion"].clone();
        let same = s.replace(&DEPLOYMENTS, a.clone());
        assert_eq!(same["metadata"]["resourceVersion"], v1);
        let mut changed = a.clone();
        changed["spec"]["replicas"] = json!(2);
        let b = s.replace(&DEPLOYMENTS, changed);
        assert_ne!(b["metadata"]["resourceVersion"], v1);
        assert_eq!(s.since(0).unwrap().len(), 2);
        assert_eq!(b["kind"], "Deployment");
    }

    /// After compaction, older versions are gone.
    #[test]
    fn compaction_expires_old_versions() {
        let mut s = Store::new();
        s.insert(&DEPLOYMENTS, deployment("a"));
        let rv = s.resource_version();
        s.insert(&DEPLOYMENTS, deployment("b"));
        s.compact();
        assert!(s.since(rv).is_err());
        assert!(s.since(s.resource_version()).unwrap().is_empty());
    }
}
