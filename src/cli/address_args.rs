//! `--cidr-allow` and `--cidr-deny`, shared by `http` and `tcp` (and the `start` file keys of the
//! same names): which visitor addresses an expose admits.

use clap::Args;

use crate::http::edge::address_policy::AddressPolicy;

/// The address flags of an expose.
#[derive(Debug, Clone, Args)]
pub struct AddressArgs {
    /// Admit only visitors from these addresses: an IP, a CIDR range, loopback or private;
    /// repeatable or a comma list. Others get 403 (http) or are disconnected (tcp).
    #[arg(long, env = "UNDERPASS_CIDR_ALLOW", value_delimiter = ',')]
    pub cidr_allow: Vec<String>,
    /// Refuse visitors from these addresses (same forms), even inside --cidr-allow.
    #[arg(long, env = "UNDERPASS_CIDR_DENY", value_delimiter = ',')]
    pub cidr_deny: Vec<String>,
}

/// Allow and deny entries, trimmed and without empty ones (an empty env value names nothing).
pub type AddressLists = (Vec<String>, Vec<String>);

impl AddressArgs {
    /// The lists, checked: see [`checked`].
    pub fn checked(&self) -> Result<AddressLists, String> {
        checked(&self.cidr_allow, &self.cidr_deny)
    }
}

/// Checks the entries before connecting, so a typo is a clear error here rather than a
/// BIND_ERR later.
pub fn checked(allow: &[String], deny: &[String]) -> Result<AddressLists, String> {
    let clean = |entries: &[String]| -> Vec<String> {
        entries
            .iter()
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect()
    };
    let (allow, deny) = (clean(allow), clean(deny));
    AddressPolicy::parse(&allow, &deny)?;
    Ok((allow, deny))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_entries_are_dropped_and_bad_ones_refused() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            checked(&s(&[" 10.0.0.0/8 ", ""]), &s(&[""])),
            Ok((s(&["10.0.0.0/8"]), vec![]))
        );
        assert!(checked(&s(&["10.0.0.0/33"]), &[]).is_err());
        assert!(checked(&[], &s(&["nope"])).is_err());
    }
}
