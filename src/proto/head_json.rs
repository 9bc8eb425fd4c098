//! Fast paths for the two JSON payloads every proxied HTTP request carries, STREAM_OPEN and
//! STREAM_RESPONSE_HEAD. serde_json's derive-driven decoding and encoding of them was about a
//! tenth of the instructions a keep-alive request costs the tunnel (docs/benchmarks.md, "HTTP
//! requests"): field names matched through serde's visitors, each header pair as a two-element
//! sequence, every value through the generic string machinery.
//!
//! The wire format does not change. The encoder writes byte for byte what `serde_json::to_vec`
//! writes for these types (strings that need escaping are escaped by serde_json itself). The
//! decoder reads the common shape (an object of the known fields in any order, JSON whitespace,
//! strings without escapes) and answers `None` for anything else: escapes, unknown or repeated
//! fields, unusual numbers, invalid input. The caller then decodes with serde_json as before,
//! which gives the same value or the same error; so a result of this decoder is always the one
//! serde_json would give (checked against it by property tests below).

use super::messages::{BindKind, ResponseHead, StreamOpen};

/// Appends `open` as serde_json writes it (see the `Serialize` impl of [`StreamOpen`]).
pub(super) fn write_stream_open(open: &StreamOpen, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"bindId\":");
    write_u64(out, u64::from(open.bind_id));
    out.extend_from_slice(b",\"kind\":");
    out.extend_from_slice(match open.kind {
        BindKind::Http => b"\"http\"",
        BindKind::Tcp => b"\"tcp\"",
        BindKind::Unknown => b"\"unknown\"",
    });
    if let Some(method) = &open.method {
        out.extend_from_slice(b",\"method\":");
        write_str(out, method);
    }
    if let Some(target) = &open.target {
        out.extend_from_slice(b",\"target\":");
        write_str(out, target);
    }
    if open.kind == BindKind::Http || !open.headers.is_empty() {
        out.extend_from_slice(b",\"headers\":");
        write_pairs(out, &open.headers);
    }
    if open.kind == BindKind::Http || open.is_upgrade {
        out.extend_from_slice(b",\"isUpgrade\":");
        write_bool(out, open.is_upgrade);
    }
    if let Some(addr) = &open.visitor_addr {
        out.extend_from_slice(b",\"visitorAddr\":");
        write_str(out, addr);
    }
    if let Some(addr) = &open.server_addr {
        out.extend_from_slice(b",\"serverAddr\":");
        write_str(out, addr);
    }
    out.push(b'}');
}

/// Appends `head` as serde_json writes it (the derive: `status`, `headers`, `final`).
pub(super) fn write_response_head(head: &ResponseHead, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"status\":");
    write_u64(out, u64::from(head.status));
    out.extend_from_slice(b",\"headers\":");
    write_pairs(out, &head.headers);
    out.extend_from_slice(b",\"final\":");
    write_bool(out, head.is_final);
    out.push(b'}');
}

fn write_pairs(out: &mut Vec<u8>, pairs: &[(String, String)]) {
    out.push(b'[');
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        write_str(out, name);
        out.push(b',');
        write_str(out, value);
        out.push(b']');
    }
    out.push(b']');
}

fn write_bool(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(if value { b"true" } else { b"false" });
}

fn write_u64(out: &mut Vec<u8>, value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A JSON string: as is between quotes when nothing in it needs escaping (header text almost
/// never does), else escaped by serde_json, so the bytes are always serde_json's.
fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, s).is_err() {
        // Writing to a Vec cannot fail; an empty string keeps the JSON well-formed.
        out.extend_from_slice(b"\"\"");
    }
}

