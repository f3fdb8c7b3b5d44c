//! Writing cmdlet objects to standard output: a PowerShell `Format-Table`
//! look on a terminal, JSON Lines otherwise, or what `-OutputFormat` asks.
//!
//! Standard output carries objects only; everything else goes to standard
//! error through the reporter.

use std::io::{self, BufWriter, IsTerminal, Stdout, Write};

use serde::Serialize;
use serde_json::Value;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    List,
    Json,
}

/// Collects and writes the objects a cmdlet returns.
pub struct Output {
    format: OutputFormat,
    /// Table rows wait until the end so columns can be sized.
    rows: Vec<Value>,
    columns: Vec<&'static str>,
    emitted: usize,
    /// Objects are buffered; a terminal sees each one as soon as it is made,
    /// a pipe gets them in large writes.
    stdout: BufWriter<Stdout>,
    interactive: bool,
}

impl Output {
    pub fn new(format: OutputFormat) -> Output {
        Output {
            format,
            rows: Vec::new(),
            columns: Vec::new(),
            emitted: 0,
            stdout: BufWriter::with_capacity(64 * 1024, io::stdout()),
            interactive: io::stdout().is_terminal(),
        }
    }

    pub fn format(&self) -> OutputFormat {
        self.format
    }

    /// Writes one object. `columns` are the property names the table view
    /// shows (`"Id:12"` shows the first 12 characters); JSON and the list
    /// view show every property.
    pub fn emit<T: Serialize>(&mut self, object: &T, columns: &[&'static str]) -> io::Result<()> {
        let value = serde_json::to_value(object).map_err(io::Error::other)?;
        self.emitted += 1;
        match self.format {
            OutputFormat::Json => {
                serde_json::to_writer(&mut self.stdout, &value).map_err(io::Error::other)?;
                self.stdout.write_all(b"\n")?;
                self.flush_if_interactive()
            }
            OutputFormat::List => {
                self.stdout.write_all(render_list(&value).as_bytes())?;
                self.flush_if_interactive()
            }
            OutputFormat::Table => {
                if self.columns.is_empty() {
                    self.columns = columns.to_vec();
                }
                self.rows.push(value);
                Ok(())
            }
        }
    }

    /// How many objects were written so far.
    pub fn count(&self) -> usize {
        self.emitted
    }

    fn flush_if_interactive(&mut self) -> io::Result<()> {
        if self.interactive {
            self.stdout.flush()?;
        }
        Ok(())
    }

    /// Writes what is buffered (the table, pending lines).
    pub fn finish(&mut self) -> io::Result<()> {
        if !self.rows.is_empty() {
            let text = render_table(&self.columns, &self.rows, table_width());
            self.rows.clear();
            self.stdout.write_all(text.as_bytes())?;
        }
        self.stdout.flush()
    }
}

/// A property value as PowerShell's formatter shows it.
pub fn display_value(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "{{{}}}",
            items
                .iter()
                .map(display_value)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(_) => v.to_string(),
    }
}

fn column_spec(spec: &str) -> (&str, Option<usize>) {
    match spec.split_once(':') {
        Some((name, width)) => (name, width.parse().ok()),
        None => (spec, None),
    }
}

/// How many columns a table may use: `COLUMNS` when set, else the width
/// of the terminal standard output is, else no limit (a file or a pipe).
pub fn table_width() -> Option<usize> {
    if let Some(n) = std::env::var("COLUMNS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        return Some(n);
    }
    let term = console::Term::stdout();
    if !term.is_term() {
        return None;
    }
    term.size_checked().map(|(_, cols)| usize::from(cols))
}

/// Columns shown on screen by `text` (East Asian wide characters count two).
fn text_width(text: &str) -> usize {
    UnicodeWidthStr::width(text)
}

/// `text` cut to `width` columns, ending in `...` when something was cut.
fn cut(text: &str, width: usize) -> String {
    if text_width(text) <= width {
        return text.to_string();
    }
    let (room, dots) = if width > 3 {
        (width - 3, "...")
    } else {
        (width, "")
    };
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w > room {
            break;
        }
        used += w;
        out.push(c);
    }
    out + dots
}

/// `text` padded with spaces to `width` columns, on the right or the left.
fn pad(text: &str, width: usize, right_align: bool) -> String {
    let fill = " ".repeat(width.saturating_sub(text_width(text)));
    if right_align {
        fill + text
    } else {
        format!("{text}{fill}")
    }
}

