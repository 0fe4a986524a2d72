//! Wiring: open the database and the ledger, build the HTTP server, run it until told to stop.

use crate::checkpointer::SignedLog;
use crate::clock::Clock;
use crate::config::{BindAddress, Settings};
use crate::http::server::{self, Limits};
use crate::http::AppState;
use crate::ledger::Ledger;
use mcp_tlog::Signer;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// Connects (creating the ledger on first start), loads the encryption keys, checks them
/// against the stored secrets and opens the ledger; what the operator must be told is logged.
pub async fn open_ledger(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Ledger> {
    let opened = crate::open::ledger(settings, clock, crate::open::Write::SERVE).await?;
    for notice in &opened.notices {
        match notice {
            crate::open::Notice::Created(text) => tracing::info!("{text}"),
            crate::open::Notice::KeyFileCreated(text) => tracing::warn!("{text}"),
        }
    }

    Ok(opened.ledger)
}

/// The HTTP server, bound and ready; `local_addr()` tells where (bind to port 0 in tests).
pub struct Application {
    listener: tokio::net::TcpListener,
    metrics_listener: Option<tokio::net::TcpListener>,
    ledger: Ledger,
    log: Arc<SignedLog>,
    clock: Arc<dyn Clock>,
    settings: Settings,
}

/// Loads the log's signing key, checked against the checkpoints already stored.
pub async fn load_signer(settings: &Settings, ledger: &Ledger) -> anyhow::Result<Signer> {
    let mut conn = ledger.store().database().pool().acquire().await?;
    let stored = mcp_events::checkpoints::key_ids(&mut conn).await?;
    drop(conn);
    let loaded = crate::signing::load(
        settings.log_signing_key.as_ref(),
        &settings.log_origin,
        ledger.store().database().sqlite_path().as_deref(),
        &stored,
    )?;
    if let Some(notice) = loaded.notice {
        tracing::warn!("{notice}");
    }
    Ok(loaded.signer)
}

impl Application {
    pub async fn build(
        settings: Settings,
        clock: Arc<dyn Clock>,
        bind: SocketAddr,
    ) -> anyhow::Result<Self> {
        Self::build_on(settings, clock, &BindAddress::from(bind)).await
    }

    /// Opens the ledger and binds the API's address (and the metrics' own, if configured).
    pub async fn build_on(
        settings: Settings,
        clock: Arc<dyn Clock>,
        bind: &BindAddress,
    ) -> anyhow::Result<Self> {
        // Before the ledger opens, so a rebuild at start-up is measured.
        crate::metrics::install();
        // The addresses first: a port in use must not leave a new database behind.
        let listener = listen(bind).await?;
        let metrics_listener = match &settings.metrics_bind {
            Some(address) => Some(listen(address).await?),
            None => None,
        };
        let ledger = open_ledger(&settings, clock.clone()).await?;
        let log = Arc::new(SignedLog::new(load_signer(&settings, &ledger).await?));
        Ok(Self {
            listener,
            metrics_listener,
            ledger,
            log,
            clock,
            settings,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Where `/metrics` is served when it has an address of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
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
        let upkeep = tokio::spawn(crate::metrics::upkeep(crate::metrics::install()));
        let limits = Limits::from_settings(&self.settings);
        let follower = tokio::spawn(self.log.clone().follow(self.ledger.feed()));
        let checkpointer = tokio::spawn(self.log.clone().run(
            self.ledger.store().clone(),
            self.clock.clone(),
            self.settings.checkpoint_interval,
        ));
        let state = AppState::new(
            self.ledger.clone(),
            self.settings.flood_policy(),
            self.log.clone(),
            crate::http::account::Accounts::from_settings(&self.settings),
        );

        let flood = state.flood.clone();
        let recorder = tokio::spawn(flood.clone().run());
        let (stop, stopped) = tokio::sync::watch::channel(());
        let when_stopped = |mut stopped: tokio::sync::watch::Receiver<()>| async move {
            let _ = stopped.changed().await;
        };
        let metrics_server = self.metrics_listener.map(|listener| {
            tokio::spawn(server::serve(
                listener,
                crate::http::metrics_router(state.clone()),
                limits,
                when_stopped(stopped.clone()),
            ))
        });
        let with_metrics = metrics_server.is_none();
        let api = server::serve(
            self.listener,
            crate::http::router(state, with_metrics),
            limits,
            when_stopped(stopped),
        );
        let signal = async move {
            shutdown.await;
            let _ = stop.send(());
        };
        tokio::join!(api, signal);
        if let Some(metrics_server) = metrics_server {
            let _ = metrics_server.await;
        }
        expirer.abort();
        upkeep.abort();
        checkpointer.abort();
        follower.abort();
        recorder.abort();
        // What was turned away since the last window is recorded before the process ends.
        flood.record().await;
        Ok(())
    }
}

/// Binds a listener on the first address `address` resolves to that accepts it. A failure
/// names the address and the operating system's reason (`Address already in use`).
pub async fn listen(address: &BindAddress) -> anyhow::Result<tokio::net::TcpListener> {
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((address.host(), address.port()))
        .await
        .map_err(|error| anyhow::anyhow!("cannot resolve {address}: {error}"))?
        .collect();
    let mut last_error = None;
    for candidate in &resolved {
        match tokio::net::TcpListener::bind(candidate).await {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = Some((candidate, error)),
        }
    }
    // One line with the cause, not a chain: the CLI prints it as it is.
    Err(match last_error {
        Some((candidate, error)) if candidate.to_string() == address.to_string() => {
            anyhow::anyhow!("cannot listen on {address}: {error}")
        }
        Some((candidate, error)) => {
            anyhow::anyhow!("cannot listen on {address} ({candidate}): {error}")
        }
        None => anyhow::anyhow!("cannot listen on {address}: it resolves to no address"),
    })
}
