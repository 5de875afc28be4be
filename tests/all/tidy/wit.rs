//! The WIT rule: every item of `wit/*.wit` has a doc comment (parsed with `wit-parser`).

use super::*;

/// The number of items of the WIT package in `dir`, and every one without a doc comment
/// right above it, as "FILE:LINE: KIND `NAME` ...", FILE relative to `root`.
pub(super) fn undocumented_wit_items(dir: &Path, root: &Path) -> (usize, Vec<String>) {
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve.push_dir(dir).unwrap_or_else(|e| {
        panic!("the WIT in {} does not parse: {e:#}", dir.display());
    });
    let mut checker = DocChecker { resolve: &resolve, root, checked: 0, offenders: Vec::new() };
    let package = &resolve.packages[package];
    for &id in package.interfaces.values() {
        checker.interface(id, "");
    }
    for &id in package.worlds.values() {
        checker.world(id);
    }
    let mut offenders = checker.offenders;
    offenders.sort_by_key(|o| location_key(o));
    (checker.checked, offenders)
}

/// Sorts "file:line: ..." by file, then line as a number.
pub(super) fn location_key(offender: &str) -> (String, usize) {
    let mut parts = offender.splitn(3, ':');
    let file = parts.next().unwrap_or("").to_owned();
    let line = parts.next().and_then(|l| l.parse().ok()).unwrap_or(0);
    (file, line)
}

pub(super) struct DocChecker<'a> {
    resolve: &'a wit_parser::Resolve,
    root: &'a Path,
    /// Items looked at.
    checked: usize,
    offenders: Vec<String>,
}

impl DocChecker<'_> {
    /// An interface, its types and its functions; `scope` prefixes the names of an
    /// anonymous (inline) interface's items.
    fn interface(&mut self, id: wit_parser::InterfaceId, scope: &str) {
        let interface = &self.resolve.interfaces[id];
        let scope = match &interface.name {
            Some(name) => {
                self.check(&interface.docs, interface.span, &format!("interface `{name}`"));
                format!("{name}.")
            }
            None => scope.to_owned(),
        };
        self.types(wit_parser::TypeOwner::Interface(id), &scope);
        for function in interface.functions.values() {
            self.function(function, &scope);
        }
    }

    /// A world, its types, the functions it imports or exports and its inline interfaces.
    fn world(&mut self, id: wit_parser::WorldId) {
        let world = &self.resolve.worlds[id];
        self.check(&world.docs, world.span, &format!("world `{}`", world.name));
        let scope = format!("{}.", world.name);
        self.types(wit_parser::TypeOwner::World(id), &scope);
        for (key, item) in world.imports.iter().chain(world.exports.iter()) {
            match item {
                wit_parser::WorldItem::Function(function) => self.function(function, &scope),
                wit_parser::WorldItem::Interface { id, .. }
                    if self.resolve.interfaces[*id].name.is_none() =>
                {
                    let inline = format!("{scope}{}.", self.resolve.name_world_key(key));
                    self.interface(*id, &inline);
                }
                wit_parser::WorldItem::Interface { .. } | wit_parser::WorldItem::Type { .. } => {}
            }
        }
    }

    /// The named types `owner` defines, with their fields, cases and flags. Types brought
    /// in by `use` are documented where they are defined; anonymous ones (`list<u8>`) are
    /// not items.
    fn types(&mut self, owner: wit_parser::TypeOwner, scope: &str) {
        use wit_parser::TypeDefKind;
        for (_, def) in self.resolve.types.iter() {
            let Some(name) = &def.name else { continue };
            if def.owner != owner {
                continue;
            }
            if let TypeDefKind::Type(wit_parser::Type::Id(target)) = def.kind {
                if self.resolve.types[target].owner != def.owner {
                    continue; // brought in by `use`
                }
            }
            let name = format!("{scope}{name}");
            let kind = match &def.kind {
                TypeDefKind::Record(record) => {
                    for field in &record.fields {
                        let what = format!("record field `{name}.{}`", field.name);
                        self.check(&field.docs, field.span, &what);
                    }
                    "record"
                }
                TypeDefKind::Variant(variant) => {
                    for case in &variant.cases {
                        let what = format!("variant case `{name}.{}`", case.name);
                        self.check(&case.docs, case.span, &what);
                    }
                    "variant"
                }
                TypeDefKind::Enum(enum_) => {
                    for case in &enum_.cases {
                        let what = format!("enum case `{name}.{}`", case.name);
                        self.check(&case.docs, case.span, &what);
                    }
                    "enum"
                }
                TypeDefKind::Flags(flags) => {
                    for flag in &flags.flags {
                        let what = format!("flag `{name}.{}`", flag.name);
                        self.check(&flag.docs, flag.span, &what);
                    }
                    "flags"
                }
                TypeDefKind::Resource => "resource",
                _ => "type alias",
            };
            self.check(&def.docs, def.span, &format!("{kind} `{name}`"));
        }
    }

    /// A function, a resource's method, static function or constructor.
    fn function(&mut self, function: &wit_parser::Function, scope: &str) {
        use wit_parser::FunctionKind;
        let resource = |id: wit_parser::TypeId| {
            self.resolve.types[id].name.clone().unwrap_or_else(|| "?".to_owned())
        };
        let item = function.item_name();
        let what = match function.kind {
            FunctionKind::Freestanding | FunctionKind::AsyncFreestanding => {
                format!("function `{scope}{item}`")
            }
            FunctionKind::Method(r) | FunctionKind::AsyncMethod(r) => {
                format!("method `{scope}{}.{item}`", resource(r))
            }
            FunctionKind::Static(r) | FunctionKind::AsyncStatic(r) => {
                format!("static function `{scope}{}.{item}`", resource(r))
            }
            FunctionKind::Constructor(r) => format!("constructor of `{scope}{}`", resource(r)),
        };
        self.check(&function.docs, function.span, &what);
    }

    /// Records `what` as an offender unless it has a doc comment right above it. wit-parser
    /// takes any comment (`//` too) as docs, so the comment's first characters are checked
    /// in the source as well.
    fn check(&mut self, docs: &wit_parser::Docs, span: wit_parser::Span, what: &str) {
        self.checked += 1;
        let documented = docs.contents.as_deref().is_some_and(|d| !d.trim().is_empty());
        let (file, line, above) = match self.resolve.source_map.resolve_span(span) {
            Some(location) => {
                let source = std::fs::read_to_string(location.path).unwrap_or_default();
                let (line, above) = comment_above(&source, location.range.start);
                (relative(self.root, Path::new(location.path)), line, above)
            }
            None => ("<unknown location>".to_owned(), 0, CommentAbove::Doc),
        };
        let problem = match (documented, above) {
            (true, CommentAbove::Doc) => return,
            (true, CommentAbove::Plain) => {
                "has a `//` comment, which is not a doc comment: write `///` instead"
            }
            (false, _) | (true, CommentAbove::None) => {
                "has no doc comment: write a `///` line right above it"
            }
        };
        self.offenders.push(format!("{file}:{line}: {what} {problem}"));
    }
}

