//! The HTTP/1.1 server under moat's two HTTP endpoints, MCP's streamable HTTP transport
//! (`mcp/http.rs`) and the admin server (`admin/`): the accept loop, one hyper connection per
//! client held to its [`Limits`], and stopping.

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::error::Error;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

type BoxError = Box<dyn Error + Send + Sync>;

/// What one connection may take, so that a slow or hostile client cannot hold the server.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// How long a request's line and headers may take to arrive; past it the connection is
    /// closed (also a kept-alive connection idle that long).
    pub head_timeout: Duration,
    /// The most bytes of a request's line and headers; past it hyper answers 431.
    pub max_head: usize,
    /// The most header lines of a request; past it hyper answers 431.
    pub max_headers: usize,
    /// Whether a connection may carry more than one request.
    pub keep_alive: bool,
    /// The longest a connection may last, from its accept to its close; `None`: as long as
    /// it is in use (MCP's event streams last as long as their session).
    pub lifetime: Option<Duration>,
    /// The most connections served at once; past it the next waits in the listener's
    /// backlog. `None`: no limit.
    pub max_connections: Option<usize>,
}

/// Serves every connection `listener` accepts with a clone of `service`, until `stop` is
/// cancelled: then it accepts no more and returns, and each open connection closes once the
/// request it is answering (if any) is answered.
pub async fn serve<S, B>(listener: TcpListener, limits: Limits, stop: CancellationToken, service: S)
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .max_header_size(limits.max_head)
        .max_headers(limits.max_headers)
        .keep_alive(limits.keep_alive);
    let slots = limits.max_connections.map(|n| Arc::new(Semaphore::new(n)));
    loop {
        let slot = match &slots {
            Some(slots) => tokio::select! {
                () = stop.cancelled() => return,
                // The semaphore is never closed: a permit always comes.
                slot = slots.clone().acquire_owned() => slot.ok(),
            },
            None => None,
        };
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, say: wait a little rather than spin.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let connection = http.serve_connection(TokioIo::new(stream), service.clone());
        let stop = stop.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let served = async {
                tokio::pin!(connection);
                tokio::select! {
                    served = connection.as_mut() => served,
                    () = stop.cancelled() => {
                        connection.as_mut().graceful_shutdown();
                        connection.await
                    }
                }
            };
            let served = match limits.lifetime {
                None => served.await,
                Some(lifetime) => match tokio::time::timeout(lifetime, served).await {
                    Ok(served) => served,
                    Err(_) => {
                        tracing::debug!(%peer, "connection closed: open longer than {lifetime:?}");
                        return;
                    }
                },
            };
            if let Err(e) = served {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Full;
    use std::convert::Infallible;
    use std::io::{ErrorKind, Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::sync::mpsc;
    use std::time::Instant;
    use tokio::runtime::Runtime;

    /// The bound of every wait of these tests.
    const BOUND: Duration = Duration::from_secs(20);
    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

    /// Limits that cut no connection of these tests short, unless a test says otherwise.
    fn patient() -> Limits {
        Limits {
            head_timeout: 3 * BOUND,
            max_head: 8 * 1024,
            max_headers: 100,
            keep_alive: true,
            lifetime: None,
            max_connections: None,
        }
    }

    /// A server on `runtime` answering `ok` to each request, once `release` has a permit for
    /// it (none: at once); `arrived` hears of each request as it reaches the handler.
    struct Server {
        address: SocketAddr,
        serving: tokio::task::JoinHandle<()>,
        release: Arc<Semaphore>,
        arrived: mpsc::Receiver<()>,
    }

    fn start(runtime: &Runtime, limits: Limits, stop: &CancellationToken, gated: bool) -> Server {
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let address = listener.local_addr().unwrap();
        let release = Arc::new(Semaphore::new(if gated { 0 } else { Semaphore::MAX_PERMITS }));
        let (arrival, arrived) = mpsc::channel();
        let gate = release.clone();
        let service = hyper::service::service_fn(move |_request| {
            let (gate, arrival) = (gate.clone(), arrival.clone());
            async move {
                let _ = arrival.send(());
                let _permit = gate.acquire().await;
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
            }
        });
        let serving = runtime.spawn(serve(listener, limits, stop.clone(), service));
        Server { address, serving, release, arrived }
    }

    fn connect(address: SocketAddr) -> TcpStream {
        let stream = TcpStream::connect_timeout(&address, BOUND).unwrap();
        stream.set_read_timeout(Some(BOUND)).unwrap();
        stream
    }

    /// Everything read until the server closes the connection.
    fn rest(stream: &mut TcpStream) -> String {
        let mut said = Vec::new();
        stream.read_to_end(&mut said).unwrap();
        String::from_utf8_lossy(&said).into_owned()
    }

    #[test]
    fn past_max_connections_the_next_waits_until_one_closes() {
        let runtime = Runtime::new().unwrap();
        let stop = CancellationToken::new();
        let limits = Limits { keep_alive: false, max_connections: Some(1), ..patient() };
        let address = start(&runtime, limits, &stop, false).address;
        // The first connection holds the one slot with half a head.
        let mut first = connect(address);
        first.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        let mut second = connect(address);
        second.write_all(REQUEST).unwrap();
        second.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let waited = second.read(&mut [0; 64]).unwrap_err();
        assert!(matches!(waited.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{waited}");
        // Once it closes, the second is accepted and answered.
        drop(first);
        second.set_read_timeout(Some(BOUND)).unwrap();
        let said = rest(&mut second);
        assert!(said.starts_with("HTTP/1.1 200 OK") && said.ends_with("ok"), "{said}");
        stop.cancel();
    }

    #[test]
    fn a_connection_is_closed_at_the_end_of_its_lifetime() {
        let runtime = Runtime::new().unwrap();
        let stop = CancellationToken::new();
        let lifetime = Duration::from_millis(200);
        let limits = Limits { lifetime: Some(lifetime), ..patient() };
        // Never released: the request is never answered.
        let address = start(&runtime, limits, &stop, true).address;
        let start = Instant::now();
        let mut stream = connect(address);
        stream.write_all(REQUEST).unwrap();
        assert_eq!(rest(&mut stream), "", "closed unanswered");
        assert!(start.elapsed() >= lifetime && start.elapsed() < BOUND, "{:?}", start.elapsed());
        stop.cancel();
    }

    #[test]
    fn a_stopped_server_accepts_no_more_and_answers_the_request_in_flight_then_closes() {
        let runtime = Runtime::new().unwrap();
        let stop = CancellationToken::new();
        let server = start(&runtime, patient(), &stop, true);
        let mut streams = [connect(server.address), connect(server.address)];
        for stream in &mut streams {
            stream.write_all(REQUEST).unwrap();
            server.arrived.recv_timeout(BOUND).expect("the request reaches the handler");
        }
        stop.cancel();
        runtime.block_on(server.serving).unwrap();
        let refused = TcpStream::connect_timeout(&server.address, BOUND);
        assert!(refused.is_err(), "nothing listens once stopped");
        // Both requests in flight are answered, and their kept-alive connections closed.
        server.release.add_permits(2);
        for stream in &mut streams {
            let said = rest(stream);
            assert!(said.starts_with("HTTP/1.1 200 OK") && said.ends_with("ok"), "{said}");
        }
    }
}
