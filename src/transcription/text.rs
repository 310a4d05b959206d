//! Whisper's token text: GPT-2's byte-level vocabulary, where every byte is written as one
//! printable character. Tokens are joined, each character is mapped back to its byte, and the
//! bytes are read as UTF-8 (a character split across tokens is whole again once joined).

use std::collections::HashMap;
use std::sync::OnceLock;

/// The printable character GPT-2 writes for each byte, reversed.
fn byte_of_char() -> &'static HashMap<char, u8> {
    static MAP: OnceLock<HashMap<char, u8>> = OnceLock::new();
    MAP.get_or_init(|| {
        // Bytes that are printable keep their own code point; the others (controls, space,
        // a few Latin-1 ones) take the code points from 256 on, in byte order.
        let printable = |b: u32| (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        let mut map = HashMap::with_capacity(256);
        let mut extra = 0u32;
        for b in 0..=255u32 {
            let code = if printable(b) {
                b
            } else {
                extra += 1;
                255 + extra
            };
            if let Some(c) = char::from_u32(code) {
                map.insert(c, b as u8);
            }
        }
        map
    })
}

/// Whether a vocabulary entry is a special token (`<|endoftext|>`, `<|0.00|>`…).
pub fn is_special(token: &str) -> bool {
    token.starts_with("<|") && token.ends_with("|>")
}

/// The text of a run of tokens; special tokens are left out.
pub fn decode<'a>(tokens: impl IntoIterator<Item = &'a str>) -> String {
    let map = byte_of_char();
    let mut bytes = Vec::new();
    for token in tokens.into_iter().filter(|t| !is_special(t)) {
        for c in token.chars() {
            match map.get(&c) {
                Some(&b) => bytes.push(b),
                // Not a byte character (a vocabulary from another tokenizer): keep it as it is.
                None => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_and_accents_come_back() {
        // "Ġ" is the space byte; "Ã©" are the two bytes of "é".
        assert_eq!(decode(["Hello", "Ġworld", "."]), "Hello world.");
        assert_eq!(decode(["ĠcafÃ©"]), " café");
        // A character split across two tokens.
        assert_eq!(decode(["ĠcafÃ", "©"]), " café");
    }

    #[test]
    fn special_tokens_are_left_out() {
        assert_eq!(decode(["<|0.00|>", "ĠHi", "<|1.20|>", "<|endoftext|>"]), " Hi");
        assert!(is_special("<|notimestamps|>"));
        assert!(!is_special("<|"));
    }

    #[test]
    fn every_byte_has_one_character() {
        let map = byte_of_char();
        assert_eq!(map.len(), 256);
        let mut bytes: Vec<u8> = map.values().copied().collect();
        bytes.sort_unstable();
        bytes.dedup();
        assert_eq!(bytes.len(), 256);
        assert_eq!(map.get(&'Ġ'), Some(&b' '));
        assert_eq!(map.get(&'Ċ'), Some(&b'\n'));
    }
}
