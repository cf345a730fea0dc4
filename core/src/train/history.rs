//! Per-epoch numbers, kept in memory ([`History`]) and appended to a log file
//! as JSON lines ([`RunLog`]): one object per line, `{"epoch":1,"train_loss":0.31,…}`.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The numbers of one epoch: `epoch` and named values, in insertion order.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The epoch (from 1).
    pub epoch: u64,
    /// Named values (`train_loss`, `test_acc`, `lr`, `secs`, …).
    pub values: Vec<(String, f64)>,
}

impl Record {
    /// An empty record for `epoch`.
    pub fn new(epoch: u64) -> Self {
        Record {
            epoch,
            values: Vec::new(),
        }
    }
    /// Adds (or replaces) `key`.
    pub fn with(mut self, key: &str, v: f64) -> Self {
        self.set(key, v);
        self
    }
    /// Sets `key` to `v`.
    pub fn set(&mut self, key: &str, v: f64) {
        match self.values.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = v,
            None => self.values.push((key.to_string(), v)),
        }
    }
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
    /// One line of JSON (no newline). Non-finite values are written as `null`.
    pub fn to_json(&self) -> String {
        let mut s = format!("{{\"epoch\":{}", self.epoch);
        for (k, v) in &self.values {
            s.push(',');
            json_string(k, &mut s);
            s.push(':');
            if v.is_finite() {
                s.push_str(&format!("{v:?}"));
            } else {
                s.push_str("null");
            }
        }
        s.push('}');
        s
    }
    /// Reads a line written by [`Record::to_json`]: a flat JSON object whose
    /// values are numbers (or `null`, read as NaN); `epoch` is required.
    pub fn from_json(line: &str) -> std::result::Result<Record, String> {
        let mut p = Parser {
            s: line.as_bytes(),
            i: 0,
        };
        p.ws();
        p.eat(b'{')?;
        let mut rec = Record::new(0);
        let mut epoch = None;
        p.ws();
        if p.peek() == Some(b'}') {
            p.i += 1;
        } else {
            loop {
                p.ws();
                let k = p.string()?;
                p.ws();
                p.eat(b':')?;
                p.ws();
                let v = p.number()?;
                if k == "epoch" {
                    if !(v >= 0.0 && v.fract() == 0.0 && v < 9.0e15) {
                        return Err(format!("`epoch` must be a whole number, got {v}"));
                    }
                    epoch = Some(v as u64);
                } else {
                    rec.set(&k, v);
                }
                p.ws();
                match p.next() {
                    Some(b',') => continue,
                    Some(b'}') => break,
                    _ => return Err(format!("expected `,` or `}}` at byte {}", p.i)),
                }
            }
        }
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing characters at byte {}", p.i + 1));
        }
        rec.epoch = epoch.ok_or("no `epoch` field")?;
        Ok(rec)
    }
}

fn json_string(k: &str, out: &mut String) {
    out.push('"');
    for c in k.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        self.i += 1;
        c
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.next() == Some(c) {
            Ok(())
        } else {
            Err(format!("expected `{}` at byte {}", c as char, self.i))
        }
    }
    fn string(&mut self) -> std::result::Result<String, String> {
        self.eat(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.next() {
                None => return Err("unterminated string".into()),
                Some(b'"') => break,
                Some(b'\\') => match self.next() {
                    Some(b'"') => out.push(b'"'),
                    Some(b'\\') => out.push(b'\\'),
                    Some(b'/') => out.push(b'/'),
                    Some(b'n') => out.push(b'\n'),
                    Some(b't') => out.push(b'\t'),
                    Some(b'u') => {
                        let hex = self
                            .s
                            .get(self.i..self.i + 4)
                            .ok_or("truncated \\u escape")?;
                        let code = std::str::from_utf8(hex)
                            .ok()
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .ok_or("bad \\u escape")?;
                        let ch = char::from_u32(code).ok_or("bad \\u escape")?;
                        let mut b = [0; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                        self.i += 4;
                    }
                    _ => return Err(format!("bad escape at byte {}", self.i)),
                },
                Some(c) => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| "string is not UTF-8".to_string())
    }
    fn number(&mut self) -> std::result::Result<f64, String> {
        if self.s[self.i..].starts_with(b"null") {
            self.i += 4;
            return Ok(f64::NAN);
        }
        let start = self.i;
        while matches!(
            self.peek(),
            Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
        ) {
            self.i += 1;
        }
        let t = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
        t.parse::<f64>()
            .map_err(|_| format!("expected a number at byte {}", start + 1))
    }
}

/// Every epoch's [`Record`], in order (for plots and for resuming a run: it
/// travels in the checkpoint as the metadata `history`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// The records.
    pub records: Vec<Record>,
}

