//! The JSON Schema of a WIT type: what an agent sends for a parameter of a typed export, and
//! the check that a type can cross as JSON at all (no resources, futures or streams).

use serde_json::{json, Map, Value};
use std::fmt;
use wasmtime::component::types::Type;

/// A type that cannot cross as JSON, and where it is (`param/field/*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    pub at: String,
    pub what: &'static str,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is {}", self.at, self.what)
    }
}

impl std::error::Error for Unsupported {}

/// The JSON Schema of a value of `ty`, found at `at` (named in the error).
pub fn of(ty: &Type, at: &str) -> Result<Value, Unsupported> {
    let unsupported = |what| Err(Unsupported { at: at.to_owned(), what });
    Ok(match ty {
        Type::Bool => json!({"type": "boolean"}),
        Type::S8 => integer(i8::MIN, i8::MAX),
        Type::U8 => integer(u8::MIN, u8::MAX),
        Type::S16 => integer(i16::MIN, i16::MAX),
        Type::U16 => integer(u16::MIN, u16::MAX),
        Type::S32 => integer(i32::MIN, i32::MAX),
        Type::U32 => integer(u32::MIN, u32::MAX),
        Type::S64 => integer(i64::MIN, i64::MAX),
        Type::U64 => integer(u64::MIN, u64::MAX),
        Type::Float32 | Type::Float64 => json!({"type": "number"}),
        Type::Char => json!({"type": "string", "minLength": 1, "maxLength": 1}),
        Type::String => json!({"type": "string"}),
        Type::List(list) => json!({"type": "array", "items": of(&list.ty(), &format!("{at}/*"))?}),
        Type::FixedLengthList(list) => {
            let items = of(&list.ty(), &format!("{at}/*"))?;
            json!({"type": "array", "items": items, "minItems": list.len(), "maxItems": list.len()})
        }
        Type::Map(map) => {
            let value = of(&map.value(), &format!("{at}/*"))?;
            if map.key() == Type::String {
                json!({"type": "object", "additionalProperties": value})
            } else {
                let key = of(&map.key(), &format!("{at}/*/0"))?;
                json!({"type": "array", "items": pair(key, value)})
            }
        }
        Type::Record(record) => {
            let mut fields = Vec::new();
            for field in record.fields() {
                let schema = of(&field.ty, &format!("{at}/{}", field.name))?;
                fields.push((field.name.to_owned(), matches!(field.ty, Type::Option(_)), schema));
            }
            object(fields)
        }
        Type::Tuple(tuple) => {
            let items = tuple
                .types()
                .enumerate()
                .map(|(i, ty)| of(&ty, &format!("{at}/{i}")))
                .collect::<Result<Vec<_>, _>>()?;
            let n = items.len();
            json!({"type": "array", "prefixItems": items, "minItems": n, "maxItems": n})
        }
        Type::Variant(variant) => {
            let mut cases = Vec::new();
            for case in variant.cases() {
                cases.push(match &case.ty {
                    None => json!({"const": case.name}),
                    Some(ty) => {
                        let payload = of(ty, &format!("{at}/{}", case.name))?;
                        object(vec![(case.name.to_owned(), false, payload)])
                    }
                });
            }
            json!({ "oneOf": cases })
        }
        Type::Enum(names) => json!({"type": "string", "enum": names.names().collect::<Vec<_>>()}),
        Type::Flags(flags) => json!({
            "type": "array",
            "items": {"enum": flags.names().collect::<Vec<_>>()},
            "uniqueItems": true
        }),
        Type::Option(option) => {
            let inner = option.ty();
            if let Type::Option(_) = inner {
                return unsupported(
                    "an option of an option, which JSON cannot tell from one option",
                );
            }
            json!({"anyOf": [of(&inner, at)?, {"type": "null"}]})
        }
        Type::Result(result) => {
            let side = |ty: Option<Type>, name: &str| match ty {
                Some(ty) => of(&ty, &format!("{at}/{name}")),
                None => Ok(json!({"type": "null"})),
            };
            let ok = side(result.ok(), "ok")?;
            let err = side(result.err(), "err")?;
            json!({"oneOf": [
                object(vec![("ok".to_owned(), false, ok)]),
                object(vec![("err".to_owned(), false, err)]),
            ]})
        }
        Type::Own(_) | Type::Borrow(_) => return unsupported("a resource (a handle)"),
        Type::Future(_) => return unsupported("a future"),
        Type::Stream(_) => return unsupported("a stream"),
        Type::ErrorContext => return unsupported("an error-context"),
    })
}

