//! Writing cmdlet objects to standard output: a PowerShell `Format-Table`
//! look on a terminal, JSON Lines otherwise, or what `-OutputFormat` asks.
//!
//! Standard output carries objects only; everything else goes to standard
//! error through the reporter.

use std::io::{self, BufWriter, IsTerminal, Stdout, Write};

use serde::Serialize;
use serde_json::Value;

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
            let text = render_table(&self.columns, &self.rows);
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

/// `Format-Table`: a blank line, headers, dashes, rows, a blank line.
pub fn render_table(columns: &[&str], rows: &[Value]) -> String {
    let specs: Vec<(&str, Option<usize>)> = columns.iter().map(|c| column_spec(c)).collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            specs
                .iter()
                .map(|(name, limit)| {
                    let text = display_value(row.get(*name).unwrap_or(&Value::Null))
                        .replace(['\n', '\r'], " ");
                    match limit {
                        Some(n) => text.chars().take(*n).collect(),
                        None => text,
                    }
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = specs
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([name.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |items: Vec<String>| -> String {
        let last = items.len().saturating_sub(1);
        let mut s = String::new();
        for (i, item) in items.into_iter().enumerate() {
            if i == last {
                s.push_str(&item);
            } else {
                s.push_str(&format!("{item:<w$} ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = String::from("\n");
    out.push_str(&line(specs.iter().map(|(n, _)| n.to_string()).collect()));
    out.push_str(&line(
        specs
            .iter()
            .map(|(n, _)| "-".repeat(n.chars().count()))
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
        let text = render_table(&["Name", "Version", "IsOSImage", "Id:12"], &rows);
        let expected = "\n\
Name       Version         IsOSImage Id\n\
----       -------         --------- --\n\
NanoServer 10.0.14300.1010 True      0123456789ab\n\
X          1.0             False\n\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn list_shows_every_property() {
        let text = render_list(&json!({"Name": "n", "Languages": ["en-US", "de-DE"]}));
        assert_eq!(text, "\nName      : n\nLanguages : {en-US, de-DE}\n");
    }
}