/// What is right above an item.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum CommentAbove {
    /// A `///` line or a `/** */` comment.
    Doc,
    /// A `//` line that is not `///`, or a `/* */` comment.
    Plain,
    /// No comment (code, a blank line, the start of the file).
    None,
}

/// The 1-based line of the byte offset `at` in `source`, and the comment right above that
/// line (skipping `@attribute` lines), or on it before `at` (`/** doc */ case,`).
pub(super) fn comment_above(source: &str, at: usize) -> (usize, CommentAbove) {
    let at = at.min(source.len());
    let line_start = source[..at].rfind('\n').map_or(0, |i| i + 1);
    let number = source[..at].matches('\n').count() + 1;
    let before = source[line_start..at].trim();
    if let Some(block) = before.strip_suffix("*/") {
        let doc = block.rfind("/*").is_some_and(|i| block[i..].starts_with("/**"));
        return (number, if doc { CommentAbove::Doc } else { CommentAbove::Plain });
    }
    let lines: Vec<&str> = source[..line_start].lines().collect();
    for line in lines.iter().rev() {
        let line = line.trim();
        if line.starts_with('@') {
            continue;
        }
        let style = if line.starts_with("///") && !line.starts_with("////") {
            CommentAbove::Doc
        } else if line.starts_with("//") {
            CommentAbove::Plain
        } else if line.ends_with("*/") {
            // The last line of a block comment: find where it opens.
            let above = &source[..line_start];
            let opening = above.rfind("/*").map(|i| &above[i..]);
            if opening.is_some_and(|o| o.starts_with("/**")) {
                CommentAbove::Doc
            } else {
                CommentAbove::Plain
            }
        } else {
            CommentAbove::None
        };
        return (number, style);
    }
    (number, CommentAbove::None)
}
