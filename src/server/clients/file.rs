//! The clients file (`--clients FILE`): TOML with one `[[client]]` table per client. Unknown
//! keys, bad values, duplicate names and duplicate tokens are errors naming the line; nothing
//! of a file with an error is used.

use std::collections::HashMap;
use std::ops::{Range, RangeInclusive};

use serde::Deserialize;
use toml::Spanned;

use super::digest::TokenHash;
use super::pattern::Pattern;
use super::scope::{Scope, DEFAULT_MAX_SESSIONS};

/// Name of the client the shared `--token` stands for; no file client may use it.
pub const DEFAULT_CLIENT: &str = "default";

/// Smallest `max_bytes_per_second`: below it a single TCP segment would take seconds.
const MIN_RATE: u64 = 1024;

/// One client as the file describes it.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    /// Unique name.
    pub name: String,
    /// SHA-256 of its token.
    pub token: TokenHash,
    /// What it may do.
    pub scope: Scope,
    /// Line of its `[[client]]` table, for later errors.
    pub line: usize,
}

/// A parsed file.
#[derive(Debug, Clone)]
pub struct ClientsFile {
    /// Every client, in file order.
    pub clients: Vec<ClientSpec>,
    /// Things worth a warning (a plain `token`), without any secret.
    pub warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    #[serde(default)]
    client: Vec<Spanned<Entry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: Spanned<String>,
    token_sha256: Option<Spanned<String>>,
    token: Option<Spanned<String>>,
    subdomains: Option<Vec<Spanned<String>>>,
    random_subdomain: Option<bool>,
    ports: Option<Vec<Spanned<PortItem>>>,
    pull: Option<bool>,
    forward: Option<Vec<Spanned<PortItem>>>,
    max_sessions: Option<Spanned<i64>>,
    max_bindings: Option<Spanned<i64>>,
    max_bytes_per_second: Option<Spanned<Size>>,
}

/// `21000`, `"21000"` or `"21000-21010"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum PortItem {
    Number(i64),
    Text(String),
}

/// `1048576` or `"1MiB"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Size {
    Number(i64),
    Text(String),
}

impl ClientsFile {
    /// Parses and checks a whole file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let doc: Doc = toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => format!("line {}: {}", line_of(text, &span), e.message().trim()),
            None => e.message().trim().to_string(),
        })?;
        let mut out = Self {
            clients: Vec::new(),
            warnings: Vec::new(),
        };
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut tokens: Vec<(TokenHash, String)> = Vec::new();
        for entry in doc.client {
            let line = line_of(text, &entry.span());
            let spec = client(text, entry.into_inner(), line, &mut out.warnings)?;
            if let Some(first) = names.insert(spec.name.clone(), line) {
                return Err(format!(
                    "line {line}: a second client named '{}' (the first is on line {first}); \
                     names must be unique",
                    spec.name
                ));
            }
            if let Some((_, other)) = tokens.iter().find(|(t, _)| t.ct_eq(&spec.token)) {
                return Err(format!(
                    "line {line}: client '{}' has the same token as client '{other}'; \
                     every client needs its own",
                    spec.name
                ));
            }
            tokens.push((spec.token, spec.name.clone()));
            out.clients.push(spec);
        }
        Ok(out)
    }
}

