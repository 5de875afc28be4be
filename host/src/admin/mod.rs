//! The admin HTTP server, on loopback: the approval queue's routes, and for `moat serve`'s
//! `[admin] http` the host's metrics and health, on hyper's HTTP/1.1 server as MCP's
//! transport is (`http_server.rs`).
//!
//! ```text
//! GET  /metrics                 Prometheus text format (admin server only)
//! GET  /healthz                 {"status": "ok"} (admin server only)
//! GET  /approvals               the pending requests (JSON array)
//! GET  /approvals/ID            one request, whatever its status
//! POST /approvals/ID/approve    body (optional): {"by": "alice"}
//! POST /approvals/ID/deny       body (optional): {"by": "alice", "reason": "not today"}
//! ```
//!
//! [`ApprovalServer`] binds loopback addresses only and serves on a thread of its own;
//! `routes.rs` answers each request (its limits, the loopback `Host` and `Origin` checks, the
//! routes); `channel.rs` builds the escalation channel `[escalation]` asks for, starting the
//! queue's own server for `[escalation] http`.

mod channel;
mod routes;

pub use channel::escalator;
pub use routes::is_loopback_host;

use crate::escalation::ApprovalQueue;
use crate::http_server::{self, Limits};
use crate::metrics::Metrics;
use routes::Routes;
use std::convert::Infallible;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The largest request line and headers, in bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// The most header lines of a request.
pub const MAX_HEADERS: usize = 100;
/// The largest request body, in bytes.
pub const MAX_BODY: usize = 8 * 1024;
/// How long a client may take to send its request's head, and then its body.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest one connection lasts, its answer included.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// The most connections served at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 32;
/// How long a stopping server waits for a queue operation under way.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// One request per connection (each answer says `Connection: close`).
const LIMITS: Limits = Limits {
    head_timeout: IO_TIMEOUT,
    max_head: MAX_HEAD,
    max_headers: MAX_HEADERS,
    keep_alive: false,
    lifetime: Some(CONNECTION_TIMEOUT),
    max_connections: Some(MAX_CONNECTIONS),
};

/// A running server; it stops when dropped.
pub struct ApprovalServer {
    address: SocketAddr,
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl ApprovalServer {
    /// Binds `address` (which must resolve to loopback addresses only; port 0 picks a free
    /// port) and serves `queue` on a thread of its own.
    pub fn start(queue: Arc<ApprovalQueue>, address: &str) -> Result<ApprovalServer, String> {
        ApprovalServer::start_admin(queue, None, address)
    }

    /// [`ApprovalServer::start`], serving also `/metrics` and `/healthz` when `metrics` is
    /// given: the admin HTTP server of `[admin] http`.
    pub fn start_admin(
        queue: Arc<ApprovalQueue>,
        metrics: Option<Arc<Metrics>>,
        address: &str,
    ) -> Result<ApprovalServer, String> {
        let addresses = loopback_addresses(address)?;
        let cannot_listen =
            |e: std::io::Error| format!("escalation.http: cannot listen on `{address}`: {e}");
        let listener = std::net::TcpListener::bind(&addresses[..]).map_err(cannot_listen)?;
        let bound = listener
            .local_addr()
            .map_err(|e| format!("escalation.http: cannot read the bound address: {e}"))?;
        listener.set_nonblocking(true).map_err(cannot_listen)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("escalation.http: cannot start its runtime: {e}"))?;
        let listener = {
            let _inside = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(cannot_listen)?
        };
        let routes = Arc::new(Routes { queue, metrics });
        let service = hyper::service::service_fn(move |request| {
            let routes = routes.clone();
            async move { Ok::<_, Infallible>(routes::answer(request, routes).await) }
        });
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("moat-approvals-http".into())
            .spawn(move || {
                runtime.block_on(http_server::serve(listener, LIMITS, stopped, service));
                runtime.shutdown_timeout(STOP_GRACE);
            })
            .map_err(|e| format!("escalation.http: cannot start its thread: {e}"))?;
        Ok(ApprovalServer { address: bound, stop, thread: Some(thread) })
    }

    /// The address it listens on (with the actual port when 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for ApprovalServer {
    /// Stops accepting and returns once the port is closed (waiting up to a second for a queue
    /// operation under way).
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Resolves `address`, refusing it unless every address it names is loopback.
pub fn loopback_addresses(address: &str) -> Result<Vec<SocketAddr>, String> {
    let addresses: Vec<SocketAddr> = address
        .to_socket_addrs()
        .map_err(|e| {
            format!("escalation.http: `{address}` is not an address such as `127.0.0.1:7878`: {e}")
        })?
        .collect();
    if addresses.is_empty() || addresses.iter().any(|a| !a.ip().is_loopback()) {
        return Err(format!(
            "escalation.http: `{address}` is not a loopback address; the approval queue is \
             served on 127.0.0.1, [::1] or localhost only"
        ));
    }
    Ok(addresses)
}
