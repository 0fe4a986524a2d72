//! Prometheus metrics: the names this server exports and the process-wide recorder.
//!
//! Why `metrics` + `metrics-exporter-prometheus` rather than `prometheus-client`: the `metrics`
//! facade lets the ledger's writer, the expirer and the HTTP layer record where they run, with no
//! registry handle threaded through every layer, and the exporter renders the standard text
//! format. The recorder is global to the process, which matches one server per process; it is
//! installed once (`install`), so many applications started by one test process share it
//! (tests assert on presence and format, or on deltas). Outside `serve` nothing installs it and
//! every recording is a no-op.
//!
//! Labels only ever take values from small fixed sets (route templates, status codes, event
//! types, refusal reasons), never ids, paths or anything a client chooses.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

pub const BUILD_INFO: &str = "mcp_build_info";
pub const HTTP_REQUESTS: &str = "mcp_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "mcp_http_request_duration_seconds";
pub const HTTP_CONNECTIONS_OPEN: &str = "mcp_http_connections_open";
pub const HTTP_CONNECTIONS_REFUSED: &str = "mcp_http_connections_refused_total";
pub const HTTP_CONNECTIONS_TIMED_OUT: &str = "mcp_http_connections_timed_out_total";
pub const WRITER_BATCHES: &str = "mcp_writer_batches_total";
pub const WRITER_BATCH_SIZE: &str = "mcp_writer_batch_size";
pub const WRITER_COMMIT_DURATION: &str = "mcp_writer_commit_duration_seconds";
pub const EVENTS_APPENDED: &str = "mcp_events_appended_total";
pub const LEASES_ACTIVE: &str = "mcp_leases_active";
pub const AUTH_FAILURES: &str = "mcp_auth_failures_total";
/// Refusals the flood guard answered 429 at the door (recorded later, counted together).
pub const AUTH_FAILURES_TURNED_AWAY: &str = "mcp_auth_failures_turned_away_total";
pub const EXPIRER_RUNS: &str = "mcp_expirer_runs_total";
pub const EXPIRER_LEASES_EXPIRED: &str = "mcp_expirer_leases_expired_total";
pub const EXPIRER_LAG: &str = "mcp_expirer_lag_seconds";
pub const PROJECTIONS_REBUILD_DURATION: &str = "mcp_projections_rebuild_duration_seconds";

/// Latency buckets (seconds): from a cached read (~100 µs) to a request that waited for an
/// unreachable database (~5 s).
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Commands per batch: 1 to the writer's maximum of 256.
const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// A projection rebuild: a fresh database in milliseconds, millions of events in minutes.
const REBUILD_BUCKETS: &[f64] = &[0.01, 0.1, 1.0, 10.0, 60.0, 300.0, 1800.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder for this process (once; later calls return the same handle) and
/// records the build information.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let buckets: [(&str, &[f64]); 4] = [
            (HTTP_REQUEST_DURATION, LATENCY_BUCKETS),
            (WRITER_COMMIT_DURATION, LATENCY_BUCKETS),
            (WRITER_BATCH_SIZE, BATCH_SIZE_BUCKETS),
            (PROJECTIONS_REBUILD_DURATION, REBUILD_BUCKETS),
        ];
        let builder = buckets
            .into_iter()
            .try_fold(PrometheusBuilder::new(), |builder, (name, buckets)| {
                builder.set_buckets_for_metric(Matcher::Full(name.into()), buckets)
            })
            .expect("bucket lists are not empty");
        let handle = match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder was installed first (an embedding program's): ours still
            // renders, it just sees nothing.
            Err(error) => {
                tracing::warn!(%error, "a metrics recorder is already installed");
                PrometheusBuilder::new().build_recorder().handle()
            }
        };
        describe();
        metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        handle
    })
}

/// Histogram samples are buffered until rendered; upkeep bounds that buffer when nobody scrapes.
pub async fn upkeep(handle: &'static PrometheusHandle) {
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    loop {
        ticker.tick().await;
        handle.run_upkeep();
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the version label tells which build runs."
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route template and status."
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request."
    );
    describe_gauge!(HTTP_CONNECTIONS_OPEN, "HTTP connections being served.");
    describe_counter!(
        HTTP_CONNECTIONS_REFUSED,
        "Connections answered 503 and closed because the connection cap was reached."
    );
    describe_counter!(
        HTTP_CONNECTIONS_TIMED_OUT,
        "Connections closed by a timeout: header (headers too slow) or idle (keep-alive)."
    );
    describe_counter!(
        WRITER_BATCHES,
        "Write batches: committed, retried (run again one by one) or failed (database unavailable)."
    );
    describe_histogram!(
        WRITER_BATCH_SIZE,
        Unit::Count,
        "Commands per committed batch."
    );
    describe_histogram!(
        WRITER_COMMIT_DURATION,
        Unit::Seconds,
        "Time to write and commit a batch (rows, events, head)."
    );
    describe_counter!(
        EVENTS_APPENDED,
        "Events appended to the ledger (committed), by type."
    );
    describe_gauge!(
        LEASES_ACTIVE,
        "Leases neither revoked, expired nor past expiry (at scrape)."
    );
    describe_counter!(AUTH_FAILURES, "Refused bearer tokens, by reason.");
    describe_counter!(
        AUTH_FAILURES_TURNED_AWAY,
        "Refusals answered 429 by the flood guard, by reason."
    );
    describe_counter!(EXPIRER_RUNS, "Runs of the lease expirer, by outcome.");
    describe_counter!(
        EXPIRER_LEASES_EXPIRED,
        "Leases the expirer recorded as expired."
    );
    describe_gauge!(
        EXPIRER_LAG,
        Unit::Seconds,
        "How long the oldest lease past its expiry has waited for the expirer (0: none waits)."
    );
    describe_histogram!(
        PROJECTIONS_REBUILD_DURATION,
        Unit::Seconds,
        "Projection rebuilds run by this process (at start-up, when behind or outdated)."
    );
}
