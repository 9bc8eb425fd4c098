//! How `Debug` output shows a secret (token, password, nonce): whether it is set, never its
//! value. Every type that holds one uses this in a hand-written `Debug`, so a `{:?}` in a log
//! line or a panic message cannot leak it.

use std::fmt;

/// Stands in for a secret in `Debug` output.
pub struct Redacted(pub bool);

impl Redacted {
    /// For an optional secret: `None` stays visible, a value becomes `<redacted>`.
    pub fn of<T>(secret: &Option<T>) -> Self {
        Self(secret.is_some())
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0 { "<redacted>" } else { "None" })
    }
}

/// A secret that is always there.
pub const REDACTED: Redacted = Redacted(true);
