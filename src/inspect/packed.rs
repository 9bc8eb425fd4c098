//! A captured header list packed into one string: the inspector records every response head on
//! the data path but shows it only when someone looks, so it keeps the names and values in one
//! allocation and makes the `(name, value)` pairs of the public types on reading.

use http::HeaderMap;

/// Header names and values back to back in one string, in order, with where each ends.
#[derive(Debug, Clone, Default)]
pub(crate) struct PackedHeaders {
    text: String,
    /// For each header, the end of its name and the end of its value in `text`.
    ends: Vec<(usize, usize)>,
}

impl PackedHeaders {
    /// `headers` in order; a value that is not UTF-8 is kept lossily (as the inspector shows it).
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let size = headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum();
        let mut text = String::with_capacity(size);
        let mut ends = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            text.push_str(name.as_str());
            let name_end = text.len();
            // UTF-8 checking runs a word at a time; `to_str`'s visible-ASCII check, a byte.
            match std::str::from_utf8(value.as_bytes()) {
                Ok(v) => text.push_str(v),
                Err(_) => text.push_str(&String::from_utf8_lossy(value.as_bytes())),
            }
            ends.push((name_end, text.len()));
        }
        Self { text, ends }
    }

    /// The headers as `(name, value)` pairs.
    pub(crate) fn unpack(&self) -> Vec<(String, String)> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|&(name_end, value_end)| {
                let pair = (
                    self.text[start..name_end].to_string(),
                    self.text[name_end..value_end].to_string(),
                );
                start = value_end;
                pair
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn pairs_come_back_in_order_with_repeats_and_lossy_values() {
        let mut h = HeaderMap::new();
        h.append("set-cookie", HeaderValue::from_static("a=1"));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        h.append("set-cookie", HeaderValue::from_static("b=2"));
        h.insert("x-empty", HeaderValue::from_static(""));
        h.insert("x-bin", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let expected: Vec<(String, String)> = h
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        assert_eq!(PackedHeaders::of(&h).unpack(), expected);
        assert_eq!(expected[4].1, "caf\u{fffd}");
        assert!(PackedHeaders::of(&HeaderMap::new()).unpack().is_empty());
    }
}
