//! Bounded line reading: a line longer than the limit is consumed but never held whole in memory.

use std::io::{self, BufRead};

/// One input line, or the fact that it was longer than the limit.
pub enum Line<'a> {
    Text(&'a [u8]),
    TooLong,
}

/// Reads `\n`-terminated lines (a trailing `\r` is kept; JSON parsing treats it as whitespace).
pub struct LineReader<R> {
    inner: R,
    buffer: Vec<u8>,
    max_bytes: usize,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R, max_bytes: usize) -> Self {
        LineReader { inner, buffer: Vec::with_capacity(4096), max_bytes }
    }

    /// The next line, or `None` at end of input.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buffer.clear();
        let mut too_long = false;
        let mut saw_any = false;
        loop {
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                break;
            }
            saw_any = true;
            let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            if !too_long {
                if self.buffer.len() + take > self.max_bytes {
                    too_long = true;
                    self.buffer.clear();
                } else {
                    self.buffer.extend_from_slice(&chunk[..take]);
                }
            }
            self.inner.consume(if done { take + 1 } else { take });
            if done {
                break;
            }
        }
        if !saw_any {
            return Ok(None);
        }
        Ok(Some(if too_long { Line::TooLong } else { Line::Text(&self.buffer) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_bounds_lines() {
        let input = b"ab\n\ncdef\nghijklmnop\nlast".to_vec();
        let mut reader = LineReader::new(io::BufReader::with_capacity(3, &input[..]), 5);
        let mut seen = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            seen.push(match line {
                Line::Text(t) => String::from_utf8(t.to_vec()).unwrap(),
                Line::TooLong => "<too long>".to_string(),
            });
        }
        assert_eq!(seen, vec!["ab", "", "cdef", "<too long>", "last"]);
    }
}
