use super::*;
use uuid::Uuid;

#[test]
fn names_are_trimmed_and_checked() {
    assert_eq!(normalize_name("  memo.m4a ").ok().as_deref(), Some("memo.m4a"));
    assert!(normalize_name("   ").is_err());
    assert!(normalize_name("a\nb").is_err());
    assert!(normalize_name(&"é".repeat(128)).is_err());
    assert!(normalize_name(&"é".repeat(127)).is_ok());
    assert!(normalize_name("../../etc/passwd").is_ok(), "names never touch paths");
}

#[test]
fn cursors_round_trip_and_garbage_is_refused() {
    let id = Uuid::now_v7().to_string();
    assert_eq!(decode_list_cursor(&encode_cursor(&id)).ok(), Some(id.clone()));
    assert!(decode_list_cursor("!!!").is_err());
    assert!(decode_list_cursor(&encode_cursor("not-a-uuid")).is_err());
    let trash = encode_cursor(&format!("123:{id}"));
    assert_eq!(decode_trash_cursor(&trash).ok(), Some((123, id)));
}