/// STREAM_OPEN in its common shape, or `None` to let serde_json decide (see the module comment).
pub(super) fn read_stream_open(payload: &[u8]) -> Option<StreamOpen> {
    let mut r = Reader::new(payload)?;
    let mut open = StreamOpen::tcp(0);
    let (mut bind_id, mut kind) = (None, None);
    let mut seen = 0u8;
    r.object(|r, key| {
        let bit = match key {
            "bindId" => {
                bind_id = Some(u32::try_from(r.uint()?).ok()?);
                1
            }
            "kind" => {
                kind = Some(match r.string()? {
                    "http" => BindKind::Http,
                    "tcp" => BindKind::Tcp,
                    _ => BindKind::Unknown,
                });
                2
            }
            "method" => {
                open.method = r.optional_string()?;
                4
            }
            "target" => {
                open.target = r.optional_string()?;
                8
            }
            "headers" => {
                open.headers = r.pairs()?;
                16
            }
            "isUpgrade" => {
                open.is_upgrade = r.boolean()?;
                32
            }
            "visitorAddr" => {
                open.visitor_addr = r.optional_string()?;
                64
            }
            "serverAddr" => {
                open.server_addr = r.optional_string()?;
                128
            }
            _ => return None,
        };
        once(&mut seen, bit)
    })?;
    open.bind_id = bind_id?;
    open.kind = kind?;
    Some(open)
}

/// STREAM_RESPONSE_HEAD in its common shape, or `None` to let serde_json decide.
pub(super) fn read_response_head(payload: &[u8]) -> Option<ResponseHead> {
    let mut r = Reader::new(payload)?;
    let mut status = None;
    let mut head = ResponseHead {
        status: 0,
        headers: Vec::new(),
        is_final: true,
    };
    let mut seen = 0u8;
    r.object(|r, key| {
        let bit = match key {
            "status" => {
                status = Some(u16::try_from(r.uint()?).ok()?);
                1
            }
            "headers" => {
                head.headers = r.pairs()?;
                2
            }
            "final" => {
                head.is_final = r.boolean()?;
                4
            }
            _ => return None,
        };
        once(&mut seen, bit)
    })?;
    head.status = status?;
    Some(head)
}

/// Marks a field as read; a repeated field is left to serde_json (which refuses it).
fn once(seen: &mut u8, bit: u8) -> Option<()> {
    if *seen & bit != 0 {
        return None;
    }
    *seen |= bit;
    Some(())
}

