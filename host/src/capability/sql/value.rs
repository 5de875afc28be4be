//! The one conversion between rusqlite's values and a WIT `value` variant (null, integer,
//! real, text, blob): the `sql` interface of tools and the `facts` interface of guards each
//! have such a variant, generated as two Rust types; this macro gives each the same two
//! functions.

/// Defines `to_sql(value: $Value) -> rusqlite::types::Value` and
/// `from_sql(value: rusqlite::types::ValueRef<'_>) -> $Value` for a WIT value variant. Text
/// that is not UTF-8 is read lossily (SQLite does not check what it stores as text).
macro_rules! sql_value_conversions {
    ($Value:ident) => {
        fn to_sql(value: $Value) -> rusqlite::types::Value {
            use rusqlite::types::Value as Sql;
            match value {
                $Value::Null => Sql::Null,
                $Value::Integer(i) => Sql::Integer(i),
                $Value::Real(f) => Sql::Real(f),
                $Value::Text(s) => Sql::Text(s),
                $Value::Blob(b) => Sql::Blob(b),
            }
        }

        fn from_sql(value: rusqlite::types::ValueRef<'_>) -> $Value {
            use rusqlite::types::ValueRef;
            match value {
                ValueRef::Null => $Value::Null,
                ValueRef::Integer(i) => $Value::Integer(i),
                ValueRef::Real(f) => $Value::Real(f),
                ValueRef::Text(t) => $Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => $Value::Blob(b.to_vec()),
            }
        }
    };
}

pub(crate) use sql_value_conversions;
