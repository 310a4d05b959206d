//! The one range policy of every face that serves a recording's bytes (the API's audio, share
//! links, WebDAV): a single byte range is honoured; anything else (several ranges, a malformed
//! header, another unit) is answered with the whole file, once. So no request can make the
//! server send a file more than once, however many ranges it lists.

/// One byte range as a request wrote it, before the file's size is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spec {
    /// `bytes=START-` or `bytes=START-END`.
    From { start: u64, end: Option<u64> },
    /// `bytes=-N`: the last N bytes.
    Last(u64),
}

/// The single range a `Range` header asks for; `None` for a header the policy answers with the
/// whole file (several ranges, malformed, another unit, or an end before its start).
pub fn single(header: &str) -> Option<Spec> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.trim().split_once('-')?;
    let (start, end) = (start.trim(), end.trim());
    if start.is_empty() {
        return end.parse().ok().map(Spec::Last);
    }
    let start = start.parse().ok()?;
    let end = if end.is_empty() {
        None
    } else {
        match end.parse::<u64>() {
            Ok(e) if e >= start => Some(e),
            _ => return None,
        }
    };
    Some(Spec::From { start, end })
}

/// A range that starts past the end of the file: 416, with `Content-Range: bytes */SIZE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable;

/// The largest end a range is written with: no file is that large, and arithmetic on it by
/// whoever reads the header cannot overflow.
const MAX_END: u64 = u64::MAX / 2;

impl Spec {
    /// The range as a `Range` header value, its end clamped to a bound no file reaches.
    pub fn header(self) -> String {
        match self {
            Spec::From { start, end: None } => format!("bytes={start}-"),
            Spec::From { start, end: Some(end) } => format!("bytes={}-{}", start.min(MAX_END), end.min(MAX_END)),
            Spec::Last(n) => format!("bytes=-{}", n.min(MAX_END)),
        }
    }

    /// The first and last byte to send of a file of `size` bytes; `Err` when the range is
    /// outside the file (416).
    pub fn resolve(self, size: u64) -> Result<(u64, u64), Unsatisfiable> {
        match self {
            Spec::Last(n) => {
                if n == 0 || size == 0 {
                    return Err(Unsatisfiable);
                }
                Ok((size.saturating_sub(n), size - 1))
            }
            Spec::From { start, end } => {
                if start >= size {
                    return Err(Unsatisfiable);
                }
                let last = size - 1;
                Ok((start, end.map_or(last, |e| e.min(last))))
            }
        }
    }
}

/// The byte range to send, from a `Range` header: `Err` for an unsatisfiable one, `Ok(None)` for
/// a header answered with the whole file.
pub fn resolve(header: &str, size: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    single(header).map(|spec| spec.resolve(size)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_in_all_three_forms() {
        assert_eq!(resolve("bytes=0-99", 1000), Ok(Some((0, 99))));
        assert_eq!(resolve("bytes=900-", 1000), Ok(Some((900, 999))));
        assert_eq!(resolve("bytes=-100", 1000), Ok(Some((900, 999))));
        assert_eq!(resolve("bytes=-5000", 1000), Ok(Some((0, 999))));
        assert_eq!(resolve("bytes=990-2000", 1000), Ok(Some((990, 999))));
        assert_eq!(resolve("bytes=1000-", 1000), Err(Unsatisfiable));
        assert_eq!(resolve("bytes=-0", 1000), Err(Unsatisfiable));
        assert_eq!(resolve("bytes=0-0", 0), Err(Unsatisfiable));
    }

    #[test]
    fn anything_but_one_range_is_the_whole_file() {
        assert_eq!(resolve("bytes=5-1", 1000), Ok(None));
        assert_eq!(resolve("items=0-1", 1000), Ok(None));
        assert_eq!(resolve("bytes=0-1,5-6", 1000), Ok(None));
        let many = format!("bytes={}", vec!["0-"; 5000].join(","));
        assert_eq!(single(&many), None);
        assert_eq!(resolve("bytes=x-", 1000), Ok(None));
        assert_eq!(resolve("bytes=99999999999999999999999-", 1000), Ok(None));
    }

    #[test]
    fn a_range_is_rewritten_with_a_bounded_end() {
        let spec = single("bytes=0-18446744073709551615").expect("one range");
        assert_eq!(spec.header(), format!("bytes=0-{MAX_END}"));
        assert_eq!(single(&spec.header()).map(|s| s.resolve(1000)), Some(Ok((0, 999))));
        assert_eq!(single(" bytes=5- ").map(Spec::header).as_deref(), Some("bytes=5-"));
        assert_eq!(single("bytes=-20").map(Spec::header).as_deref(), Some("bytes=-20"));
    }
}
