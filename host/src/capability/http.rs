//! `http`: outbound requests to allow-listed origins with size and time limits.
//! (Being implemented: every use is refused as not granted.)

use crate::bindings::moat::plugin::http::{Host, HttpError, Request, Response};
use crate::exec::CallState;
use serde::Deserialize;

/// `[tools.NAME.grants.http]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpGrant {}

/// The requests one call has sent that cannot be taken back.
#[derive(Default)]
pub struct HttpCall {
    sent: Vec<String>,
}

impl HttpCall {
    /// One message per request that a rollback cannot undo.
    pub(crate) fn irreversible(&self) -> Vec<String> {
        self.sent.iter().map(|r| format!("cannot undo {r}: already sent")).collect()
    }
}

impl Host for CallState {
    fn send(&mut self, _request: Request) -> wasmtime::Result<Result<Response, HttpError>> {
        Ok(Err(HttpError::NotGranted(format!("tool `{}` has no http grant", self.caps.tool))))
    }
}
