//! Wiring: open the database and the ledger, build the HTTP server, run it until told to stop.

use crate::clock::Clock;
use crate::config::Settings;
use crate::ledger::Ledger;
use anyhow::Context;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// Connects (creating the ledger on first start), loads the encryption keys, checks them
/// against the stored secrets and opens the ledger; what the operator must be told is logged.
pub async fn open_ledger(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Ledger> {
    let opened = crate::open::ledger(settings, clock, crate::open::Write::SERVE).await?;
    for notice in &opened.notices {
        tracing::warn!("{notice}");
    }
    Ok(opened.ledger)
}

/// The HTTP server, bound and ready; `port()` tells where (bind to port 0 in tests).
pub struct Application {
    listener: tokio::net::TcpListener,
    ledger: Ledger,
    settings: Settings,
}

impl Application {
    pub async fn build(
        settings: Settings,
        clock: Arc<dyn Clock>,
        bind: SocketAddr,
    ) -> anyhow::Result<Self> {
        let ledger = open_ledger(&settings, clock).await?;
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding {bind}"))?;
        Ok(Self {
            listener,
            ledger,
            settings,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Serves until `shutdown` completes; in-flight requests finish first.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let expirer = tokio::spawn(crate::http::expirer::run(
            self.ledger.clone(),
            self.settings.expiry_interval(),
        ));
        let router = crate::http::router(crate::http::AppState::new(self.ledger.clone()));
        let served = axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        expirer.abort();
        served.context("serving HTTP")
    }
}
