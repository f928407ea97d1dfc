//! The Lua scripts, loaded once per process and invoked with EVALSHA (redis-rs reloads a
//! script on NOSCRIPT).

use std::sync::LazyLock;

use redis::Script;

/// The keys by name and the rules every script shares, prepended to each.
pub(crate) const LIB: &str = include_str!("../lua/lib.lua");

pub(crate) fn with_lib(body: &str) -> Script {
    Script::new(&format!("{LIB}\n{body}"))
}

macro_rules! script {
    ($name:ident, $file:literal) => {
        pub(crate) static $name: LazyLock<Script> =
            LazyLock::new(|| with_lib(include_str!(concat!("../lua/", $file))));
    };
}

script!(PUSH_MANY, "push_many.lua");
script!(FETCH, "fetch.lua");
script!(ACK_DONE, "ack_done.lua");
script!(ACK_FAILED, "ack_failed.lua");
script!(RENEW, "renew.lua");
script!(RELEASE, "release.lua");
script!(RETRY_DEAD, "retry_dead.lua");
script!(PURGE_DEAD, "purge_dead.lua");
script!(LIST_DEAD, "list_dead.lua");
script!(DEAD_AFTER, "dead_after.lua");
script!(PAUSE, "pause.lua");
script!(LIST_JOBS, "list_jobs.lua");
script!(FIND_JOBS, "find_jobs.lua");
script!(THROUGHPUT, "throughput.lua");

/// A script invocation with the queue's eleven keys already in place.
pub(crate) fn invocation<'a>(
    script: &'a Script,
    keys: &crate::Keys,
) -> redis::ScriptInvocation<'a> {
    let mut inv = script.prepare_invoke();
    for key in keys.in_script_order() {
        inv.key(key);
    }
    inv
}
