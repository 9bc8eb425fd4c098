//! What one client may bind, and the single check every bind (and every reload) goes through.

use std::ops::RangeInclusive;

use super::pattern::Pattern;
use crate::http::edge::routing::validate_route_name;
use crate::proto::{Bind, BindErrorCode, BindKind, BindMode};
use crate::server::bindings::Refusal;
use crate::server::sessions::BindingRecord;

/// Default `max_sessions` of a client in the clients file.
pub const DEFAULT_MAX_SESSIONS: usize = 4;

/// A client's rights. `None` in a list means "anything" (the shared token's `default` client);
/// a client from the file always has lists, empty when the key is absent.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    /// Host routes it may bind; `None`: any.
    pub subdomains: Option<Vec<Pattern>>,
    /// May ask for a server-assigned `up-xxxxxxxxxx` route.
    pub random_subdomain: bool,
    /// Dedicated http and tcp expose ports it may bind; `None`: any.
    pub ports: Option<Vec<RangeInclusive<u16>>>,
    /// May open pull bindings.
    pub pull: bool,
    /// Server loopback ports it may forward to (also bounded by `--allow-forward`); `None`:
    /// whatever the server allows.
    pub forward: Option<Vec<RangeInclusive<u16>>>,
    /// Sessions at once (live or waiting for a resume); `None`: only the server's limit.
    pub max_sessions: Option<usize>,
    /// Bindings per session; `None`: the server's `--max-bindings-per-session`.
    pub max_bindings: Option<usize>,
    /// Bytes per second over all its streams, in each direction; `None`: unlimited.
    pub max_bytes_per_second: Option<u64>,
}

/// One thing a binding holds, as far as a scope cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// A named host route (validated, lowercased).
    Route(String),
    /// A server-assigned route name.
    AssignedRoute,
    /// A dedicated public port; 0 asks the server to pick one.
    Port(u16),
    /// A pull listener on the server's loopback.
    Pull,
    /// A forward to this server loopback port.
    Forward(u16),
}

impl Scope {
    /// Every right: the shared token, and servers without a clients file.
    pub fn full() -> Self {
        Self {
            subdomains: None,
            random_subdomain: true,
            ports: None,
            pull: true,
            forward: None,
            max_sessions: None,
            max_bindings: None,
            max_bytes_per_second: None,
        }
    }

    /// Refuses a bind that asks for anything outside this scope (FORBIDDEN_ROUTE or
    /// FORBIDDEN_PORT; a malformed route name is INVALID_NAME, as without a scope).
    pub fn admit_bind(&self, client: &str, bind: &Bind) -> Result<(), Refusal> {
        for want in wants_of_bind(bind)? {
            self.admit(client, &want)?;
        }
        Ok(())
    }

    /// Why `want` is outside the scope, if it is.
    pub fn admit(&self, client: &str, want: &Want) -> Result<(), Refusal> {
        let forbidden_route = |m: String| Err(Refusal::new(BindErrorCode::ForbiddenRoute, m));
        let forbidden_port = |m: String| Err(Refusal::new(BindErrorCode::ForbiddenPort, m));
        match want {
            Want::Route(name) if !self.route_allowed(name) => forbidden_route(format!(
                "client '{client}' may not bind subdomain '{name}' (its subdomains: {})",
                list(self.subdomains.as_deref())
            )),
            Want::AssignedRoute if !self.random_subdomain => forbidden_route(format!(
                "client '{client}' may not ask for a server-assigned subdomain \
                 (random_subdomain = false); ask for one of its subdomains: {}",
                list(self.subdomains.as_deref())
            )),
            Want::Port(0) if self.ports.as_ref().is_some_and(Vec::is_empty) => forbidden_port(
                format!("client '{client}' may not open dedicated ports (no ports in its scope)"),
            ),
            Want::Port(p) if *p != 0 && !contains(self.ports.as_deref(), *p) => {
                forbidden_port(format!(
                    "client '{client}' may not bind port {p} (its ports: {})",
                    ranges(self.ports.as_deref())
                ))
            }
            Want::Pull if !self.pull => forbidden_port(format!(
                "client '{client}' may not open pull bindings (pull = false)"
            )),
            Want::Forward(p) if !contains(self.forward.as_deref(), *p) => forbidden_port(format!(
                "client '{client}' may not forward to port {p} (its forward ports: {})",
                ranges(self.forward.as_deref())
            )),
            _ => Ok(()),
        }
    }

