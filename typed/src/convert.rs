//! JSON to component values and back, guided by the WIT types: arguments in, results out.
//!
//! The arguments were already checked against the schema `schema.rs` derives; the conversion
//! checks again (a number may pass `"type": "number"` and still not fit an `f32`) and names
//! the place of the first value that does not fit, as a JSON pointer (`/point/x`).

use serde_json::{Map, Number, Value};
use wasmtime::component::types::Type;
use wasmtime::component::Val;

/// A JSON value that does not fit its WIT type: where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub at: String,
    pub reason: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at.as_str() {
            "/" => f.write_str(&self.reason),
            at => write!(f, "at {at}: {}", self.reason),
        }
    }
}

impl std::error::Error for Mismatch {}

/// The parameters of a call, in declaration order, from the arguments object. An absent
/// `option` parameter is `none`; an unknown argument is refused.
pub fn params(params: &[(String, Type)], args: &Value) -> Result<Vec<Val>, Mismatch> {
    let Value::Object(args) = args else {
        return Err(mismatch("", format!("expected an object of arguments, got {}", kind(args))));
    };
    fields(params.iter().map(|(n, t)| (n.as_str(), t)), args, "", "argument")
}

/// Converts `json` to a value of `ty`; `at` is the JSON pointer of `json`.
pub fn to_val(ty: &Type, json: &Value, at: &str) -> Result<Val, Mismatch> {
    let wrong = |expected: &str| mismatch(at, format!("expected {expected}, got {}", kind(json)));
    Ok(match ty {
        Type::Bool => Val::Bool(json.as_bool().ok_or_else(|| wrong("a boolean"))?),
        Type::S8 => Val::S8(integer(json, at, "s8")?),
        Type::U8 => Val::U8(integer(json, at, "u8")?),
        Type::S16 => Val::S16(integer(json, at, "s16")?),
        Type::U16 => Val::U16(integer(json, at, "u16")?),
        Type::S32 => Val::S32(integer(json, at, "s32")?),
        Type::U32 => Val::U32(integer(json, at, "u32")?),
        Type::S64 => Val::S64(integer(json, at, "s64")?),
        Type::U64 => Val::U64(integer(json, at, "u64")?),
        Type::Float32 => {
            let x = json.as_f64().ok_or_else(|| wrong("a number"))?;
            let narrow = x as f32;
            if narrow.is_infinite() {
                return Err(mismatch(at, format!("{json} does not fit an f32")));
            }
            Val::Float32(narrow)
        }
        Type::Float64 => Val::Float64(json.as_f64().ok_or_else(|| wrong("a number"))?),
        Type::Char => {
            let text = json.as_str().ok_or_else(|| wrong("a one-character string"))?;
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Val::Char(c),
                _ => return Err(wrong("a one-character string")),
            }
        }
        Type::String => Val::String(json.as_str().ok_or_else(|| wrong("a string"))?.to_owned()),
        Type::List(list) => Val::List(items(&list.ty(), json, at, None)?),
        Type::FixedLengthList(list) => {
            let len = usize::try_from(list.len()).unwrap_or(usize::MAX);
            Val::FixedLengthList(items(&list.ty(), json, at, Some(len))?)
        }
        Type::Map(map) => {
            let (key, value) = (map.key(), map.value());
            let mut entries = Vec::new();
            match json {
                Value::Object(object) if key == Type::String => {
                    for (name, item) in object {
                        let item = to_val(&value, item, &format!("{at}/{}", escape(name)))?;
                        entries.push((Val::String(name.clone()), item));
                    }
                }
                Value::Array(pairs) => {
                    for (i, pair) in pairs.iter().enumerate() {
                        let at = format!("{at}/{i}");
                        let Some([k, v]) = pair.as_array().map(Vec::as_slice) else {
                            return Err(mismatch(&at, "expected a [key, value] pair".into()));
                        };
                        entries.push((
                            to_val(&key, k, &format!("{at}/0"))?,
                            to_val(&value, v, &format!("{at}/1"))?,
                        ));
                    }
                }
                _ => return Err(wrong("an object or an array of [key, value] pairs")),
            }
            Val::Map(entries)
        }
        Type::Record(record) => {
            let Value::Object(object) = json else { return Err(wrong("an object")) };
            let declared: Vec<(&str, Type)> = record.fields().map(|f| (f.name, f.ty)).collect();
            let values = fields(declared.iter().map(|(n, t)| (*n, t)), object, at, "field")?;
            Val::Record(declared.iter().map(|(n, _)| n.to_string()).zip(values).collect())
        }
        Type::Tuple(tuple) => {
            let types: Vec<Type> = tuple.types().collect();
            let Value::Array(array) = json else {
                return Err(wrong(&format!("an array of {} items", types.len())));
            };
            if array.len() != types.len() {
                let expected = format!("{} items, got {}", types.len(), array.len());
                return Err(mismatch(at, format!("expected {expected}")));
            }
            let items = types.iter().zip(array).enumerate();
            let values = items.map(|(i, (ty, item))| to_val(ty, item, &format!("{at}/{i}")));
            Val::Tuple(values.collect::<Result<_, _>>()?)
        }
        Type::Variant(variant) => {
            let cases: Vec<(&str, Option<Type>)> =
                variant.cases().map(|c| (c.name, c.ty)).collect();
            let names = || cases.iter().map(|(n, _)| format!("`{n}`")).collect::<Vec<_>>();
            let (name, payload) = case(json, at, &names().join(", "))?;
            let Some((_, ty)) = cases.iter().find(|(n, _)| *n == name) else {
                let reason = format!("no case `{name}` (the cases are {})", names().join(", "));
                return Err(mismatch(at, reason));
            };
            let at = format!("{at}/{}", escape(name));
            Val::Variant(name.to_owned(), payload_of(ty.as_ref(), payload, &at, name)?)
        }
        Type::Enum(names) => {
            let name = json.as_str().ok_or_else(|| wrong("a string"))?;
            if !names.names().any(|n| n == name) {
                let all: Vec<String> = names.names().map(|n| format!("`{n}`")).collect();
                let reason = format!("no case `{name}` (the cases are {})", all.join(", "));
                return Err(mismatch(at, reason));
            }
            Val::Enum(name.to_owned())
        }
        Type::Flags(flags) => {
            let Value::Array(array) = json else { return Err(wrong("an array of flag names")) };
            let mut set: Vec<String> = Vec::with_capacity(array.len());
            for (i, item) in array.iter().enumerate() {
                let at = format!("{at}/{i}");
                let name = item.as_str().ok_or_else(|| {
                    mismatch(&at, format!("expected a flag name, got {}", kind(item)))
                })?;
                if !flags.names().any(|n| n == name) {
                    let all: Vec<String> = flags.names().map(|n| format!("`{n}`")).collect();
                    let reason = format!("no flag `{name}` (the flags are {})", all.join(", "));
                    return Err(mismatch(&at, reason));
                }
                if set.iter().any(|n| n == name) {
                    return Err(mismatch(&at, format!("flag `{name}` given twice")));
                }
                set.push(name.to_owned());
            }
            Val::Flags(set)
        }
        Type::Option(option) => match json {
            Value::Null => Val::Option(None),
            json => Val::Option(Some(Box::new(to_val(&option.ty(), json, at)?))),
        },
        Type::Result(result) => {
            let (name, payload) = case(json, at, "`ok`, `err`")?;
            let at = format!("{at}/{name}");
            match name {
                "ok" => Val::Result(Ok(payload_of(result.ok().as_ref(), payload, &at, name)?)),
                "err" => Val::Result(Err(payload_of(result.err().as_ref(), payload, &at, name)?)),
                other => {
                    let reason = format!("expected `ok` or `err`, got `{other}`");
                    return Err(mismatch(&at, reason));
                }
            }
        }
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            // Refused at load (`schema::of`); never reached.
            return Err(mismatch(at, "a handle, which JSON cannot carry".into()));
        }
    })
}

