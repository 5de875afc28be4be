//! Typed exports, unit by unit: the JSON Schema and the conversion of every kind of WIT type,
//! refusals naming where the value is, and how exported functions become tools.

use super::convert::{params, to_json, to_val};
use super::{discover, output, schema, CallError, ExportError};
use serde_json::{json, Value};
use wasmtime::component::types::{ComponentItem, Type};
use wasmtime::component::{Component, Val};
use wasmtime::{Config, Engine};

fn engine() -> Engine {
    let mut config = Config::new();
    config.wasm_component_model(true);
    Engine::new(&config).expect("an engine")
}

/// The WIT type `ty` (component text), declared after `decls` (named types).
fn wit(decls: &str, ty: &str) -> Type {
    let engine = engine();
    let text = format!(r#"(component {decls} (import "f" (func (param "p" {ty}))))"#);
    let component = Component::new(&engine, &text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
    let component_ty = component.component_type();
    let item = component_ty.get_import(&engine, "f").expect("the import").ty;
    let ComponentItem::ComponentFunc(func) = item else { panic!("not a function") };
    let (_, ty) = func.params().next().expect("a parameter");
    ty
}

/// A named type `name` defined as `definition`, for [`wit`]'s declarations.
fn named(name: &str, definition: &str) -> String {
    format!(r#"(type ${name}-def {definition}) (import "{name}" (type ${name} (eq ${name}-def)))"#)
}

/// The schema of `ty` at parameter `p`.
fn schema_of(ty: &Type) -> Value {
    schema::of(ty, "p").expect("a supported type")
}

/// The conversion of `json`, refused: the message.
fn refusal(ty: &Type, json: Value) -> String {
    match to_val(ty, &json, "/p") {
        Ok(val) => panic!("{json} was accepted as {val:?}"),
        Err(mismatch) => mismatch.to_string(),
    }
}

/// JSON to a value and back, unchanged.
fn round_trip(ty: &Type, json: Value) -> Val {
    let val = to_val(ty, &json, "/p").unwrap_or_else(|e| panic!("{json}: {e}"));
    assert_eq!(to_json(&val), json, "{val:?}");
    val
}

/// Whether the derived schema of `ty` accepts `json`, as a host checks arguments.
fn schema_accepts(ty: &Type, json: Value) -> bool {
    let args = schema::arguments([("p", ty)]).expect("a supported type");
    let validator = jsonschema::validator_for(&args).expect("the schema compiles");
    validator.is_valid(&json!({ "p": json }))
}

#[test]
fn integers_are_bounded_by_their_wit_type() {
    let u8_ty = wit("", "u8");
    assert_eq!(schema_of(&u8_ty), json!({"type": "integer", "minimum": 0, "maximum": 255}));
    assert_eq!(round_trip(&u8_ty, json!(255)), Val::U8(255));
    assert_eq!(refusal(&u8_ty, json!(256)), "at /p: 256 does not fit a u8 (0 to 255)");
    assert_eq!(refusal(&u8_ty, json!(-1)), "at /p: -1 does not fit a u8 (0 to 255)");
    assert_eq!(refusal(&u8_ty, json!(2.5)), "at /p: 2.5 is not an integer");
    assert_eq!(refusal(&u8_ty, json!("7")), "at /p: expected an integer, got a string");
    assert_eq!(to_val(&u8_ty, &json!(7.0), "/p"), Ok(Val::U8(7)));
    let s64 = wit("", "s64");
    assert_eq!(
        schema_of(&s64),
        json!({"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX})
    );
    assert_eq!(round_trip(&s64, json!(i64::MIN)), Val::S64(i64::MIN));
    let u64_ty = wit("", "u64");
    assert_eq!(round_trip(&u64_ty, json!(u64::MAX)), Val::U64(u64::MAX));
    assert!(refusal(&u64_ty, json!(-3)).contains("does not fit a u64"));
    assert!(schema_accepts(&u8_ty, json!(255)) && !schema_accepts(&u8_ty, json!(256)));
    for (ty, min, max) in [("s8", -128, 127), ("s16", -32768, 32767), ("u16", 0, 65535)] {
        let bounds = schema_of(&wit("", ty));
        assert_eq!(
            (bounds["minimum"].clone(), bounds["maximum"].clone()),
            (json!(min), json!(max))
        );
    }
    let u32_ty = wit("", "u32");
    assert_eq!(schema_of(&u32_ty)["maximum"], json!(u32::MAX));
    let refused = refusal(&u32_ty, json!(4_294_967_296u64));
    assert_eq!(refused, "at /p: 4294967296 does not fit a u32 (0 to 4294967295)");
    assert_eq!(round_trip(&wit("", "s32"), json!(-5)), Val::S32(-5));
}

#[test]
fn floats_are_numbers_and_an_f32_refuses_what_it_cannot_hold() {
    let f32_ty = wit("", "f32");
    assert_eq!(schema_of(&f32_ty), json!({"type": "number"}));
    assert_eq!(round_trip(&f32_ty, json!(1.5)), Val::Float32(1.5));
    assert_eq!(refusal(&f32_ty, json!(1e300)), "at /p: 1e+300 does not fit an f32");
    assert_eq!(round_trip(&wit("", "f64"), json!(1e300)), Val::Float64(1e300));
    assert_eq!(to_json(&Val::Float64(f64::NAN)), json!("NaN"));
    assert_eq!(to_json(&Val::Float32(f32::NEG_INFINITY)), json!("-Infinity"));
}

#[test]
fn a_char_is_a_string_of_exactly_one_character() {
    let char_ty = wit("", "char");
    assert_eq!(schema_of(&char_ty), json!({"type": "string", "minLength": 1, "maxLength": 1}));
    assert_eq!(round_trip(&char_ty, json!("é")), Val::Char('é'));
    assert_eq!(round_trip(&char_ty, json!("🦀")), Val::Char('🦀'));
    for wrong in [json!("ab"), json!(""), json!(5)] {
        assert!(refusal(&char_ty, wrong).contains("expected a one-character string"));
    }
    assert!(schema_accepts(&char_ty, json!("🦀")) && !schema_accepts(&char_ty, json!("ab")));
}

#[test]
fn strings_and_booleans_are_themselves() {
    assert_eq!(schema_of(&wit("", "string")), json!({"type": "string"}));
    assert_eq!(round_trip(&wit("", "string"), json!("two words")), Val::String("two words".into()));
    assert_eq!(schema_of(&wit("", "bool")), json!({"type": "boolean"}));
    assert_eq!(round_trip(&wit("", "bool"), json!(true)), Val::Bool(true));
    assert_eq!(refusal(&wit("", "bool"), json!("true")), "at /p: expected a boolean, got a string");
}

#[test]
fn a_list_is_an_array_and_a_wrong_item_is_named_by_its_index() {
    let list = wit("", "(list u8)");
    assert_eq!(
        schema_of(&list),
        json!({"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 255}})
    );
    assert_eq!(round_trip(&list, json!([1, 2])), Val::List(vec![Val::U8(1), Val::U8(2)]));
    assert_eq!(refusal(&list, json!([1, 2, 300])), "at /p/2: 300 does not fit a u8 (0 to 255)");
    assert_eq!(refusal(&list, json!({"0": 1})), "at /p: expected an array, got an object");
}

#[test]
fn a_record_is_an_object_whose_option_fields_may_be_left_out() {
    let decls = named("point", r#"(record (field "x" s32) (field "label" (option string)))"#);
    let point = wit(&decls, "$point");
    assert_eq!(
        schema_of(&point),
        json!({
            "type": "object",
            "properties": {
                "x": {"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX},
                "label": {"anyOf": [{"type": "string"}, {"type": "null"}]}
            },
            "required": ["x"],
            "additionalProperties": false
        })
    );
    let val = to_val(&point, &json!({"x": 3}), "/p").unwrap();
    let expected = vec![("x".into(), Val::S32(3)), ("label".into(), Val::Option(None))];
    assert_eq!(val, Val::Record(expected));
    assert_eq!(to_json(&val), json!({"x": 3, "label": null}));
    round_trip(&point, json!({"x": -1, "label": "origin"}));
    assert_eq!(refusal(&point, json!({"label": "a"})), "at /p: missing field `x`");
    assert_eq!(
        refusal(&point, json!({"x": 1, "y": 2})),
        "at /p: unknown field `y` (expected `x`, `label`)"
    );
    assert_eq!(
        refusal(&point, json!({"x": 1, "label": 7})),
        "at /p/label: expected a string, got 7"
    );
    assert!(schema_accepts(&point, json!({"x": 1})));
    assert!(!schema_accepts(&point, json!({"x": 1, "y": 2})));
}

#[test]
fn a_variant_case_is_its_name_or_an_object_holding_its_payload() {
    let decls =
        named("shape", r#"(variant (case "empty") (case "circle" f64) (case "square" u8))"#);
    let shape = wit(&decls, "$shape");
    assert_eq!(
        schema_of(&shape),
        json!({"oneOf": [
            {"const": "empty"},
            {"type": "object", "properties": {"circle": {"type": "number"}},
             "required": ["circle"], "additionalProperties": false},
            {"type": "object",
             "properties": {"square": {"type": "integer", "minimum": 0, "maximum": 255}},
             "required": ["square"], "additionalProperties": false},
        ]})
    );
    assert_eq!(round_trip(&shape, json!("empty")), Val::Variant("empty".into(), None));
    assert_eq!(
        round_trip(&shape, json!({"circle": 2.5})),
        Val::Variant("circle".into(), Some(Box::new(Val::Float64(2.5))))
    );
    assert_eq!(
        refusal(&shape, json!("triangle")),
        "at /p: no case `triangle` (the cases are `empty`, `circle`, `square`)"
    );
    assert_eq!(
        refusal(&shape, json!({"square": 256})),
        "at /p/square: 256 does not fit a u8 (0 to 255)"
    );
    assert_eq!(
        refusal(&shape, json!({"empty": 1})),
        "at /p/empty: case `empty` has no payload, got 1"
    );
    assert!(refusal(&shape, json!({"circle": 1, "square": 2})).contains("expected one case"));
    assert!(schema_accepts(&shape, json!("empty")) && !schema_accepts(&shape, json!("circle")));
}

#[test]
fn an_enum_is_one_of_its_names() {
    let color = wit(&named("color", r#"(enum "red" "dark-green")"#), "$color");
    assert_eq!(schema_of(&color), json!({"type": "string", "enum": ["red", "dark-green"]}));
    assert_eq!(round_trip(&color, json!("dark-green")), Val::Enum("dark-green".into()));
    assert_eq!(
        refusal(&color, json!("blue")),
        "at /p: no case `blue` (the cases are `red`, `dark-green`)"
    );
}

#[test]
fn flags_are_a_set_of_names() {
    let access = wit(&named("access", r#"(flags "read" "write" "exec")"#), "$access");
    assert_eq!(
        schema_of(&access),
        json!({"type": "array", "items": {"enum": ["read", "write", "exec"]}, "uniqueItems": true})
    );
    let val = round_trip(&access, json!(["write", "read"]));
    assert_eq!(val, Val::Flags(vec!["write".into(), "read".into()]));
    round_trip(&access, json!([]));
    assert_eq!(refusal(&access, json!(["read", "read"])), "at /p/1: flag `read` given twice");
    assert_eq!(
        refusal(&access, json!(["delete"])),
        "at /p/0: no flag `delete` (the flags are `read`, `write`, `exec`)"
    );
    assert!(!schema_accepts(&access, json!(["read", "read"])));
}

#[test]
fn an_option_is_its_value_or_null_and_an_option_of_an_option_is_refused() {
    let option = wit("", "(option u8)");
    assert_eq!(
        schema_of(&option),
        json!({"anyOf": [{"type": "integer", "minimum": 0, "maximum": 255}, {"type": "null"}]})
    );
    assert_eq!(round_trip(&option, json!(null)), Val::Option(None));
    assert_eq!(round_trip(&option, json!(4)), Val::Option(Some(Box::new(Val::U8(4)))));
    let nested = wit("", "(option (option u8))");
    let refused = schema::of(&nested, "p").unwrap_err();
    assert_eq!(refused.at, "p");
    assert!(refused.to_string().contains("an option of an option"), "{refused}");
}

#[test]
fn a_result_argument_is_ok_or_err() {
    let result = wit("", "(result u8 (error string))");
    assert_eq!(
        schema_of(&result),
        json!({"oneOf": [
            {"type": "object", "properties": {"ok": {"type": "integer", "minimum": 0, "maximum": 255}},
             "required": ["ok"], "additionalProperties": false},
            {"type": "object", "properties": {"err": {"type": "string"}},
             "required": ["err"], "additionalProperties": false},
        ]})
    );
    assert_eq!(round_trip(&result, json!({"ok": 3})), Val::Result(Ok(Some(Box::new(Val::U8(3))))));
    let err = round_trip(&result, json!({"err": "no"}));
    assert_eq!(err, Val::Result(Err(Some(Box::new(Val::String("no".into()))))));
    assert!(refusal(&result, json!({"maybe": 1})).contains("expected `ok` or `err`"));
    let bare = wit("", "(result)");
    assert_eq!(round_trip(&bare, json!({"ok": null})), Val::Result(Ok(None)));
    assert!(
        schema_accepts(&bare, json!({"err": null})) && !schema_accepts(&bare, json!({"ok": 1}))
    );
}

#[test]
fn a_result_value_is_the_output_when_ok_and_the_tools_own_error_when_err() {
    let ok = Val::Result(Ok(Some(Box::new(Val::String("14".into())))));
    assert_eq!(output(&[ok]).unwrap().to_string(), r#""14""#);
    let err = Val::Result(Err(Some(Box::new(Val::String("ZeroDivisionError: x".into())))));
    assert_eq!(output(&[err]), Err(CallError::Failed("ZeroDivisionError: x".into())));
    let coded = Val::Result(Err(Some(Box::new(Val::U32(7)))));
    assert_eq!(output(&[coded]).unwrap_err().to_string(), "7");
    let bare = Val::Result(Err(None));
    assert_eq!(output(&[bare]).unwrap_err().to_string(), "it returned an error, without a value");
    assert_eq!(output(&[]).unwrap(), json!(null));
    assert_eq!(output(&[Val::Result(Ok(None))]).unwrap(), json!(null));
    assert_eq!(output(&[Val::U8(4)]).unwrap(), json!(4));
    let nested = Val::Option(Some(Box::new(Val::Result(Ok(None)))));
    assert_eq!(output(&[nested]).unwrap(), json!({"ok": null}));
}

#[test]
fn a_tuple_is_an_array_of_fixed_length() {
    let tuple = wit("", "(tuple string bool)");
    assert_eq!(
        schema_of(&tuple),
        json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}],
               "minItems": 2, "maxItems": 2})
    );
    round_trip(&tuple, json!(["a", false]));
    assert_eq!(refusal(&tuple, json!(["a"])), "at /p: expected 2 items, got 1");
    assert_eq!(refusal(&tuple, json!(["a", 1])), "at /p/1: expected a boolean, got 1");
    assert!(schema_accepts(&tuple, json!(["a", true])));
    assert!(!schema_accepts(&tuple, json!([true, "a"])) && !schema_accepts(&tuple, json!(["a"])));
}

#[test]
fn resources_are_refused_naming_where_they_are() {
    let decls = r#"(import "file" (type $file (sub resource)))"#;
    let own = wit(decls, "(own $file)");
    let refused = schema::of(&own, "p").unwrap_err();
    assert_eq!(refused.to_string(), "`p` is a resource (a handle)");
    let borrowed =
        format!(r#"{decls} {}"#, named("req", r#"(record (field "files" (list (borrow $file))))"#));
    let record = wit(&borrowed, "$req");
    assert_eq!(schema::of(&record, "p").unwrap_err().at, "p/files/*");
}

#[test]
fn the_arguments_are_one_property_per_parameter_required_unless_optional() {
    let text = wit("", "string");
    let count = wit("", "(option u32)");
    let declared = [("expression".to_owned(), text.clone()), ("limit".to_owned(), count.clone())];
    assert_eq!(
        schema::arguments(declared.iter().map(|(n, t)| (n.as_str(), t))).unwrap(),
        json!({
            "type": "object",
            "properties": {
                "expression": {"type": "string"},
                "limit": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": u32::MAX}, {"type": "null"}]}
            },
            "required": ["expression"],
            "additionalProperties": false
        })
    );
    let vals = params(&declared, &json!({"expression": "1 + 1"})).unwrap();
    assert_eq!(vals, vec![Val::String("1 + 1".into()), Val::Option(None)]);
    let missing = params(&declared, &json!({"limit": 3})).unwrap_err();
    assert_eq!(missing.to_string(), "missing argument `expression`");
    let unknown = params(&declared, &json!({"expression": "x", "extra": 1})).unwrap_err();
    assert_eq!(unknown.to_string(), "unknown argument `extra` (expected `expression`, `limit`)");
    let wrong = params(&declared, &json!({"expression": 42})).unwrap_err();
    assert_eq!(wrong.to_string(), "at /expression: expected a string, got 42");
    assert_eq!(
        schema::arguments(std::iter::empty()).unwrap(),
        json!({"type": "object", "properties": {}, "additionalProperties": false})
    );
}

#[test]
fn a_signature_reads_as_wit() {
    let result = wit("", "(result string (error string))");
    let declared = [("expression".to_owned(), wit("", "string"))];
    assert_eq!(
        schema::signature("eval", &declared, &[result]),
        "eval(expression: string) -> result<string, string>"
    );
    let point = wit(&named("point", r#"(record (field "x" s32) (field "y" (list u8)))"#), "$point");
    assert_eq!(schema::wit(&point), "record { x: s32, y: list<u8> }");
}

/// A component exporting `add(a, b)` at the top level and in interface `acme:calc/ops`, and
/// `scale(x: f32)`.
const CALC: &str = r#"(component
    (core module $m
        (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
        (func (export "scale") (param f32) (result f32) local.get 0 f32.const 2 f32.mul))
    (core instance $i (instantiate $m))
    (func $add (param "a" u32) (param "b" u32) (result u32) (canon lift (core func $i "add")))
    (func $scale (param "x" f32) (result f32) (canon lift (core func $i "scale")))
    (instance $ops (export "add" (func $add)))
    (export "add" (func $add))
    (export "scale" (func $scale))
    (export "acme:calc/ops@1.0.0" (instance $ops)))"#;

#[test]
fn exported_functions_become_tools_and_a_clash_is_prefixed_by_the_interface() {
    let engine = engine();
    let component = Component::new(&engine, CALC).unwrap();
    let tools = discover(&engine, &component, "calc.wasm").unwrap().expect("functions");
    let names: Vec<&str> = tools.iter().map(|(_, tool)| tool.name.as_str()).collect();
    assert_eq!(names, ["add", "scale", "ops_add"]);
    let functions: Vec<&str> = tools.iter().map(|(_, tool)| tool.function.as_str()).collect();
    assert_eq!(functions, ["add", "scale", "acme:calc/ops@1.0.0#add"]);
    assert!(tools.iter().all(|(function, tool)| function.tool == tool.name));
    let (_, prefixed) = &tools[2];
    assert!(
        prefixed.description.starts_with(
            "`add(a: u32, b: u32) -> u32` of `acme:calc/ops@1.0.0`, exported by calc.wasm"
        ),
        "{}",
        prefixed.description
    );
    assert!(prefixed.description.contains("Named `ops_add` because"), "{}", prefixed.description);
    assert_eq!(tools[0].1.input_schema["required"], json!(["a", "b"]));
    let add = &tools[0].0;
    assert_eq!(add.params(r#"{"a": 1, "b": 2}"#), Ok(vec![Val::U32(1), Val::U32(2)]));
    assert_eq!(
        add.params("{"),
        Err(CallError::InvalidArguments(
            "not JSON: EOF while parsing an object at line 1 column 1".into()
        ))
    );
    assert_eq!(add.results().len(), 1);
}

#[test]
fn the_pre_initialization_export_of_componentize_py_is_not_a_tool() {
    let engine = engine();
    let text = r#"(component
        (core module $m (func (export "init") (param i32 i32 i32)))
        (core instance $i (instantiate $m))
        (func $init (param "app-name" u32) (param "symbols" u32) (param "stub-wasi" bool)
            (canon lift (core func $i "init")))
        (func $other (param "app-name" u32) (param "symbols" u32) (param "other" bool)
            (canon lift (core func $i "init")))
        (instance $exports (export "init" (func $init)))
        (instance $mine (export "init" (func $other)))
        (export "exports" (instance $exports))
        (export "mine" (instance $mine)))"#;
    let component = Component::new(&engine, text).unwrap();
    let tools = discover(&engine, &component, "app.wasm").unwrap().expect("functions");
    let names: Vec<&str> = tools.iter().map(|(_, tool)| tool.name.as_str()).collect();
    assert_eq!(names, ["init"]);
    assert!(tools[0].1.description.contains("of `mine`"), "{}", tools[0].1.description);
}

#[test]
fn a_component_without_functions_has_no_typed_exports() {
    let engine = engine();
    let component = Component::new(&engine, "(component)").unwrap();
    assert!(discover(&engine, &component, "empty.wasm").unwrap().is_none());
}

#[test]
fn a_function_taking_a_resource_refuses_the_component_naming_function_and_parameter() {
    let engine = engine();
    let text = r#"(component
        (type $r (resource (rep i32)))
        (export $file "file" (type $r))
        (core module $m (func (export "close") (param i32)))
        (core instance $i (instantiate $m))
        (func $close (param "handle" (own $file)) (canon lift (core func $i "close")))
        (instance $files (export "file" (type $file)) (export "close" (func $close)))
        (export "acme:fs/files@1.0.0" (instance $files)))"#;
    let component = Component::new(&engine, text).unwrap_or_else(|e| panic!("{e:?}"));
    match discover(&engine, &component, "fs.wasm") {
        Err(problem @ ExportError::NotATool { .. }) => assert_eq!(
            problem.to_string(),
            "exports `acme:fs/files@1.0.0#close`, which cannot be a tool: its parameter \
             `handle` is a resource (a handle); only functions of plain data can be tools \
             (no resources, futures or streams)"
        ),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a resource parameter was accepted"),
    }
}

#[test]
fn two_functions_that_would_be_one_tool_refuse_the_component() {
    let engine = engine();
    let text = r#"(component
        (core module $m
            (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))
        (core instance $i (instantiate $m))
        (func $add (param "a" u32) (param "b" u32) (result u32) (canon lift (core func $i "add")))
        (instance $ops (export "add" (func $add)))
        (export "acme:calc/ops@1.0.0" (instance $ops))
        (export "acme:calc/ops@2.0.0" (instance $ops)))"#;
    let component = Component::new(&engine, text).unwrap_or_else(|e| panic!("{e:?}"));
    let Err(refused) = discover(&engine, &component, "calc.wasm") else { panic!("no clash") };
    assert_eq!(refused, ExportError::Clash { tool: "ops_add".into() });
    assert_eq!(refused.to_string(), "tool `ops_add`: two exported functions would be this tool");
}
