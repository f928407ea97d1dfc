//! Redis key names of one queue, all under the Cluster hash tag `{prefix:name}`.

/// The keys of one queue. Scripts receive all of them, in this order, as `KEYS[1..=10]`.
#[derive(Debug, Clone)]
pub struct Keys {
    tag: String,
    all: [String; 10],
}

/// Suffixes in the order the Lua scripts expect them (see `lua/push_lib.lua`).
const SUFFIXES: [&str; 10] = [
    "ready",
    "scheduled",
    "leased",
    "jobs",
    "deliveries",
    "dead",
    "errors",
    "signal",
    "stats",
    "recent",
];

impl Keys {
    /// Keys of queue `name` under `prefix`.
    pub fn new(prefix: &str, name: &str) -> Self {
        let tag = format!("{{{prefix}:{name}}}");
        let all = SUFFIXES.map(|s| format!("{tag}:{s}"));
        Self { tag, all }
    }

    /// The hash tag, `{prefix:name}`: a caller's own keys under it live in the queue's slot.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// All ten keys, in script order.
    pub fn all(&self) -> &[String; 10] {
        &self.all
    }

    /// The list of ready job ids ("waiting"); its length is the queue depth KEDA scales on.
    pub fn ready(&self) -> &str {
        &self.all[0]
    }

    /// The list idle workers block on to be woken.
    pub fn signal(&self) -> &str {
        &self.all[7]
    }

    pub(crate) fn scheduled(&self) -> &str {
        &self.all[1]
    }
    pub(crate) fn leased(&self) -> &str {
        &self.all[2]
    }
    pub(crate) fn dead(&self) -> &str {
        &self.all[5]
    }
    pub(crate) fn stats(&self) -> &str {
        &self.all[8]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_shares_the_hash_tag() {
        let keys = Keys::new("txn", "create");
        assert_eq!(keys.tag(), "{txn:create}");
        assert!(keys.all().iter().all(|k| k.starts_with("{txn:create}:")));
        assert_eq!(keys.ready(), "{txn:create}:ready");
    }
}
