//! The stdio transport: newline-delimited JSON-RPC on standard input and output.
//!
//! Lines pass through a filter before the SDK sees them: a line that is not JSON gets a
//! JSON-RPC parse error (`-32700`, `id: null`) on the output, and serving goes on (the SDK
//! alone would drop it silently). A line longer than [`MAX_LINE`] is skipped the same way.
//! All output, the SDK's and the parse errors, goes through one writer, a line at a time.
//! Serving ends when the input ends; then every answer already due is written and flushed.

use super::{McpServer, ServeError};
use rmcp::service::ServerInitializeError;
use rmcp::ServiceExt;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// The longest request line read: 16 MiB.
pub const MAX_LINE: usize = 16 << 20;
/// Buffer of each in-process pipe between the filter and the SDK.
const PIPE: usize = 64 * 1024;

/// Serves one client on this process's standard input and output.
pub async fn serve_stdio(host: Arc<crate::Host>) -> Result<(), ServeError> {
    // One connection per process: its standard input and output.
    let server = McpServer::with_random_session(host).with_principal("stdio");
    tracing::info!(session = server.session(), "serving MCP on stdio");
    let (input, output) = rmcp::transport::stdio_pipes();
    serve_io(server, input, output).await
}

/// Serves one client on `input` and `output` until `input` ends.
pub async fn serve_io<R, W>(server: McpServer, input: R, output: W) -> Result<(), ServeError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let inflight = server.inflight();
    let (to_sdk, sdk_input) = tokio::io::duplex(PIPE);
    let (sdk_output, from_sdk) = tokio::io::duplex(PIPE);
    let (lines, pending) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(write_lines(pending, output));
    let answers = tokio::spawn(forward_lines(from_sdk, lines.clone()));
    let reader = tokio::spawn(read_lines(input, to_sdk, lines));
    let outcome = match server.serve((sdk_input, sdk_output)).await {
        Ok(running) => match running.waiting().await {
            Ok(_) => Ok(()),
            Err(e) => Err(ServeError::Failed(e.to_string())),
        },
        // The client went away before the handshake: nothing to serve, nothing wrong.
        Err(ServerInitializeError::ConnectionClosed(_)) => Ok(()),
        Err(e) => Err(ServeError::Start(e.to_string())),
    };
    // The client is gone: its calls in flight are cancelled (rolled back, recorded).
    inflight.cancel_all(std::time::Duration::from_secs(30)).await;
    // The SDK has dropped its pipes: its answers end; then stop reading, and write the rest.
    let _ = answers.await;
    reader.abort();
    let _ = reader.await;
    match writer.await {
        Ok(Ok(())) => outcome,
        Ok(Err(e)) => outcome.and(Err(ServeError::Failed(format!("cannot write: {e}")))),
        Err(e) => outcome.and(Err(ServeError::Failed(e.to_string()))),
    }
}

/// Reads request lines: JSON goes on to the SDK, anything else is answered with a parse
/// error. Ends at the end of the input, or when the SDK stops listening.
async fn read_lines<R: AsyncRead + Unpin>(
    input: R,
    mut to_sdk: tokio::io::DuplexStream,
    replies: mpsc::Sender<Vec<u8>>,
) {
    let mut input = BufReader::new(input);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut input).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("cannot read the input: {e}");
                break;
            }
        }
        if line.len() > MAX_LINE && !line.ends_with(b"\n") {
            if !skip_line(&mut input).await {
                break;
            }
            let error = parse_error(&format!("a request line is longer than {MAX_LINE} bytes"));
            if replies.send(error).await.is_err() {
                break;
            }
            continue;
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(text) {
            tracing::debug!("a line that is not JSON: {e}");
            if replies.send(parse_error(&format!("not JSON: {e}"))).await.is_err() {
                break;
            }
            continue;
        }
        if let Some(error) = invalid_request(text) {
            if replies.send(error).await.is_err() {
                break;
            }
            continue;
        }
        let forwarded = async {
            to_sdk.write_all(text).await?;
            to_sdk.write_all(b"\n").await?;
            to_sdk.flush().await
        };
        if forwarded.await.is_err() {
            break;
        }
    }
}

/// Reads to the end of an over-long line, `MAX_LINE` bytes at a time; false at the end of
/// the input.
async fn skip_line<R: AsyncRead + Unpin>(input: &mut BufReader<R>) -> bool {
    let mut rest = Vec::new();
    loop {
        rest.clear();
        match (&mut *input).take(MAX_LINE as u64).read_until(b'\n', &mut rest).await {
            Ok(0) | Err(_) => return false,
            Ok(_) if rest.ends_with(b"\n") => return true,
            Ok(_) => {}
        }
    }
}

/// A JSON-RPC parse error, as a line.
/// The error answering JSON that is not a valid JSON-RPC message but whose `id` is readable,
/// with that id, so that the client waiting on it hears: `-32602` when only the method's
/// params are wrong, `-32600` otherwise. `None` for a valid message, and for an invalid one
/// without an id (a notification: nobody waits on it; the SDK logs it).
pub(crate) fn invalid_request(text: &[u8]) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Readable {
        id: Option<serde_json::Value>,
        jsonrpc: Option<serde_json::Value>,
        method: Option<serde_json::Value>,
    }
    let Err(error) = serde_json::from_slice::<rmcp::model::ClientJsonRpcMessage>(text) else {
        return None;
    };
    let readable: Readable = serde_json::from_slice(text).ok()?;
    let id = readable.id.filter(|id| id.is_string() || id.is_number())?;
    let well_formed = readable.jsonrpc.as_ref().and_then(|v| v.as_str()) == Some("2.0")
        && readable.method.as_ref().is_some_and(|m| m.is_string());
    let (code, what) = match well_formed {
        true => (-32602, "Invalid params"),
        false => (-32600, "Invalid Request"),
    };
    let error = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": code, "message": format!("{what}: {error}")}
    });
    let mut line = error.to_string().into_bytes();
    line.push(b'\n');
    Some(line)
}

fn parse_error(message: &str) -> Vec<u8> {
    let error = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": -32700, "message": format!("Parse error: {message}")}
    });
    let mut line = error.to_string().into_bytes();
    line.push(b'\n');
    line
}

/// Passes the SDK's output on to the writer, a whole line at a time.
async fn forward_lines(from_sdk: tokio::io::DuplexStream, lines: mpsc::Sender<Vec<u8>>) {
    let mut from_sdk = BufReader::new(from_sdk);
    loop {
        let mut line = Vec::new();
        match from_sdk.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if lines.send(line).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Writes lines to the output, flushing after each, until every sender is gone.
async fn write_lines<W: AsyncWrite + Unpin>(
    mut pending: mpsc::Receiver<Vec<u8>>,
    mut output: W,
) -> std::io::Result<()> {
    while let Some(line) = pending.recv().await {
        output.write_all(&line).await?;
        output.flush().await?;
    }
    output.shutdown().await.or(Ok(()))
}
