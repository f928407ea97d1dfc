//! Redis key names of one queue, all under the Cluster hash tag `{prefix:name}`.

/// The Lua names of the keys, in script order (`lua/lib.lua` binds `KEYS[i]` to each).
pub(crate) const LUA_NAMES: [&str; 11] = [
    "ready",
    "scheduled",
    "leased",
    "payloads",
    "deliveries",
    "dead",
    "errors",
    "wakeups",
    "stats",
    "recent",
    "throughput",
];

/// The keys of one queue. Scripts receive them as `KEYS[1..=11]` in [`Keys::in_script_order`]
/// and name them in `lua/lib.lua`.
#[derive(Debug, Clone)]
pub struct Keys {
    tag: String,
    ready: String,
    scheduled: String,
    leased: String,
    payloads: String,
    deliveries: String,
    dead: String,
    errors: String,
    wakeups: String,
    stats: String,
    recent: String,
    throughput: String,
}

impl Keys {
    /// Keys of queue `name` under `prefix`.
    pub fn new(prefix: &str, name: &str) -> Self {
        let tag = format!("{{{prefix}:{name}}}");
        let key = |suffix: &str| format!("{tag}:{suffix}");
        Self {
            ready: key("ready"),
            scheduled: key("scheduled"),
            leased: key("leased"),
            payloads: key("jobs"),
            deliveries: key("deliveries"),
            dead: key("dead"),
            errors: key("errors"),
            wakeups: key("signal"),
            stats: key("stats"),
            recent: key("recent"),
            throughput: key("throughput"),
            tag,
        }
    }

    /// The hash tag, `{prefix:name}`: a caller's own keys under it live in the queue's slot.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// All eleven keys in the order `lua/lib.lua` names them.
    pub fn in_script_order(&self) -> [&str; 11] {
        [
            &self.ready,
            &self.scheduled,
            &self.leased,
            &self.payloads,
            &self.deliveries,
            &self.dead,
            &self.errors,
            &self.wakeups,
            &self.stats,
            &self.recent,
            &self.throughput,
        ]
    }

    /// The list of ready job ids ("waiting"); its length is the queue depth KEDA scales on.
    pub fn ready(&self) -> &str {
        &self.ready
    }

    /// The list idle workers block on to be woken.
    pub fn wakeups(&self) -> &str {
        &self.wakeups
    }

    /// Due times of scheduled jobs (a sorted set).
    pub fn scheduled(&self) -> &str {
        &self.scheduled
    }

    pub(crate) fn leased(&self) -> &str {
        &self.leased
    }
    pub(crate) fn dead(&self) -> &str {
        &self.dead
    }
    pub(crate) fn stats(&self) -> &str {
        &self.stats
    }
    pub(crate) fn recent(&self) -> &str {
        &self.recent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_shares_the_hash_tag_and_is_distinct() {
        let keys = Keys::new("txn", "create");
        assert_eq!(keys.tag(), "{txn:create}");
        let all = keys.in_script_order();
        assert!(all.iter().all(|k| k.starts_with("{txn:create}:")));
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len());
        assert_eq!(keys.ready(), "{txn:create}:ready");
    }

    #[test]
    fn the_script_order_matches_the_names_in_the_lua_library() {
        let lib = include_str!("../lua/lib.lua");
        let keys = Keys::new("p", "q");
        for (i, name) in LUA_NAMES.iter().enumerate() {
            let line = format!("local {name} = KEYS[{}]", i + 1);
            assert!(
                lib.lines().any(|l| l.starts_with(&line)),
                "lib.lua must name KEYS[{}] {name}",
                i + 1
            );
        }
        assert!(keys.in_script_order()[3].ends_with(":jobs"));
    }
}
