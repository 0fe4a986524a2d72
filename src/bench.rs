//! `mcp-manager bench`: append and replay throughput (see README for figures).

use crate::config::Settings;
use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {}

pub async fn run(_settings: &Settings, _args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