/// The JSON of a value a typed export returned. A variant case without payload is its name,
/// one with a payload `{"case": payload}`; a `result` is `{"ok": ...}` or `{"err": ...}`;
/// `none` is `null`; flags are a list of names; a non-finite float is a string (`"NaN"`,
/// `"Infinity"`, `"-Infinity"`).
pub fn to_json(val: &Val) -> Value {
    let tagged = |name: &str, payload: &Option<Box<Val>>| {
        let payload = payload.as_deref().map_or(Value::Null, to_json);
        Value::Object(Map::from_iter([(name.to_owned(), payload)]))
    };
    match val {
        Val::Bool(b) => Value::Bool(*b),
        Val::S8(n) => Value::from(*n),
        Val::U8(n) => Value::from(*n),
        Val::S16(n) => Value::from(*n),
        Val::U16(n) => Value::from(*n),
        Val::S32(n) => Value::from(*n),
        Val::U32(n) => Value::from(*n),
        Val::S64(n) => Value::from(*n),
        Val::U64(n) => Value::from(*n),
        Val::Float32(x) => float(f64::from(*x)),
        Val::Float64(x) => float(*x),
        Val::Char(c) => Value::String(c.to_string()),
        Val::String(s) => Value::String(s.clone()),
        Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => {
            Value::Array(items.iter().map(to_json).collect())
        }
        Val::Map(entries) => {
            if entries.iter().all(|(k, _)| matches!(k, Val::String(_))) {
                let pairs = entries.iter().filter_map(|(k, v)| match k {
                    Val::String(k) => Some((k.clone(), to_json(v))),
                    _ => None,
                });
                Value::Object(pairs.collect())
            } else {
                let pairs = entries.iter().map(|(k, v)| Value::Array(vec![to_json(k), to_json(v)]));
                Value::Array(pairs.collect())
            }
        }
        Val::Record(fields) => {
            Value::Object(fields.iter().map(|(name, v)| (name.clone(), to_json(v))).collect())
        }
        Val::Variant(name, None) | Val::Enum(name) => Value::String(name.clone()),
        Val::Variant(name, payload) => tagged(name, payload),
        Val::Option(None) => Value::Null,
        Val::Option(Some(inner)) => to_json(inner),
        Val::Result(Ok(payload)) => tagged("ok", payload),
        Val::Result(Err(payload)) => tagged("err", payload),
        Val::Flags(names) => Value::Array(names.iter().cloned().map(Value::String).collect()),
        // Refused at load: a typed export offered as a tool returns none of these.
        Val::Resource(_) | Val::Future(_) | Val::Stream(_) | Val::ErrorContext(_) => Value::Null,
    }
}

