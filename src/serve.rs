//! `mcp-manager serve`: seed if asked, then run the HTTP API until SIGTERM or SIGINT.

use crate::app::Application;
use crate::clock::Clock;
use crate::config::{BindAddress, Settings};
use std::sync::Arc;

pub async fn serve(
    settings: Settings,
    clock: Arc<dyn Clock>,
    bind: BindAddress,
    seed: bool,
) -> anyhow::Result<()> {
    let app = Application::build_on(settings, clock, &bind).await?;
    if seed {
        if crate::seed::ledger_is_empty(app.ledger()).await? {
            crate::seed::seed(app.ledger()).await?.print();
        } else {
            tracing::info!("the ledger already holds events: not seeding");
        }
    }
    match app.metrics_addr() {
        Some(metrics) => tracing::info!(
            address = %app.local_addr(),
            %metrics,
            "MCP Manager listening (metrics on their own address)"
        ),
        None => tracing::info!(address = %app.local_addr(), "MCP Manager listening"),
    }
    app.run_until(shutdown_signal()).await
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down: finishing in-flight requests");
}
