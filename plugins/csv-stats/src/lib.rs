//! `csv_stats`: summary statistics (count, min, max, mean, median, standard deviation) of the
//! numeric columns of CSV text with a header row. A tool doing real work on agent input.

use moat_guest::{export_tools, Deserialize, JsonSchema, Tool, ToolError};
use serde::Serialize;
use std::collections::BTreeMap;

/// Arguments of `csv_stats`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Args {
    /// CSV text; the first row names the columns.
    csv: String,
    /// Only these columns (default: every column).
    #[serde(default)]
    columns: Option<Vec<String>>,
    /// Field delimiter, one ASCII character (default `,`).
    #[serde(default)]
    delimiter: Option<char>,
}

#[derive(Serialize)]
struct Report {
    rows: usize,
    columns: BTreeMap<String, Column>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Column {
    Numeric {
        count: usize,
        missing: usize,
        min: f64,
        max: f64,
        sum: f64,
        mean: f64,
        median: f64,
        stddev: f64,
    },
    Text {
        count: usize,
        missing: usize,
        distinct: usize,
    },
}

fn csv_stats(args: Args) -> Result<Report, ToolError> {
    let delimiter = match args.delimiter {
        None => b',',
        Some(c) if c.is_ascii() => c as u8,
        Some(c) => {
            return Err(ToolError::InvalidInput(format!(
                "delimiter `{c}` is not an ASCII character"
            )))
        }
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(args.csv.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| ToolError::InvalidInput(format!("cannot read the header row: {e}")))?
        .clone();
    let wanted: Vec<usize> = match &args.columns {
        None => (0..headers.len()).collect(),
        Some(names) => names
            .iter()
            .map(|name| {
                headers.iter().position(|h| h == name).ok_or_else(|| {
                    ToolError::InvalidInput(format!("no column `{name}` in the header row"))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); wanted.len()];
    let mut rows = 0;
    for (line, record) in reader.records().enumerate() {
        let record = record
            .map_err(|e| ToolError::InvalidInput(format!("row {}: {e}", line + 2)))?;
        rows += 1;
        for (slot, &index) in wanted.iter().enumerate() {
            cells[slot].push(record.get(index).unwrap_or("").trim().to_owned());
        }
    }
    let columns = wanted
        .iter()
        .zip(cells)
        .map(|(&index, values)| (headers[index].to_owned(), summarize(&values)))
        .collect();
    Ok(Report { rows, columns })
}

fn summarize(values: &[String]) -> Column {
    let present: Vec<&str> = values.iter().map(String::as_str).filter(|v| !v.is_empty()).collect();
    let missing = values.len() - present.len();
    let numbers: Option<Vec<f64>> = present.iter().map(|v| v.parse::<f64>().ok()).collect();
    match numbers {
        Some(mut numbers) if !numbers.is_empty() => {
            numbers.sort_by(f64::total_cmp);
            let count = numbers.len();
            let sum: f64 = numbers.iter().sum();
            let mean = sum / count as f64;
            let variance = numbers.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / count as f64;
            let median = if count % 2 == 1 {
                numbers[count / 2]
            } else {
                (numbers[count / 2 - 1] + numbers[count / 2]) / 2.0
            };
            Column::Numeric {
                count,
                missing,
                min: numbers[0],
                max: numbers[count - 1],
                sum,
                mean,
                median,
                stddev: variance.sqrt(),
            }
        }
        _ => {
            let mut distinct = present.clone();
            distinct.sort_unstable();
            distinct.dedup();
            Column::Text {
                count: present.len(),
                missing,
                distinct: distinct.len(),
            }
        }
    }
}

export_tools!(Tool::new(
    "csv_stats",
    "Summary statistics (count, min, max, mean, median, stddev) of the numeric columns of CSV \
     text with a header row; text columns get counts of values and distinct values.",
    csv_stats
));