/// A cursor over a payload known to be UTF-8.
struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(payload: &'a [u8]) -> Option<Self> {
        Some(Self {
            text: std::str::from_utf8(payload).ok()?,
            at: 0,
        })
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// Skips JSON whitespace.
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes().get(self.at) {
            self.at += 1;
        }
    }

    /// Whether the next token is `c` (taken if so).
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.bytes().get(self.at) == Some(&c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// Takes the literal `word` (`true`, `false`, `null`) if it comes next.
    fn literal(&mut self, word: &str) -> bool {
        self.ws();
        if self.bytes()[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            true
        } else {
            false
        }
    }

    /// A whole object of `field` calls, then nothing but whitespace to the end.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        if !self.eat(b'{') {
            return None;
        }
        if !self.eat(b'}') {
            loop {
                let key = self.string()?;
                if !self.eat(b':') {
                    return None;
                }
                field(self, key)?;
                if self.eat(b',') {
                    continue;
                }
                if self.eat(b'}') {
                    break;
                }
                return None;
            }
        }
        self.ws();
        (self.at == self.text.len()).then_some(())
    }

    /// A string without escapes or control characters (serde_json refuses raw control
    /// characters; escapes are left to it).
    fn string(&mut self) -> Option<&'a str> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.at;
        let len = self.bytes()[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        let end = start + len;
        if self.bytes()[end] != b'"' {
            return None;
        }
        self.at = end + 1;
        // Both ends are at ASCII quotes: character boundaries.
        self.text.get(start..end)
    }

    fn optional_string(&mut self) -> Option<Option<String>> {
        if self.literal("null") {
            return Some(None);
        }
        self.string().map(|s| Some(s.to_string()))
    }

    fn boolean(&mut self) -> Option<bool> {
        if self.literal("true") {
            Some(true)
        } else if self.literal("false") {
            Some(false)
        } else {
            None
        }
    }

    /// A non-negative integer in plain digits (no sign, fraction, exponent or leading zero).
    fn uint(&mut self) -> Option<u64> {
        self.ws();
        let rest = &self.bytes()[self.at..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || (digits > 1 && rest[0] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = rest.get(digits) {
            return None;
        }
        let mut value: u64 = 0;
        for &d in &rest[..digits] {
            value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        self.at += digits;
        Some(value)
    }

    /// `[["name","value"], ...]`.
    fn pairs(&mut self) -> Option<Vec<(String, String)>> {
        if !self.eat(b'[') {
            return None;
        }
        let mut pairs = Vec::with_capacity(8);
        if self.eat(b']') {
            return Some(pairs);
        }
        loop {
            if !self.eat(b'[') {
                return None;
            }
            let name = self.string()?.to_string();
            if !self.eat(b',') {
                return None;
            }
            let value = self.string()?.to_string();
            if !self.eat(b']') {
                return None;
            }
            pairs.push((name, value));
            if self.eat(b',') {
                continue;
            }
            if self.eat(b']') {
                return Some(pairs);
            }
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn typical_open() -> StreamOpen {
        StreamOpen {
            method: Some("GET".into()),
            target: Some("/100b?x=1".into()),
            headers: vec![
                ("host".into(), "127.0.0.1:8080".into()),
                ("x-forwarded-for".into(), "10.0.0.1".into()),
            ],
            ..StreamOpen::tcp(7)
        }
    }

    #[test]
    fn the_common_shapes_take_the_fast_path_and_match_serde() {
        let mut http = typical_open();
        http.kind = BindKind::Http;
        for open in [http, StreamOpen::tcp(3)] {
            let json = serde_json::to_vec(&open).unwrap();
            let mut ours = Vec::new();
            write_stream_open(&open, &mut ours);
            assert_eq!(ours, json);
            assert_eq!(read_stream_open(&json), Some(open));
        }
        let head = ResponseHead {
            status: 200,
            headers: vec![("content-length".into(), "100".into())],
            is_final: true,
        };
        let json = serde_json::to_vec(&head).unwrap();
        assert_eq!(read_response_head(&json), Some(head));
        // Other peers' spellings: whitespace, another order, defaults, null options.
        let spaced = br#" { "final" : false , "status" : 103 } "#;
        assert_eq!(
            read_response_head(spaced),
            serde_json::from_slice(spaced).ok()
        );
        let other = br#"{"kind":"http","bindId":1,"method":null,"headers":[]}"#;
        assert!(read_stream_open(other).is_some());
        assert_eq!(read_stream_open(other), serde_json::from_slice(other).ok());
    }

    #[test]
    fn what_the_fast_path_does_not_read_is_left_to_serde() {
        for odd in [
            &br#"{"bindId":1,"kind":"http","method":"G\u0045T"}"#[..],
            br#"{"bindId":1,"kind":"http","extra":1}"#,
            br#"{"bindId":1,"bindId":2,"kind":"http"}"#,
            br#"{"bindId":01,"kind":"http"}"#,
            br#"{"bindId":1.0,"kind":"http"}"#,
            br#"{"bindId":4294967296,"kind":"http"}"#,
            br#"{"bindId":1}"#,
            br#"{"bindId":1,"kind":"http"} x"#,
            br#"[1,"http"]"#,
            b"{\"bindId\":1,\"kind\":\"ht\ttp\"}",
        ] {
            assert_eq!(
                read_stream_open(odd),
                None,
                "{}",
                String::from_utf8_lossy(odd)
            );
        }
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9./:?=-]{0,12}",
            any::<String>(),
            "[\"\\\\\t\n\u{1}\u{7f}é a]{0,6}",
        ]
    }

    fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec((text(), text()), 0..4)
    }

    fn open() -> impl Strategy<Value = StreamOpen> {
        let kind = prop_oneof![
            Just(BindKind::Http),
            Just(BindKind::Tcp),
            Just(BindKind::Unknown)
        ];
        (
            any::<u32>(),
            kind,
            proptest::option::of(text()),
            proptest::option::of(text()),
            pairs(),
            any::<bool>(),
            proptest::option::of(text()),
            proptest::option::of(text()),
        )
            .prop_map(
                |(bind_id, kind, method, target, headers, is_upgrade, visitor, server)| {
                    StreamOpen {
                        bind_id,
                        kind,
                        method,
                        target,
                        headers,
                        is_upgrade,
                        visitor_addr: visitor,
                        server_addr: server,
                    }
                },
            )
    }

    fn head() -> impl Strategy<Value = ResponseHead> {
        (any::<u16>(), pairs(), any::<bool>()).prop_map(|(status, headers, is_final)| {
            ResponseHead {
                status,
                headers,
                is_final,
            }
        })
    }

    /// One edit of an encoded payload: a byte replaced, inserted or removed, or a cut.
    fn mutate(mut bytes: Vec<u8>, at: usize, op: u8, byte: u8) -> Vec<u8> {
        const INTERESTING: &[u8] = b"\"\\,:[]{} 0123456789-.eEtrufalsn\x00\x1f\x7f\xc3\xff";
        let b = INTERESTING[byte as usize % INTERESTING.len()];
        let at = at % (bytes.len() + 1);
        match op % 4 {
            0 if at < bytes.len() => bytes[at] = b,
            1 => bytes.insert(at, b),
            2 if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => bytes.truncate(at),
        }
        bytes
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        #[test]
        fn encoding_is_byte_for_byte_serde_json(open in open(), head in head()) {
            let mut ours = Vec::new();
            write_stream_open(&open, &mut ours);
            prop_assert_eq!(ours, serde_json::to_vec(&open).unwrap());
            let mut ours = Vec::new();
            write_response_head(&head, &mut ours);
            prop_assert_eq!(ours, serde_json::to_vec(&head).unwrap());
        }

        #[test]
        fn a_decoded_open_is_what_serde_decodes(
            open in open(), at in any::<usize>(), op in any::<u8>(), byte in any::<u8>()
        ) {
            let json = serde_json::to_vec(&open).unwrap();
            if let Some(ours) = read_stream_open(&json) {
                prop_assert_eq!(&ours, &open);
            }
            let edited = mutate(json, at, op, byte);
            if let Some(ours) = read_stream_open(&edited) {
                let theirs: StreamOpen = serde_json::from_slice(&edited)
                    .map_err(|e| TestCaseError::fail(format!("serde refused: {e}")))?;
                prop_assert_eq!(ours, theirs);
            }
        }

        #[test]
        fn a_decoded_head_is_what_serde_decodes(
            head in head(), at in any::<usize>(), op in any::<u8>(), byte in any::<u8>()
        ) {
            let json = serde_json::to_vec(&head).unwrap();
            if let Some(ours) = read_response_head(&json) {
                prop_assert_eq!(&ours, &head);
            }
            let edited = mutate(json, at, op, byte);
            if let Some(ours) = read_response_head(&edited) {
                let theirs: ResponseHead = serde_json::from_slice(&edited)
                    .map_err(|e| TestCaseError::fail(format!("serde refused: {e}")))?;
                prop_assert_eq!(ours, theirs);
            }
        }

        #[test]
        fn arbitrary_bytes_never_decode_differently(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Some(ours) = read_response_head(&bytes) {
                let theirs: Result<ResponseHead, _> = serde_json::from_slice(&bytes);
                prop_assert_eq!(Some(ours), theirs.ok());
            }
            if let Some(ours) = read_stream_open(&bytes) {
                let theirs: Result<StreamOpen, _> = serde_json::from_slice(&bytes);
                prop_assert_eq!(Some(ours), theirs.ok());
            }
        }
    }
}
