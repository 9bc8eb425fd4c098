//! Header conversion between hyper's `HeaderMap` and the protocol's `[[name, value], ...]`,
//! validating everything a peer sends.

use http::{HeaderMap, HeaderName, HeaderValue};

/// Headers as protocol pairs. Values that are not UTF-8 cannot travel in JSON and are dropped.
pub fn to_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    to_pairs_where(headers, |_| true)
}

/// [`to_pairs`] of the headers whose name passes `keep`.
pub fn to_pairs_where(
    headers: &HeaderMap,
    keep: impl Fn(&HeaderName) -> bool,
) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| keep(name))
        .filter_map(|(name, value)| {
            value
                .to_str()
                .ok()
                .map(|v| (name.as_str().to_string(), v.to_string()))
        })
        .collect()
}

/// Protocol pairs as a `HeaderMap`; a pair with an invalid name or value (CR, LF, NUL, bad
/// token) is an error naming it, never a panic.
pub fn from_pairs(pairs: &[(String, String)]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        let name = header_name(name).ok_or_else(|| format!("invalid header name {name:?}"))?;
        let value =
            HeaderValue::from_str(value).map_err(|_| format!("invalid value for header {name}"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// Names the server writes on every request (`X-Forwarded-*`, `X-Real-IP`). They are not
/// among `http`'s standard names, so parsing one would copy it into a new allocation.
const FORWARDING_NAMES: [HeaderName; 4] = [
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-real-ip"),
];

/// `name` as a header name; a forwarding name is the static one, anything else is parsed.
fn header_name(name: &str) -> Option<HeaderName> {
    match FORWARDING_NAMES.iter().find(|known| known.as_str() == name) {
        Some(known) => Some(known.clone()),
        None => HeaderName::from_bytes(name.as_bytes()).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_order_and_repeats() {
        let mut h = HeaderMap::new();
        h.append("set-cookie", HeaderValue::from_static("a=1"));
        h.append("set-cookie", HeaderValue::from_static("b=2"));
        h.insert("x-y", HeaderValue::from_static("z"));
        let back = from_pairs(&to_pairs(&h)).unwrap();
        assert_eq!(back.get_all("set-cookie").iter().count(), 2);
        assert_eq!(back["x-y"], "z");
    }

    #[test]
    fn injection_is_refused() {
        assert!(from_pairs(&[("x".into(), "a\r\nb: c".into())]).is_err());
        assert!(from_pairs(&[("bad name".into(), "v".into())]).is_err());
        assert!(from_pairs(&[("x".into(), "nul\0".into())]).is_err());
    }
}