/// The schema of the arguments object: one property per parameter, each required unless it is
/// an `option`; nothing else allowed.
pub fn arguments<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a Type)>,
) -> Result<Value, Unsupported> {
    let mut fields = Vec::new();
    for (name, ty) in params {
        fields.push((name.to_owned(), matches!(ty, Type::Option(_)), of(ty, name)?));
    }
    Ok(object(fields))
}

fn integer(min: impl Into<Value>, max: impl Into<Value>) -> Value {
    json!({"type": "integer", "minimum": min.into(), "maximum": max.into()})
}

fn pair(key: Value, value: Value) -> Value {
    json!({"type": "array", "prefixItems": [key, value], "minItems": 2, "maxItems": 2})
}

/// An object with these properties (name, optional, schema); no others.
fn object(fields: Vec<(String, bool, Value)>) -> Value {
    let required: Vec<Value> =
        fields.iter().filter(|(_, optional, _)| !optional).map(|(n, _, _)| json!(n)).collect();
    let properties: Map<String, Value> = fields.into_iter().map(|(n, _, s)| (n, s)).collect();
    let mut schema = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        schema["required"] = Value::Array(required);
    }
    schema["additionalProperties"] = Value::Bool(false);
    schema
}

/// `name(param: type, ...) -> type`, the types written as in WIT (records, variants, enums
/// and flags by their shape: a component does not keep their names). Long ones are cut.
pub fn signature(name: &str, params: &[(String, Type)], results: &[Type]) -> String {
    let params: Vec<String> = params.iter().map(|(n, t)| format!("{n}: {}", wit(t))).collect();
    let mut text = format!("{name}({})", params.join(", "));
    match results {
        [] => {}
        [one] => text.push_str(&format!(" -> {}", wit(one))),
        many => text.push_str(&format!(" -> ({})", list(many.iter().cloned()))),
    }
    if text.chars().count() > 300 {
        text = text.chars().take(299).collect::<String>() + "…";
    }
    text
}

/// A type as WIT writes it.
pub fn wit(ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(list) => format!("list<{}>", wit(&list.ty())),
        Type::FixedLengthList(list) => format!("list<{}, {}>", wit(&list.ty()), list.len()),
        Type::Map(map) => format!("map<{}, {}>", wit(&map.key()), wit(&map.value())),
        Type::Record(record) => {
            let fields: Vec<String> =
                record.fields().map(|f| format!("{}: {}", f.name, wit(&f.ty))).collect();
            format!("record {{ {} }}", fields.join(", "))
        }
        Type::Tuple(tuple) => format!("tuple<{}>", list(tuple.types())),
        Type::Variant(variant) => {
            let cases: Vec<String> = variant
                .cases()
                .map(|c| match &c.ty {
                    Some(ty) => format!("{}({})", c.name, wit(ty)),
                    None => c.name.to_owned(),
                })
                .collect();
            format!("variant {{ {} }}", cases.join(", "))
        }
        Type::Enum(names) => format!("enum {{ {} }}", names.names().collect::<Vec<_>>().join(", ")),
        Type::Flags(flags) => {
            format!("flags {{ {} }}", flags.names().collect::<Vec<_>>().join(", "))
        }
        Type::Option(option) => format!("option<{}>", wit(&option.ty())),
        Type::Result(result) => match (result.ok(), result.err()) {
            (None, None) => "result".into(),
            (Some(ok), None) => format!("result<{}>", wit(&ok)),
            (None, Some(err)) => format!("result<_, {}>", wit(&err)),
            (Some(ok), Some(err)) => format!("result<{}, {}>", wit(&ok), wit(&err)),
        },
        Type::Own(_) => "own<resource>".into(),
        Type::Borrow(_) => "borrow<resource>".into(),
        Type::Future(future) => match future.ty() {
            Some(ty) => format!("future<{}>", wit(&ty)),
            None => "future".into(),
        },
        Type::Stream(stream) => match stream.ty() {
            Some(ty) => format!("stream<{}>", wit(&ty)),
            None => "stream".into(),
        },
        Type::ErrorContext => "error-context".into(),
    }
}

fn list(types: impl Iterator<Item = Type>) -> String {
    types.map(|t| wit(&t)).collect::<Vec<_>>().join(", ")
}
