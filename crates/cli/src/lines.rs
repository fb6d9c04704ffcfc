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
    /// Bytes of `inner`'s buffer handed out as the last line (and its newline), consumed at the
    /// next call: a line that lies whole in the reader's buffer is lent, not copied.
    pending: usize,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R, max_bytes: usize) -> Self {
        LineReader { inner, buffer: Vec::with_capacity(4096), max_bytes, pending: 0 }
    }

    /// The next line, or `None` at end of input.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.inner.consume(std::mem::take(&mut self.pending));
        let newline = memchr::memchr(b'\n', self.inner.fill_buf()?);
        if let Some(end) = newline.filter(|&end| end <= self.max_bytes) {
            self.pending = end + 1;
            let chunk = self.inner.fill_buf()?; // the same bytes: the buffer is not empty
            return Ok(Some(Line::Text(&chunk[..end])));
        }
        self.next_line_copied()
    }

    /// A line that is longer than what is buffered (or too long): gathered chunk by chunk.
    fn next_line_copied(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buffer.clear();
        let mut too_long = false;
        let mut saw_any = false;
        loop {
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                break;
            }
            saw_any = true;
            let (take, done) = match memchr::memchr(b'\n', chunk) {
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

    /// Every buffer size gives the same lines, whether they are lent from the reader's buffer
    /// or gathered across refills; a line of exactly the limit is kept.
    #[test]
    fn lent_and_copied_lines_agree() {
        let input = b"ab\n\ncdef\nghijklmnop\n12345\r\nlast".to_vec();
        let expected = vec!["ab", "", "cdef", "<too long>", "12345\r", "last"];
        for capacity in 1..input.len() + 8 {
            let mut reader = LineReader::new(io::BufReader::with_capacity(capacity, &input[..]), 6);
            let mut seen = Vec::new();
            while let Some(line) = reader.next_line().unwrap() {
                seen.push(match line {
                    Line::Text(t) => String::from_utf8(t.to_vec()).unwrap(),
                    Line::TooLong => "<too long>".to_string(),
                });
            }
            assert_eq!(seen, expected, "buffer of {capacity} bytes");
        }
    }
}
