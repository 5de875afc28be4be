//! The texts the examples measure with: English (the repository's Markdown), code (its Rust
//! sources) and CJK (a paragraph of Chinese and Japanese, repeated), each about `size` bytes.

#![allow(dead_code)] // each example uses part of it

use std::path::Path;

/// Every file under `dir` whose name ends with `ext`, concatenated.
fn files(dir: &Path, ext: &str, out: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if path.is_dir() {
            if !(name.starts_with('.') || name == "target" || name == "node_modules") {
                files(&path, ext, out);
            }
        } else if name.ends_with(ext) {
            out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
}

/// `text` repeated, then cut at a character boundary, to `size` bytes.
fn sized(text: &str, size: usize) -> String {
    assert!(!text.is_empty());
    let mut out = text.repeat(size / text.len() + 1);
    let mut end = size;
    while !out.is_char_boundary(end) {
        end -= 1;
    }
    out.truncate(end);
    out
}

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

pub fn english(size: usize) -> String {
    let mut text = String::new();
    files(root(), ".md", &mut text);
    sized(&text, size)
}

pub fn code(size: usize) -> String {
    let mut text = String::new();
    files(&root().join("host"), ".rs", &mut text);
    sized(&text, size)
}

const CJK: &str = "\
自然语言处理是人工智能和语言学领域的分支学科。此领域探讨如何处理及运用自然语言；\
自然语言处理包括多方面和步骤，基本有认知、理解、生成等部分。\
自然言語処理は、人間が日常的に使っている自然言語をコンピュータに処理させる一連の技術であり、\
人工知能と言語学の一分野である。「計算言語学」との差異は、前者が工学的な視点からの言語処理をさすのに対して、\
後者は言語学的視点を重視する手法をさす事が多い。\
자연어 처리는 인간의 언어 현상을 컴퓨터와 같은 기계를 이용해서 모사할 수 있도록 연구하고 이를 구현하는 인공지능의 주요 분야 중 하나다。\n";

pub fn cjk(size: usize) -> String {
    sized(CJK, size)
}

/// A mix of the three, with emoji and numbers, in lines.
pub fn mixed(size: usize) -> String {
    let part = size / 4;
    let mut text = english(part);
    text.push_str(&code(part));
    text.push_str(&cjk(part));
    let line = "Zoë 🦀 {\"id\": 12345, \"ok\": true} café naïve — 👍🏽 ½ 3.14159\n";
    text.push_str(&sized(line, size - text.len()));
    text
}