fn mismatch(at: &str, reason: String) -> Mismatch {
    Mismatch { at: if at.is_empty() { "/".into() } else { at.to_owned() }, reason }
}

/// The values of named `declared` members (parameters or record fields) from `object`, in
/// declaration order. Absent `option` members are `none`; others must be present; no member
/// may be unknown.
fn fields<'a>(
    declared: impl Iterator<Item = (&'a str, &'a Type)> + Clone,
    object: &Map<String, Value>,
    at: &str,
    what: &str,
) -> Result<Vec<Val>, Mismatch> {
    if let Some(unknown) = object.keys().find(|k| !declared.clone().any(|(n, _)| n == k.as_str())) {
        let known: Vec<String> = declared.clone().map(|(n, _)| format!("`{n}`")).collect();
        let known = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
        let reason = format!("unknown {what} `{unknown}` (expected {known})");
        return Err(mismatch(at, reason));
    }
    let mut values = Vec::new();
    for (name, ty) in declared {
        let here = format!("{at}/{}", escape(name));
        values.push(match (object.get(name), ty) {
            (Some(value), ty) => to_val(ty, value, &here)?,
            (None, Type::Option(_)) => Val::Option(None),
            (None, _) => return Err(mismatch(at, format!("missing {what} `{name}`"))),
        });
    }
    Ok(values)
}

