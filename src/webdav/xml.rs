//! A bound on an XML body before any parser sees it. The WebDAV library parses request bodies
//! with a recursive parser: a body nested a few thousand elements deep overflows the worker's
//! stack and aborts the whole process. This scanner reads the bytes once, without recursion and
//! without building anything, and refuses a body nested deeper than a limit, or one with a
//! document type declaration (entities have no place in WebDAV and only serve expansion
//! attacks). It does not validate: whatever it lets through, the parser still checks.

/// Why a body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Elements nested deeper than the limit.
    TooDeep,
    /// A `<!DOCTYPE …>` or another markup declaration.
    Declaration,
    /// A tag, comment or section that never ends.
    Unterminated,
}

impl Refusal {
    pub fn message(self, max_depth: usize) -> String {
        match self {
            Refusal::TooDeep => format!("the XML body nests elements more than {max_depth} deep"),
            Refusal::Declaration => "the XML body carries a document type declaration".to_string(),
            Refusal::Unterminated => "the XML body ends inside a tag".to_string(),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Checks that `body` nests elements at most `max_depth` deep and declares no document type.
pub fn check(body: &[u8], max_depth: usize) -> Result<(), Refusal> {
    let mut depth = 0usize;
    let mut at = 0;
    while let Some(offset) = body[at..].iter().position(|&b| b == b'<') {
        let open = at + offset;
        let rest = &body[open + 1..];
        // Markup that opens no element: skip to its end.
        let skip = |end: &[u8], from: usize| -> Result<usize, Refusal> {
            let inner = &body[open + 1 + from..];
            find(inner, end).map(|i| open + 1 + from + i + end.len()).ok_or(Refusal::Unterminated)
        };
        if rest.starts_with(b"!--") {
            at = skip(b"-->", 3)?;
            continue;
        }
        if rest.starts_with(b"![CDATA[") {
            at = skip(b"]]>", 8)?;
            continue;
        }
        if rest.starts_with(b"!") {
            return Err(Refusal::Declaration);
        }
        if rest.starts_with(b"?") {
            at = skip(b"?>", 1)?;
            continue;
        }
        if rest.starts_with(b"/") {
            depth = depth.saturating_sub(1);
            at = skip(b">", 1)?;
            continue;
        }
        // A start tag: its end is the first '>' outside a quoted attribute value.
        let mut quote = None;
        let mut end = None;
        for (i, &b) in rest.iter().enumerate() {
            match quote {
                Some(q) if b == q => quote = None,
                Some(_) => {}
                None if b == b'"' || b == b'\'' => quote = Some(b),
                None if b == b'>' => {
                    end = Some(i);
                    break;
                }
                None => {}
            }
        }
        let end = end.ok_or(Refusal::Unterminated)?;
        let self_closing = end > 0 && rest[end - 1] == b'/';
        if !self_closing {
            depth += 1;
            if depth > max_depth {
                return Err(Refusal::TooDeep);
            }
        }
        at = open + 1 + end + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("<?xml version=\"1.0\"?>{}{}", "<a>".repeat(depth), "</a>".repeat(depth))
    }

    #[test]
    fn depth_is_counted_up_to_the_limit() {
        assert_eq!(check(nested(8).as_bytes(), 8), Ok(()));
        assert_eq!(check(nested(9).as_bytes(), 8), Err(Refusal::TooDeep));
        assert_eq!(check(nested(100_000).as_bytes(), 64), Err(Refusal::TooDeep));
        assert_eq!(check(b"", 8), Ok(()));
    }

    #[test]
    fn siblings_and_empty_elements_do_not_add_depth() {
        let wide = format!("<r>{}</r>", "<a/><b></b><c x='1'/>".repeat(10_000));
        assert_eq!(check(wide.as_bytes(), 2), Ok(()));
    }

    #[test]
    fn a_real_propfind_passes() {
        let body = br#"<?xml version="1.0" encoding="utf-8" ?>
<!-- a comment with <tags> inside -->
<D:propfind xmlns:D="DAV:"><D:prop><D:getcontentlength/><D:getlastmodified/>
<D:displayname><![CDATA[<not><a><tag>]]></D:displayname></D:prop></D:propfind>"#;
        assert_eq!(check(body, 8), Ok(()));
    }

    #[test]
    fn quoted_attribute_values_cannot_hide_depth() {
        let sneaky = "<a x=\"/>\">".repeat(100);
        assert_eq!(check(sneaky.as_bytes(), 64), Err(Refusal::TooDeep));
        let single = "<a x='/>' y=\"'\">".repeat(100);
        assert_eq!(check(single.as_bytes(), 64), Err(Refusal::TooDeep));
    }

    #[test]
    fn declarations_and_unterminated_markup_are_refused() {
        let doctype = b"<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaa\">]><x>&a;</x>";
        assert_eq!(check(doctype, 64), Err(Refusal::Declaration));
        assert_eq!(check(b"<a x=\"never closed>", 64), Err(Refusal::Unterminated));
        assert_eq!(check(b"<!-- never closed", 64), Err(Refusal::Unterminated));
    }
}
