//! `sql`: embedded SQLite databases with table and operation scope and row limits.
//! (Being implemented: every use is refused as not granted.)

use crate::bindings::moat::plugin::sql::{Host, HostConnection, Rows, SqlError, Value};
use crate::exec::CallState;
use serde::Deserialize;
use std::path::PathBuf;
use wasmtime::component::Resource;

/// `[tools.NAME.grants.sql.GRANT]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlGrant {
    pub path: PathBuf,
}

/// A `connection` handle held by the guest.
pub struct ConnectionHandle;

/// The SQL transactions one call has open.
#[derive(Default)]
pub struct SqlCall;

impl SqlCall {
    pub(crate) fn commit(&mut self) -> Result<(), String> {
        Ok(())
    }
    pub(crate) fn rollback(&mut self) -> Result<(), String> {
        Ok(())
    }
}

impl Host for CallState {
    fn open(
        &mut self,
        grant: String,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, SqlError>> {
        Ok(Err(SqlError::NotGranted(format!(
            "tool `{}` has no sql grant `{grant}`",
            self.caps.tool
        ))))
    }
}

impl HostConnection for CallState {
    fn query(
        &mut self,
        _: Resource<ConnectionHandle>,
        _: String,
        _: Vec<Value>,
    ) -> wasmtime::Result<Result<Rows, SqlError>> {
        wasmtime::bail!("no sql connection can exist yet")
    }
    fn execute(
        &mut self,
        _: Resource<ConnectionHandle>,
        _: String,
        _: Vec<Value>,
    ) -> wasmtime::Result<Result<u64, SqlError>> {
        wasmtime::bail!("no sql connection can exist yet")
    }
    fn drop(&mut self, handle: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}