impl History {
    /// Appends a record.
    pub fn push(&mut self, r: Record) {
        self.records.push(r);
    }
    /// `(epoch, value)` of every record that has `key` (finite values only).
    pub fn series(&self, key: &str) -> Vec<(f64, f64)> {
        self.records
            .iter()
            .filter_map(|r| {
                r.get(key)
                    .filter(|v| v.is_finite())
                    .map(|v| (r.epoch as f64, v))
            })
            .collect()
    }
    /// JSON lines, one record per line.
    pub fn to_jsonl(&self) -> String {
        self.records.iter().map(|r| r.to_json() + "\n").collect()
    }
    /// Reads JSON lines (empty lines skipped); an error names the line.
    pub fn from_jsonl(text: &str) -> std::result::Result<History, String> {
        let mut h = History::default();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            h.push(Record::from_json(line).map_err(|e| format!("line {}: {e}", i + 1))?);
        }
        Ok(h)
    }
    /// Reads a JSON-lines file (as [`RunLog`] writes).
    pub fn read(path: impl AsRef<Path>) -> Result<History> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        History::from_jsonl(&text).map_err(|msg| Error::Format {
            path: path.to_path_buf(),
            msg,
        })
    }
}

/// A run log: each [`Record`] appended to a file as one JSON line and
/// flushed, so the file is complete up to the last epoch whatever happens.
pub struct RunLog {
    file: std::fs::File,
    path: PathBuf,
}

impl RunLog {
    /// Creates (or truncates) `path`.
    pub fn create(path: impl AsRef<Path>) -> Result<RunLog> {
        Self::open(path.as_ref(), false)
    }
    /// Opens `path` for appending (resuming a run), creating it if needed.
    pub fn append(path: impl AsRef<Path>) -> Result<RunLog> {
        Self::open(path.as_ref(), true)
    }
    fn open(path: &Path, append: bool) -> Result<RunLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)
            .map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(RunLog {
            file,
            path: path.to_path_buf(),
        })
    }
    /// Appends `r` as one line.
    pub fn write(&mut self, r: &Record) -> Result<()> {
        let line = r.to_json() + "\n";
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_as_json_lines() {
        let r = Record::new(3)
            .with("train_loss", 0.25)
            .with("lr", 1e-3)
            .with("bad", f64::NAN)
            .with("we\"ird", -2.0);
        assert_eq!(
            r.to_json(),
            r#"{"epoch":3,"train_loss":0.25,"lr":0.001,"bad":null,"we\"ird":-2.0}"#
        );
        let back = Record::from_json(&r.to_json()).unwrap();
        assert_eq!(
            (back.epoch, back.get("lr"), back.get("we\"ird")),
            (3, Some(1e-3), Some(-2.0))
        );
        assert!(back.get("bad").unwrap().is_nan());
        let mut h = History::default();
        h.push(Record::new(1).with("a", 1.0));
        h.push(Record::new(2).with("a", 0.5).with("b", 7.0));
        let h2 = History::from_jsonl(&h.to_jsonl()).unwrap();
        assert_eq!(h2, h);
        assert_eq!(h.series("a"), [(1.0, 1.0), (2.0, 0.5)]);
        assert_eq!(h.series("b"), [(2.0, 7.0)]);
        for bad in [
            "",
            "{",
            "{\"a\":1}",
            "{\"epoch\":1.5}",
            "{\"epoch\":1,}",
            "{\"epoch\":1} x",
            "{\"epoch\":\"1\"}",
            "{\"e\\q\":1}",
        ] {
            assert!(Record::from_json(bad).is_err(), "{bad}");
        }
        assert_eq!(
            History::from_jsonl("{\"epoch\":1}\nnope\n").unwrap_err(),
            "line 2: expected `{` at byte 1"
        );
    }

    #[test]
    fn the_log_file_is_appended_line_by_line() {
        let dir = std::env::temp_dir().join(format!("kiln-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("run.jsonl");
        let mut log = RunLog::create(&p).unwrap();
        log.write(&Record::new(1).with("loss", 0.5)).unwrap();
        drop(log);
        let mut log = RunLog::append(&p).unwrap();
        log.write(&Record::new(2).with("loss", 0.25)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"epoch\":1,\"loss\":0.5}\n{\"epoch\":2,\"loss\":0.25}\n"
        );
        assert_eq!(
            History::read(&p).unwrap().series("loss"),
            [(1.0, 0.5), (2.0, 0.25)]
        );
    }
}