fn client(
    text: &str,
    e: Entry,
    line: usize,
    warnings: &mut Vec<String>,
) -> Result<ClientSpec, String> {
    let at = |span: Range<usize>| line_of(text, &span);
    let name =
        check_name(e.name.get_ref()).map_err(|m| format!("line {}: {m}", at(e.name.span())))?;
    let token = match (e.token_sha256, e.token) {
        (Some(hash), None) => TokenHash::parse_hex(hash.get_ref())
            .map_err(|m| format!("line {}: {m}", at(hash.span())))?,
        (None, Some(plain)) => {
            if plain.get_ref().is_empty() {
                return Err(format!(
                    "line {}: client '{name}' has an empty token",
                    at(plain.span())
                ));
            }
            warnings.push(format!(
                "line {}: client '{name}' has a plain `token`; the server keeps only digests, \
                 so replace it with token_sha256 (`underpass token new` prints one, or \
                 printf %s \"$TOKEN\" | sha256sum)",
                at(plain.span())
            ));
            TokenHash::of(plain.get_ref())
        }
        (Some(_), Some(plain)) => {
            return Err(format!(
                "line {}: client '{name}' has both token and token_sha256; keep token_sha256",
                at(plain.span())
            ))
        }
        (None, None) => {
            return Err(format!(
                "line {line}: client '{name}' needs token_sha256 (`underpass token new` prints one)"
            ))
        }
    };
    let subdomains = e
        .subdomains
        .unwrap_or_default()
        .iter()
        .map(|p| Pattern::parse(p.get_ref()).map_err(|m| format!("line {}: {m}", at(p.span()))))
        .collect::<Result<Vec<_>, _>>()?;
    let port_list = |items: Option<Vec<Spanned<PortItem>>>, key: &str| {
        items
            .unwrap_or_default()
            .iter()
            .map(|p| {
                port_range(p.get_ref()).map_err(|m| format!("line {}: {key}: {m}", at(p.span())))
            })
            .collect::<Result<Vec<_>, String>>()
    };
    let count = |v: Option<Spanned<i64>>, key: &str| -> Result<Option<usize>, String> {
        match v {
            None => Ok(None),
            Some(n) if *n.get_ref() >= 1 => {
                Ok(Some(usize::try_from(*n.get_ref()).unwrap_or(usize::MAX)))
            }
            Some(n) => Err(format!(
                "line {}: {key} must be at least 1 (remove the client to keep it out)",
                at(n.span())
            )),
        }
    };
    let rate = match e.max_bytes_per_second {
        None => None,
        Some(s) => Some(
            size(s.get_ref())
                .map_err(|m| format!("line {}: max_bytes_per_second: {m}", at(s.span())))?,
        ),
    };
    Ok(ClientSpec {
        scope: Scope {
            subdomains: Some(subdomains),
            random_subdomain: e.random_subdomain.unwrap_or(true),
            ports: Some(port_list(e.ports, "ports")?),
            pull: e.pull.unwrap_or(false),
            forward: Some(port_list(e.forward, "forward")?),
            max_sessions: Some(
                count(e.max_sessions, "max_sessions")?.unwrap_or(DEFAULT_MAX_SESSIONS),
            ),
            max_bindings: count(e.max_bindings, "max_bindings")?,
            max_bytes_per_second: rate,
        },
        name,
        token,
        line,
    })
}

/// Names go into logs, metric labels and the admin API: 1-64 characters of letters, digits,
/// `.`, `_` and `-`.
pub fn check_name(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        return Err(format!(
            "client name {name:?} must be 1-64 characters of letters, digits, '.', '_' and '-'"
        ));
    }
    if name == DEFAULT_CLIENT {
        return Err(format!(
            "the client name '{DEFAULT_CLIENT}' is kept for the shared --token; choose another"
        ));
    }
    Ok(name.to_string())
}

fn port_range(item: &PortItem) -> Result<RangeInclusive<u16>, String> {
    let port = |text: &str| match text.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("'{}' is not a port (1-65535)", text.trim())),
    };
    let (lo, hi) = match item {
        PortItem::Number(n) => {
            let p = port(&n.to_string())?;
            (p, p)
        }
        PortItem::Text(t) => match t.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(t)?;
                (p, p)
            }
        },
    };
    if lo > hi {
        return Err(format!(
            "{lo}-{hi} is not a range (the first port comes first)"
        ));
    }
    Ok(lo..=hi)
}

