//! Human-readable byte sizes and durations for `moat.toml` and the CLI ("64 MiB", "2s").

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::time::Duration;

/// A number of bytes, written in config as an integer or as a string such as `"64 MiB"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn kib(n: u64) -> ByteSize {
        ByteSize(n * 1024)
    }
    pub const fn mib(n: u64) -> ByteSize {
        ByteSize(n * 1024 * 1024)
    }
}

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<ByteSize, String> {
        let (number, unit) = split_number(text);
        let number: f64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a size such as `64 MiB` or `4096`"))?;
        let scale: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            _ => {
                return Err(format!(
                    "`{text}` has an unknown unit `{unit}` (use B, KiB, MiB or GiB)"
                ))
            }
        };
        if number < 0.0 || !number.is_finite() {
            return Err(format!("`{text}` is not a positive size"));
        }
        Ok(ByteSize((number * scale as f64) as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        let (scale, unit) = match bytes {
            b if b >= 1 << 30 => (1u64 << 30, "GiB"),
            b if b >= 1 << 20 => (1 << 20, "MiB"),
            b if b >= 1 << 10 => (1 << 10, "KiB"),
            _ => return write!(f, "{bytes} B"),
        };
        if bytes.is_multiple_of(scale) {
            write!(f, "{} {unit}", bytes / scale)
        } else {
            write!(f, "{:.1} {unit}", bytes as f64 / scale as f64)
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ByteSize, D::Error> {
        number_or_text(deserializer, ByteSize)
    }
}

/// A duration, written in config as integer milliseconds or as a string such as `"2s"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Millis(pub u64);

impl Millis {
    pub fn duration(self) -> Duration {
        Duration::from_millis(self.0)
    }
}

impl std::str::FromStr for Millis {
    type Err = String;

    fn from_str(text: &str) -> Result<Millis, String> {
        let (number, unit) = split_number(text);
        let number: f64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a duration such as `2s` or `500ms`"))?;
        let scale = match unit {
            "" | "ms" => 1.0,
            "s" => 1000.0,
            "m" | "min" => 60_000.0,
            _ => return Err(format!("`{text}` has an unknown unit `{unit}` (use ms, s or min)")),
        };
        if number < 0.0 || !number.is_finite() {
            return Err(format!("`{text}` is not a positive duration"));
        }
        Ok(Millis((number * scale) as u64))
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Millis, D::Error> {
        number_or_text(deserializer, Millis)
    }
}

/// A plain number (in the base unit), or text parsed with `FromStr` ("64 MiB", "2s").
fn number_or_text<'de, D, T>(deserializer: D, from_number: fn(u64) -> T) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr<Err = String>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Number(n) => Ok(from_number(n)),
        Raw::Text(text) => text.parse().map_err(serde::de::Error::custom),
    }
}

fn split_number(text: &str) -> (&str, &str) {
    let text = text.trim();
    let end =
        text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_')).unwrap_or(text.len());
    (text[..end].trim(), text[end..].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!("4096".parse(), Ok(ByteSize(4096)));
        assert_eq!("64 MiB".parse(), Ok(ByteSize::mib(64)));
        assert_eq!("1.5KiB".parse(), Ok(ByteSize(1536)));
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert!("lots".parse::<ByteSize>().is_err());
    }

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!("250".parse(), Ok(Millis(250)));
        assert_eq!("2s".parse(), Ok(Millis(2000)));
        assert_eq!("500 ms".parse(), Ok(Millis(500)));
        assert!("2 fortnights".parse::<Millis>().is_err());
    }

    #[test]
    fn sizes_display_in_the_largest_whole_unit() {
        assert_eq!(ByteSize::mib(64).to_string(), "64 MiB");
        assert_eq!(ByteSize(1536).to_string(), "1.5 KiB");
        assert_eq!(ByteSize(17).to_string(), "17 B");
    }
}