    /// A named route is allowed when a pattern matches it, or when it has the shape of a
    /// server-assigned name and the client may have those: a client that got `up-k7m3q9t2ab`
    /// asks for that same name again when it reconnects.
    fn route_allowed(&self, name: &str) -> bool {
        let listed = match &self.subdomains {
            None => true,
            Some(patterns) => patterns.iter().any(|p| p.matches(name)),
        };
        listed || (self.random_subdomain && is_assigned_name(name))
    }

    /// The ports a server-picked dedicated port comes from; `None`: the server's expose range.
    pub fn port_pool(&self) -> Option<&[RangeInclusive<u16>]> {
        self.ports.as_deref()
    }
}

/// What an existing binding holds, to check it against a changed scope.
pub fn wants_of_record(record: &BindingRecord) -> Vec<Want> {
    let mut wants = Vec::new();
    if let Some(route) = &record.route {
        wants.push(Want::Route(route.clone()));
    }
    match record.mode {
        BindMode::Expose if record.container_port != 0 => {
            wants.push(Want::Port(record.container_port))
        }
        BindMode::Pull => wants.push(Want::Pull),
        BindMode::Forward => wants.push(Want::Forward(record.container_port)),
        _ => {}
    }
    wants
}

/// What a BIND asks for. Kinds the server does not support ask for nothing here; the bind
/// code refuses them with INVALID_KIND.
fn wants_of_bind(bind: &Bind) -> Result<Vec<Want>, Refusal> {
    let port = bind.container_port.unwrap_or(0);
    Ok(match (bind.kind, bind.mode) {
        (BindKind::Http, BindMode::Expose) => match &bind.route {
            Some(route) => {
                let mut wants = vec![match &route.subdomain {
                    Some(name) => Want::Route(
                        validate_route_name(name)
                            .map_err(|e| Refusal::new(BindErrorCode::InvalidName, e.to_string()))?,
                    ),
                    None => Want::AssignedRoute,
                }];
                if bind.container_port.is_some() {
                    wants.push(Want::Port(port));
                }
                wants
            }
            None => vec![Want::Port(port)],
        },
        (BindKind::Tcp, BindMode::Expose) => vec![Want::Port(port)],
        (BindKind::Tcp, BindMode::Pull) => vec![Want::Pull],
        (BindKind::Tcp, BindMode::Forward) => vec![Want::Forward(port)],
        _ => Vec::new(),
    })
}