/// Shrinks the widest columns until the row fits `limit` (one space between
/// columns); a column keeps at least its header's width (4 at the least).
fn fit_widths(widths: &mut [usize], headers: &[usize], limit: usize) {
    let total = |w: &[usize]| w.iter().sum::<usize>() + w.len().saturating_sub(1);
    while total(widths) > limit {
        let widest = widths
            .iter()
            .enumerate()
            .filter(|(i, w)| **w > headers[*i].max(4))
            .max_by_key(|(i, w)| (**w, *i))
            .map(|(i, _)| i);
        match widest {
            Some(i) => widths[i] -= 1,
            None => break,
        }
    }
}

/// `Format-Table`: a blank line, headers, dashes, rows, a blank line. Text
/// is left-aligned, numbers right-aligned; with a `width` (the terminal's),
/// columns are cut with `...` so no line is wider.
pub fn render_table(columns: &[&str], rows: &[Value], width: Option<usize>) -> String {
    let specs: Vec<(&str, Option<usize>)> = columns.iter().map(|c| column_spec(c)).collect();
    let numeric: Vec<bool> = specs
        .iter()
        .map(|(name, _)| {
            let values: Vec<&Value> = rows
                .iter()
                .filter_map(|r| r.get(*name))
                .filter(|v| !v.is_null())
                .collect();
            !values.is_empty() && values.iter().all(|v| v.is_number())
        })
        .collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            specs
                .iter()
                .map(|(name, limit)| {
                    let text = display_value(row.get(*name).unwrap_or(&Value::Null))
                        .replace(['\n', '\r', '\t'], " ");
                    match limit {
                        Some(n) => text.chars().take(*n).collect(),
                        None => text,
                    }
                })
                .collect()
        })
        .collect();
    let headers: Vec<usize> = specs.iter().map(|(n, _)| text_width(n)).collect();
    let mut widths: Vec<usize> = (0..specs.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| text_width(&r[i]))
                .chain([headers[i]])
                .max()
                .unwrap_or(0)
        })
        .collect();
    if let Some(limit) = width {
        fit_widths(&mut widths, &headers, limit);
    }
    let line = |items: Vec<String>| -> String {
        let last = items.len().saturating_sub(1);
        let mut s = String::new();
        for (i, item) in items.into_iter().enumerate() {
            let text = cut(&item, widths[i]);
            if i == last && !numeric[i] {
                s.push_str(&text);
            } else {
                s.push_str(&pad(&text, widths[i], numeric[i]));
                s.push(' ');
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = String::from("\n");
    out.push_str(&line(specs.iter().map(|(n, _)| n.to_string()).collect()));
    out.push_str(&line(
        specs
            .iter()
            .map(|(n, _)| "-".repeat(text_width(n)))
            .collect(),
    ));
    for r in cells {
        out.push_str(&line(r));
    }
    out.push('\n');
    out
}

/// `Format-List`: `Name : value` per property, a blank line between objects.
pub fn render_list(value: &Value) -> String {
    let mut out = String::from("\n");
    if let Value::Object(map) = value {
        let width = map.keys().map(|k| k.chars().count()).max().unwrap_or(0);
        for (k, v) in map {
            out.push_str(&format!("{k:<width$} : {}\n", display_value(v)));
        }
    } else {
        out.push_str(&display_value(value));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_looks_like_format_table() {
        let rows = vec![
            json!({"Name": "NanoServer", "Version": "10.0.14300.1010", "IsOSImage": true, "Id": "0123456789abcdef"}),
            json!({"Name": "X", "Version": "1.0", "IsOSImage": false, "Id": null}),
        ];
        let text = render_table(&["Name", "Version", "IsOSImage", "Id:12"], &rows, None);
        let expected = "\n\
Name       Version         IsOSImage Id\n\
----       -------         --------- --\n\
NanoServer 10.0.14300.1010 True      0123456789ab\n\
X          1.0             False\n\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn tables_fit_the_width_numbers_right_aligned() {
        let rows = vec![
            json!({"Name": "NanoServer", "Size": 1234567, "Description": "Container OS Image of Windows Server 2016 TP5: Nano Server"}),
            json!({"Name": "日本語の名前", "Size": 42, "Description": "short"}),
        ];
        let text = render_table(&["Name", "Size", "Description"], &rows, Some(40));
        for line in text.lines() {
            assert!(text_width(line) <= 40, "{line:?} is wider than 40");
        }
        assert!(text.contains("Container OS Ima...\n"), "{text}");
        assert!(text.contains("名前      42 short"), "right-aligned: {text}");
        assert!(text.contains("Name            Size Description"), "{text}");
        let wide = render_table(&["Name", "Size", "Description"], &rows, None);
        assert!(wide.contains("Nano Server\n"), "no limit, no cut: {wide}");
    }

    #[test]
    fn list_shows_every_property() {
        let text = render_list(&json!({"Name": "n", "Languages": ["en-US", "de-DE"]}));
        assert_eq!(text, "\nName      : n\nLanguages : {en-US, de-DE}\n");
    }
}
