//! The stdio transport: newline-delimited JSON-RPC on standard input and output.
//!
//! moat reads the lines itself and hands the SDK each message parsed, once (the line is
//! dropped as soon as it is parsed: one request costs at most its line and its parse). A
//! line that is not JSON gets a JSON-RPC parse error (`-32700`, `id: null`) on the output,
//! and serving goes on (the SDK alone would drop it silently); one longer than
//! [`MAX_LINE`] is skipped the same way; an invalid message with a readable id is answered
//! with that id. All output, the SDK's and these errors, goes through one writer, a line at
//! a time. Serving ends when the input ends; then every answer already due is written and
//! flushed.

use super::{McpServer, ServeError};
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::service::{RoleServer, ServerInitializeError};
use rmcp::ServiceExt;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// The longest request line read: 16 MiB.
pub const MAX_LINE: usize = 16 << 20;
/// Capacity kept by the line buffer between lines: a longer line's buffer is given back.
const KEPT_LINE: usize = 64 * 1024;
/// Messages parsed and not yet taken by the SDK, at most.
const QUEUED: usize = 16;

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
    let (to_sdk, from_reader) = mpsc::channel(QUEUED);
    let (lines, pending) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(write_lines(pending, output));
    let reader = tokio::spawn(read_lines(input, to_sdk, lines.clone()));
    let transport = Messages { from_reader, lines };
    let outcome = match server.serve(transport).await {
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
    // The SDK has dropped the transport: its answers are queued; stop reading, write the rest.
    reader.abort();
    let _ = reader.await;
    match writer.await {
        Ok(Ok(())) => outcome,
        Ok(Err(e)) => outcome.and(Err(ServeError::Failed(format!("cannot write: {e}")))),
        Err(e) => outcome.and(Err(ServeError::Failed(e.to_string()))),
    }
}

/// The SDK's transport: the messages [`read_lines`] parsed, and the writer's queue for its
/// own, a line each.
struct Messages {
    from_reader: mpsc::Receiver<ClientJsonRpcMessage>,
    lines: mpsc::Sender<Vec<u8>>,
}

impl rmcp::transport::Transport<RoleServer> for Messages {
    type Error = std::io::Error;

    fn send(
        &mut self,
        message: ServerJsonRpcMessage,
    ) -> impl std::future::Future<Output = Result<(), std::io::Error>> + Send + 'static {
        let lines = self.lines.clone();
        async move {
            let mut line = serde_json::to_vec(&message)?;
            line.push(b'\n');
            lines.send(line).await.map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the output is closed")
            })
        }
    }

    fn receive(
        &mut self,
    ) -> impl std::future::Future<Output = Option<ClientJsonRpcMessage>> + Send {
        self.from_reader.recv()
    }

    async fn close(&mut self) -> Result<(), std::io::Error> {
        self.from_reader.close();
        Ok(())
    }
}

/// Reads request lines: a message goes on to the SDK, parsed; anything else is answered
/// with an error. Ends at the end of the input, or when the SDK stops listening.
async fn read_lines<R: AsyncRead + Unpin>(
    input: R,
    to_sdk: mpsc::Sender<ClientJsonRpcMessage>,
    replies: mpsc::Sender<Vec<u8>>,
) {
    let mut input = BufReader::new(input);
    let mut line = Vec::new();
    loop {
        empty(&mut line);
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
        let message = parse(text);
        // The line is not needed any more: a long one's memory goes back now.
        empty(&mut line);
        let sent = match message {
            Ok(message) => to_sdk.send(message).await.is_ok(),
            Err(Some(error)) => replies.send(error).await.is_ok(),
            Err(None) => true,
        };
        if !sent {
            break;
        }
    }
}

/// Empties the line buffer, giving back the memory of a long line.
fn empty(line: &mut Vec<u8>) {
    line.clear();
    if line.capacity() > KEPT_LINE {
        *line = Vec::new();
    }
}

/// A line as the message it holds; or the error line that answers it (`None`: nobody waits
/// for one, as for an invalid notification).
fn parse(text: &[u8]) -> Result<ClientJsonRpcMessage, Option<Vec<u8>>> {
    match serde_json::from_slice::<ClientJsonRpcMessage>(text) {
        Ok(message) => Ok(message),
        Err(error) if error.is_syntax() || error.is_eof() => {
            tracing::debug!("a line that is not JSON: {error}");
            Err(Some(parse_error(&format!("not JSON: {error}"))))
        }
        Err(error) => {
            let answer = invalid_answer(text, &error);
            if answer.is_none() {
                tracing::debug!("an invalid message without an id: {error}");
            }
            Err(answer)
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
    let error = serde_json::from_slice::<ClientJsonRpcMessage>(text).err()?;
    invalid_answer(text, &error)
}

/// The answer to `text`, JSON that is not a valid message (`error` says why), if its id is
/// readable.
fn invalid_answer(text: &[u8], error: &serde_json::Error) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Readable {
        id: Option<serde_json::Value>,
        jsonrpc: Option<serde_json::Value>,
        method: Option<serde_json::Value>,
    }
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
