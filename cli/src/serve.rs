//! `moat serve`: MCP over standard input and output or over streamable HTTP, and the admin
//! HTTP server (`[admin] http`) beside either.

use anyhow::{Context, Result};
use moat::admin::ApprovalServer;
use moat::escalation::ApprovalQueue;
use moat::mcp::{serve_http, token_path, HttpServer};
use moat::Host;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Serves until the client closes standard input (`--stdio`), or until SIGINT or SIGTERM
/// (`--http`). Calls run on blocking threads; the runtime only moves messages.
pub fn serve(host: Arc<Host>, http: Option<String>) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("moat-mcp")
        .build()
        .context("cannot start the async runtime")?;
    let _admin = admin(&host)?;
    let outcome = match http {
        Some(address) => runtime.block_on(serve_on(host, &address)),
        None => runtime.block_on(moat::mcp::serve_stdio(host)).map_err(Into::into),
    };
    // A read of a terminal's standard input cannot be cancelled: do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    outcome?;
    Ok(ExitCode::SUCCESS)
}

/// Binds `address`, says where MCP is served (one line on standard output), and serves.
async fn serve_on(host: Arc<Host>, address: &str) -> Result<()> {
    let config = host.config();
    let server = HttpServer::bind(address, &config.serve, &config.state_dir).await?;
    if server.needs_token() {
        eprintln!(
            "moat: requests need `Authorization: Bearer TOKEN`, TOKEN being the contents of {}",
            token_path(&config.state_dir).display()
        );
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "moat: MCP over streamable HTTP at {}", server.url())?;
    out.flush()?;
    drop(out);
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    serve_http(host, server, stop).await?;
    eprintln!("moat: stopped serving");
    Ok(())
}

/// Cancels `stop` at SIGINT (Ctrl-C) or SIGTERM.
async fn stop_on_signal(stop: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut terminate) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            stop.cancel();
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    stop.cancel();
}

/// The admin HTTP server, when `[admin] http` asks for one: `/healthz`, `/metrics` and the
/// approval queue. It stops when dropped.
fn admin(host: &Host) -> Result<Option<ApprovalServer>> {
    let config = host.config();
    let Some(address) = &config.admin.http else { return Ok(None) };
    let queue = ApprovalQueue::in_state_dir(&config.state_dir)
        .map_err(|e| anyhow::anyhow!("admin.http: cannot open the approval queue: {e}"))?;
    let server =
        ApprovalServer::start_admin(Arc::new(queue), Some(host.metrics().clone()), address)
            .map_err(|e| anyhow::anyhow!("admin.http: {e}"))?;
    eprintln!("moat: admin HTTP at http://{} (/healthz, /metrics, /approvals)", server.address());
    Ok(Some(server))
}
