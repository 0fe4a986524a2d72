//! Wiring: open the database and the ledger, build the HTTP server, run it until told to stop.

use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto;
use crate::ledger::{Ledger, LedgerSetup};
use anyhow::Context;
use mcp_events::{Backend, Database, DbOptions, EventStore};
use secrecy::ExposeSecret;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// Connects, migrates, loads the encryption key and opens the ledger.
pub async fn open_ledger(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Ledger> {
    let policy = settings.policy().map_err(anyhow::Error::msg)?;
    // The key first: a missing key must not leave a half-initialised database behind.
    let sqlite_path = match mcp_events::db::backend_of(&settings.database_url)? {
        Backend::Sqlite => mcp_events::db::sqlite_path(&settings.database_url),
        Backend::Postgres => None,
    };
    let key = crypto::load_key(
        settings.encryption_key.as_ref().map(|k| k.expose_secret()),
        sqlite_path.as_deref(),
    )?;
    let database = Database::connect(&settings.database_url, &DbOptions::default()).await?;
    let setup = LedgerSetup {
        policy,
        clock,
        memory: settings.writer_memory,
        ..LedgerSetup::new(key)
    };

    let ledger = Ledger::open(EventStore::new(database), setup)
        .await
        .context("opening the ledger")?;
    Ok(ledger)
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
        let state = crate::http::AppState::new(self.ledger.clone(), self.settings.flood_policy());
        let flood = state.flood.clone();
        let recorder = tokio::spawn(flood.clone().run());
        let router = crate::http::router(state);
        let served = axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        expirer.abort();
        recorder.abort();
        // What was turned away since the last window is recorded before the process ends.
        flood.record().await;
        served.context("serving HTTP")
    }
}
