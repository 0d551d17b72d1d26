//! Tables for lists, readable blocks for single resources, JSON or YAML on request.

use chrono::{DateTime, Utc};
use comfy_table::presets::NOTHING;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

/// Prints `value` as JSON or YAML; returns false for the table format (the caller
/// prints its own view).
pub fn print_structured<T: Serialize + ?Sized>(format: OutputFormat, value: &T) -> anyhow::Result<bool> {
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(value)?),
        OutputFormat::Yaml => print!("{}", yaml_serde::to_string(value)?),
        OutputFormat::Table => return Ok(false),
    }
    Ok(true)
}

/// A list: a table with `headers`, one row per item.
pub fn print_list<T: Serialize>(
    format: OutputFormat,
    items: &[T],
    headers: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<()> {
    if print_structured(format, items)? {
        return Ok(());
    }
    let mut table = Table::new();
    table
        .load_preset(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.iter().map(|h| h.to_uppercase()));
    for item in items {
        table.add_row(row(item));
    }
    // comfy-table pads each cell with one space on both sides; trim the line ends.
    for line in table.to_string().lines() {
        println!("{}", line.trim_end().strip_prefix(' ').unwrap_or(line.trim_end()));
    }
    Ok(())
}

/// One resource: `field: value` lines, aligned.
pub fn print_block<T: Serialize>(format: OutputFormat, item: &T, fields: &[(&str, String)]) -> anyhow::Result<()> {
    if print_structured(format, item)? {
        return Ok(());
    }
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in fields {
        println!("{:width$}  {}", format!("{key}:"), value, width = width + 1);
    }
    Ok(())
}

/// `3m ago`, `2d ago`; `-` when absent.
pub fn ago(t: Option<DateTime<Utc>>) -> String {
    match t {
        None => "-".into(),
        Some(t) => {
            let secs = (Utc::now() - t).num_seconds();
            if secs < 0 { format!("in {}", span(-secs)) } else { format!("{} ago", span(secs)) }
        }
    }
}

/// `in 29d`, `expired 3h ago`, or `never` when absent.
pub fn until(t: Option<DateTime<Utc>>) -> String {
    match t {
        None => "never".into(),
        Some(t) => {
            let secs = (t - Utc::now()).num_seconds();
            if secs > 0 { format!("in {}", span(secs)) } else { format!("expired {} ago", span(-secs)) }
        }
    }
}

/// A timestamp for blocks: RFC 3339 plus the relative form.
pub fn when(t: Option<DateTime<Utc>>, none: &str) -> String {
    match t {
        None => none.into(),
        Some(t) => format!("{} ({})", t.format("%Y-%m-%d %H:%M:%S UTC"), ago(Some(t))),
    }
}

/// A size in binary units: `512 B`, `64 MiB`, `16 GiB`, `1.5 GiB` (one decimal unless whole).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 { format!("{value} {}", UNITS[unit]) } else { format!("{value:.1} {}", UNITS[unit]) }
}

fn span(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_naturally() {
        assert_eq!(span(5), "5s");
        assert_eq!(span(125), "2m");
        assert_eq!(span(7200), "2h");
        assert_eq!(span(30 * 86400), "30d");
        assert_eq!(until(None), "never");
        assert_eq!(ago(None), "-");
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(64 << 20), "64 MiB");
        assert_eq!(bytes(16 << 30), "16 GiB");
        assert_eq!(bytes(3 << 29), "1.5 GiB");
    }
}