/// `up-` and 10 characters of a-z and 0-9, as the server assigns them.
fn is_assigned_name(name: &str) -> bool {
    name.strip_prefix("up-").is_some_and(|rest| {
        rest.len() == 10
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

fn contains(ranges: Option<&[RangeInclusive<u16>]>, port: u16) -> bool {
    ranges.is_none_or(|rs| rs.iter().any(|r| r.contains(&port)))
}

fn list(patterns: Option<&[Pattern]>) -> String {
    match patterns {
        None => "any".into(),
        Some([]) => "none".into(),
        Some(ps) => ps
            .iter()
            .map(Pattern::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn ranges(rs: Option<&[RangeInclusive<u16>]>) -> String {
    match rs {
        None => "any".into(),
        Some([]) => "none".into(),
        Some(rs) => rs
            .iter()
            .map(|r| {
                if r.start() == r.end() {
                    r.start().to_string()
                } else {
                    format!("{}-{}", r.start(), r.end())
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{RouteMode, RouteSpec};

    fn alice() -> Scope {
        Scope {
            subdomains: Some(vec![
                Pattern::parse("alice").unwrap(),
                Pattern::parse("alice-*").unwrap(),
            ]),
            random_subdomain: false,
            ports: Some(vec![21000..=21010]),
            pull: false,
            forward: Some(vec![5432..=5432]),
            max_sessions: Some(2),
            max_bindings: None,
            max_bytes_per_second: None,
        }
    }

    fn code(r: Result<(), Refusal>) -> Option<BindErrorCode> {
        r.err().map(|r| r.code)
    }

    #[test]
    fn routes() {
        let s = alice();
        assert_eq!(code(s.admit("alice", &Want::Route("alice".into()))), None);
        assert_eq!(code(s.admit("alice", &Want::Route("alice-x".into()))), None);
        let refused = s.admit("alice", &Want::Route("bob".into())).unwrap_err();
        assert_eq!(refused.code, BindErrorCode::ForbiddenRoute);
        assert!(
            refused.message.contains("alice, alice-*"),
            "{}",
            refused.message
        );
        assert_eq!(
            code(s.admit("alice", &Want::AssignedRoute)),
            Some(BindErrorCode::ForbiddenRoute)
        );
        // An assigned-looking name is only free for clients that may have assigned names.
        assert_eq!(
            code(s.admit("alice", &Want::Route("up-abcde12345".into()))),
            Some(BindErrorCode::ForbiddenRoute)
        );
        let s = Scope {
            random_subdomain: true,
            ..alice()
        };
        assert_eq!(code(s.admit("a", &Want::AssignedRoute)), None);
        assert_eq!(
            code(s.admit("a", &Want::Route("up-abcde12345".into()))),
            None
        );
        assert_eq!(
            code(s.admit("a", &Want::Route("up-short".into()))),
            Some(BindErrorCode::ForbiddenRoute)
        );
    }

    #[test]
    fn ports_pull_forward() {
        let s = alice();
        assert_eq!(code(s.admit("a", &Want::Port(21005))), None);
        assert_eq!(code(s.admit("a", &Want::Port(0))), None);
        assert_eq!(
            code(s.admit("a", &Want::Port(22000))),
            Some(BindErrorCode::ForbiddenPort)
        );
        assert_eq!(
            code(s.admit("a", &Want::Pull)),
            Some(BindErrorCode::ForbiddenPort)
        );
        assert_eq!(code(s.admit("a", &Want::Forward(5432))), None);
        assert_eq!(
            code(s.admit("a", &Want::Forward(6379))),
            Some(BindErrorCode::ForbiddenPort)
        );
        let none = Scope {
            ports: Some(Vec::new()),
            ..alice()
        };
        assert_eq!(
            code(none.admit("a", &Want::Port(0))),
            Some(BindErrorCode::ForbiddenPort)
        );
    }

    #[test]
    fn full_scope_admits_everything() {
        let s = Scope::full();
        for want in [
            Want::Route("x".into()),
            Want::Route("@".into()),
            Want::AssignedRoute,
            Want::Port(0),
            Want::Port(80),
            Want::Pull,
            Want::Forward(1),
        ] {
            assert_eq!(code(s.admit("default", &want)), None, "{want:?}");
        }
    }

    #[test]
    fn binds_are_read_whole() {
        let mut bind = Bind {
            client_bind_ref: serde_json::Value::Null,
            kind: BindKind::Http,
            mode: BindMode::Expose,
            container_port: Some(22000),
            label: None,
            takeover: None,
            host: None,
            route: Some(RouteSpec {
                subdomain: Some("Alice".into()),
                mode: RouteMode::Single,
            }),
            basic_auth: None,
            cidr_allow: None,
            cidr_deny: None,
        };
        // The route is fine, the extra port is not.
        assert_eq!(
            code(alice().admit_bind("alice", &bind)),
            Some(BindErrorCode::ForbiddenPort)
        );
        bind.container_port = None;
        assert_eq!(code(alice().admit_bind("alice", &bind)), None);
        bind.route = Some(RouteSpec {
            subdomain: Some("not_a_label".into()),
            mode: RouteMode::Single,
        });
        assert_eq!(
            code(alice().admit_bind("alice", &bind)),
            Some(BindErrorCode::InvalidName)
        );
    }
}
