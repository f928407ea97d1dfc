//! The whole system under test, as one test binary: each module is one concern (the HTTP
//! contract, reliability, durability, TLS, the board, the deploy files, …) and `support`
//! starts the real services for it, against a database and a queue prefix of each test's own.

mod architecture;
mod board;
mod board_views;
mod chaos;
mod clients;
mod cluster;
mod compose;
mod deliveries;
mod deploy_env;
mod deploy_manifests;
mod documentation;
mod durable_acceptance;
mod exact_acceptance;
mod fuzz;
mod http_contract;
mod outbound;
mod owners;
mod pipeline;
mod reliability;
mod support;
mod tls;
mod traces;

/// Not a test on its own: the consumer process that tests start and SIGKILL
/// ([`support::ChildConsumer`]). It does nothing unless a test set its environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_consumer_process() {
    support::run_child_consumer().await;
}
