//! The queue's error type.

/// What can go wrong talking to the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis refused the command or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A payload could not be encoded or decoded as JSON.
    #[error("payload codec: {0}")]
    Codec(#[from] serde_json::Error),
    /// The configuration cannot work (e.g. a zero batch size).
    #[error("invalid queue configuration: {0}")]
    Config(String),
    /// The batch of pushes this push shared failed; every push of it gets the same error.
    #[error(transparent)]
    Shared(std::sync::Arc<QueueError>),
    /// The queue's background task is gone (the runtime is shutting down).
    #[error("the queue's background task has stopped")]
    Stopped,
    /// A push hook or queue script was given other numbers of keys or arguments than it names.
    #[error("script called with {} keys and {} arguments, but it names {} and {}", keys.0, args.0, keys.1, args.1)]
    HookArity {
        /// (given, named) keys.
        keys: (usize, usize),
        /// (given, named) arguments.
        args: (usize, usize),
    },
}