/// Bytes: a number, or a string with a `KiB`, `MiB` or `GiB` suffix.
fn size(item: &Size) -> Result<u64, String> {
    let bytes = match item {
        Size::Number(n) => u64::try_from(*n).map_err(|_| format!("{n} is negative"))?,
        Size::Text(t) => {
            let t = t.trim();
            let (num, mult) = [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
                .iter()
                .find_map(|(suffix, m)| t.strip_suffix(suffix).map(|n| (n.trim(), *m)))
                .unwrap_or((t, 1));
            num.parse::<u64>()
                .ok()
                .and_then(|n| n.checked_mul(mult))
                .ok_or_else(|| format!("'{t}' is not a size like 1048576, 512KiB or 10MiB"))?
        }
    };
    if bytes < MIN_RATE {
        return Err(format!(
            "{bytes} is below the smallest limit, {MIN_RATE} bytes per second (leave the key out \
             for no limit)"
        ));
    }
    Ok(bytes)
}

fn line_of(text: &str, span: &Range<usize>) -> usize {
    text.as_bytes()[..span.start.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn parse(text: &str) -> Result<ClientsFile, String> {
        ClientsFile::parse(text)
    }

    #[test]
    fn the_documented_example() {
        let text = format!(
            r#"
[[client]]
name = "alice"                      # unique
token_sha256 = "{HASH}"
subdomains = ["alice", "alice-*"]
random_subdomain = true
ports = ["21000-21010"]
pull = true
forward = ["5432"]
max_sessions = 2
max_bindings = 8
max_bytes_per_second = "1MiB"

[[client]]
name = "bob"
token = "bob-secret"
"#
        );
        let f = parse(&text).unwrap();
        assert_eq!(f.clients.len(), 2);
        let a = &f.clients[0];
        assert_eq!(a.name, "alice");
        assert_eq!(a.line, 2);
        assert_eq!(a.token, TokenHash::of("abc"));
        assert_eq!(a.scope.ports, Some(vec![21000..=21010]));
        assert_eq!(a.scope.forward, Some(vec![5432..=5432]));
        assert!(a.scope.pull && a.scope.random_subdomain);
        assert_eq!(a.scope.max_sessions, Some(2));
        assert_eq!(a.scope.max_bindings, Some(8));
        assert_eq!(a.scope.max_bytes_per_second, Some(1 << 20));
        let b = &f.clients[1];
        assert_eq!(b.token, TokenHash::of("bob-secret"));
        // Absent keys: nothing but a random name, four sessions.
        assert_eq!(b.scope.subdomains, Some(vec![]));
        assert_eq!(b.scope.ports, Some(vec![]));
        assert!(!b.scope.pull && b.scope.random_subdomain);
        assert_eq!(b.scope.max_sessions, Some(DEFAULT_MAX_SESSIONS));
        assert_eq!(b.scope.max_bindings, None);
        // The plain token is warned about, and never shown.
        assert_eq!(f.warnings.len(), 1);
        assert!(f.warnings[0].starts_with("line 16:"), "{}", f.warnings[0]);
        assert!(!f.warnings[0].contains("bob-secret"));
    }

    #[test]
    fn unknown_keys_name_their_line() {
        let text =
            format!("[[client]]\nname = \"a\"\ntoken_sha256 = \"{HASH}\"\nsubdomain = [\"a\"]\n");
        let err = parse(&text).unwrap_err();
        assert!(err.starts_with("line 4:"), "{err}");
        assert!(err.contains("subdomain"), "{err}");
        let err = parse("[server]\nx = 1\n").unwrap_err();
        assert!(err.starts_with("line 1:"), "{err}");
    }

    #[test]
    fn bad_values_name_their_line() {
        let base = format!("[[client]]\nname = \"a\"\ntoken_sha256 = \"{HASH}\"\n");
        for (extra, wanted) in [
            ("ports = [\"22000-21000\"]", "not a range"),
            ("ports = [70000]", "not a port"),
            ("forward = [\"x\"]", "not a port"),
            ("subdomains = [\"a.b\"]", "contains '.'"),
            ("max_sessions = 0", "at least 1"),
            ("max_bytes_per_second = 10", "smallest limit"),
            ("max_bytes_per_second = \"fast\"", "not a size"),
            ("pull = \"yes\"", "bool"),
        ] {
            let err = parse(&format!("{base}{extra}\n")).unwrap_err();
            assert!(err.starts_with("line 4:"), "{extra}: {err}");
            assert!(err.contains(wanted), "{extra}: {err}");
        }
        let err = parse("[[client]]\nname = \"a\"\ntoken_sha256 = \"abc\"\n").unwrap_err();
        assert!(
            err.starts_with("line 3:") && err.contains("64 hex"),
            "{err}"
        );
    }

    #[test]
    fn names_and_tokens_must_be_unique_and_present() {
        let two = |n1: &str, n2: &str, t2: &str| {
            format!(
                "[[client]]\nname = \"{n1}\"\ntoken = \"t1\"\n\n[[client]]\nname = \"{n2}\"\ntoken = \"{t2}\"\n"
            )
        };
        let err = parse(&two("a", "a", "t2")).unwrap_err();
        assert!(
            err.starts_with("line 5:") && err.contains("line 1"),
            "{err}"
        );
        let err = parse(&two("a", "b", "t1")).unwrap_err();
        assert!(err.contains("same token as client 'a'"), "{err}");
        assert!(!err.contains("t1\""), "{err}");
        let err = parse("[[client]]\nname = \"a\"\n").unwrap_err();
        assert!(
            err.starts_with("line 1:") && err.contains("token_sha256"),
            "{err}"
        );
        let err = parse(&format!(
            "[[client]]\nname = \"a\"\ntoken = \"x\"\ntoken_sha256 = \"{HASH}\"\n"
        ))
        .unwrap_err();
        assert!(err.contains("both"), "{err}");
        let err = parse("[[client]]\nname = \"default\"\ntoken = \"x\"\n").unwrap_err();
        assert!(err.starts_with("line 2:") && err.contains("kept"), "{err}");
        let err = parse("[[client]]\nname = \"a b\"\ntoken = \"x\"\n").unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
    }

    #[test]
    fn an_empty_file_has_no_clients() {
        assert!(parse("").unwrap().clients.is_empty());
        assert!(parse("# nobody yet\n").unwrap().clients.is_empty());
    }
}
