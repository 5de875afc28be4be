//! Every blocking host operation of a call ends at the call's deadline: an HTTP server that
//! accepts and never answers, or answers a byte at a time, holds the call no longer than its
//! wall time, however long the grant's own timeout. (Files: a FIFO is refused before it
//! could block, `fs_limits.rs`; kv: a store locked by another process, `kv_capability.rs`;
//! facts: a locked database and a long query end by the check's deadline, unit tests of
//! `facts.rs`.)

use crate::support::built;
use moat::{BudgetKind, CallError, CallRequest, Config, Host};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A server on loopback that treats each connection with `serve` until told to stop (or
/// for 30 seconds at most); it stops when dropped.
struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(serve: fn(TcpStream, &AtomicBool)) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            while !stopping.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(30) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let stopping = stopping.clone();
                        std::thread::spawn(move || serve(stream, &stopping));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server { port, stop }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads the request, then holds the connection open without a word.
fn silent(mut stream: TcpStream, stop: &AtomicBool) {
    let mut buffer = [0u8; 4096];
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(30) {
        if let Ok(0) = stream.read(&mut buffer) {
            return; // the client gave up
        }
    }
}

/// Answers with a large body, one byte every 20 ms.
fn trickle(mut stream: TcpStream, stop: &AtomicBool) {
    let mut buffer = [0u8; 4096];
    let _ = stream.read(&mut buffer);
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n");
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(30) {
        if stream.write_all(b"x").is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn host(port: u16) -> (Arc<Host>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moat.toml");
    let toml = format!(
        "[confidence]\nhigh = 0\n[tools.http_send.grants.http]\n\
         allow = [\"http://127.0.0.1:{port}\"]\ntimeout = \"60s\"\n"
    );
    std::fs::write(&path, toml).unwrap();
    let mut config = Config::load(&path).unwrap();
    crate::support::without_controls(&mut config);
    config.plugins.tools = vec![built("tests")];
    let (host, errors) = Host::new(config).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    (Arc::new(host), dir)
}

/// A GET to the server under a 500 ms wall time, on a thread: it must end, whatever the
/// server does, with the timeout (seen by the tool) or the wall-time budget.
fn ends_at_the_deadline(server: &Server) {
    let (host, _dir) = host(server.port);
    let url = format!("http://127.0.0.1:{}/never", server.port);
    let mut request =
        CallRequest::new("http_send", &json!({"method": "GET", "url": url}).to_string());
    request.budgets.wall_time = Some(moat::units::Millis(500));
    let (done, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(host.run(&request));
    });
    // Far above the deadline: a call still running then is hung, and fails the test.
    match ended.recv_timeout(Duration::from_secs(60)).expect("the call ends") {
        Err(CallError::Tool { message, .. }) => assert_eq!(message, "Timeout"),
        Err(CallError::Budget(exceeded)) => assert_eq!(exceeded.budget, BudgetKind::WallTime),
        other => panic!("expected the deadline to end the call, got {other:?}"),
    }
}

#[test]
fn a_server_that_accepts_and_never_answers_holds_the_call_no_longer_than_its_wall_time() {
    ends_at_the_deadline(&Server::start(silent));
}

#[test]
fn a_server_that_answers_a_byte_at_a_time_holds_the_call_no_longer_than_its_wall_time() {
    ends_at_the_deadline(&Server::start(trickle));
}