fn items(ty: &Type, json: &Value, at: &str, len: Option<usize>) -> Result<Vec<Val>, Mismatch> {
    let Value::Array(array) = json else {
        return Err(mismatch(at, format!("expected an array, got {}", kind(json))));
    };
    if let Some(len) = len.filter(|len| *len != array.len()) {
        return Err(mismatch(at, format!("expected {len} items, got {}", array.len())));
    }
    array.iter().enumerate().map(|(i, item)| to_val(ty, item, &format!("{at}/{i}"))).collect()
}

static NULL: Value = Value::Null;

/// A case, as its name alone (`"name"`) or as an object with one key (`{"name": payload}`).
fn case<'j>(json: &'j Value, at: &str, cases: &str) -> Result<(&'j str, &'j Value), Mismatch> {
    match json {
        Value::String(name) => Ok((name, &NULL)),
        Value::Object(object) if object.len() == 1 => {
            Ok(object.iter().next().map(|(k, v)| (k.as_str(), v)).unwrap_or(("", &NULL)))
        }
        _ => {
            let shapes = r#""case" or {"case": payload}"#;
            Err(mismatch(
                at,
                format!("expected one case ({cases}) as {shapes}, got {}", kind(json)),
            ))
        }
    }
}

/// The payload of case `name`: converted if the case has one, else nothing (`null`).
fn payload_of(
    ty: Option<&Type>,
    json: &Value,
    at: &str,
    name: &str,
) -> Result<Option<Box<Val>>, Mismatch> {
    match (ty, json) {
        (Some(ty), json) => Ok(Some(Box::new(to_val(ty, json, at)?))),
        (None, Value::Null) => Ok(None),
        (None, other) => {
            Err(mismatch(at, format!("case `{name}` has no payload, got {}", kind(other))))
        }
    }
}

/// An integer of type `T` (named `wit` in errors), from a JSON number without a fraction.
fn integer<T: TryFrom<i128> + Bounded>(json: &Value, at: &str, wit: &str) -> Result<T, Mismatch> {
    let Value::Number(number) = json else {
        return Err(mismatch(at, format!("expected an integer, got {}", kind(json))));
    };
    let out_of_range = || {
        let (min, max) = T::bounds();
        mismatch(at, format!("{number} does not fit a {wit} ({min} to {max})"))
    };
    let value = whole(number).ok_or_else(|| mismatch(at, format!("{number} is not an integer")))?;
    T::try_from(value).map_err(|_| out_of_range())
}

/// The value of a number without a fraction (`3`, `3.0`, `3e2`), or `None`.
fn whole(number: &Number) -> Option<i128> {
    if let Some(n) = number.as_i64() {
        return Some(i128::from(n));
    }
    if let Some(n) = number.as_u64() {
        return Some(i128::from(n));
    }
    let x = number.as_f64()?;
    // Beyond 2^100 nothing fits anyway; the bound keeps the cast exact.
    (x.fract() == 0.0 && x.abs() < 2f64.powi(100)).then_some(x as i128)
}

/// The range of an integer type, for messages.
trait Bounded {
    fn bounds() -> (i128, i128);
}

macro_rules! bounded {
    ($($t:ty),*) => {$(
        impl Bounded for $t {
            fn bounds() -> (i128, i128) {
                (<$t>::MIN as i128, <$t>::MAX as i128)
            }
        }
    )*};
}
bounded!(i8, u8, i16, u16, i32, u32, i64, u64);

fn float(x: f64) -> Value {
    match Number::from_f64(x) {
        Some(n) => Value::Number(n),
        None if x.is_nan() => Value::String("NaN".into()),
        None if x > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

/// A JSON pointer segment (`~` and `/` escaped).
fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// What a JSON value is, for messages.
fn kind(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}
