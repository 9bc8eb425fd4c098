//! Parsers for command-line values: ports, port ranges, durations.

use std::ops::RangeInclusive;
use std::time::Duration;

/// `20000-65534` or a single port `8080`.
pub fn port_range(s: &str) -> Result<RangeInclusive<u16>, String> {
    let s = s.trim();
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (s, s),
    };
    let lo: u16 = a
        .parse()
        .map_err(|_| format!("'{a}' is not a port (1-65535)"))?;
    let hi: u16 = b
        .parse()
        .map_err(|_| format!("'{b}' is not a port (1-65535)"))?;
    if lo == 0 || lo > hi {
        return Err(format!("'{s}' is not a port range like 20000-65534"));
    }
    Ok(lo..=hi)
}

/// A TCP port 1-65535.
pub fn port(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("'{s}' is not a port (1-65535)")),
    }
}

/// A port 0-65535, where 0 asks for any free one.
pub fn port_or_zero(s: &str) -> Result<u16, String> {
    s.trim()
        .parse::<u16>()
        .map_err(|_| format!("'{s}' is not a port (0-65535, 0 = any free port)"))
}

/// Seconds, possibly fractional: `5`, `0.5`.
pub fn seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !(0.0..=86_400.0).contains(&v) {
        return Err(format!("'{s}' is out of range (0-86400 seconds)"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// A byte size: `1048576`, `1MiB`, `16MiB`, `64KiB`.
pub fn bytes(s: &str) -> Result<u32, String> {
    let v = byte_count(s)?;
    if v < 65_536 || v > u32::MAX as u64 / 2 {
        return Err(format!("'{s}' is out of range (64KiB to 2GiB)"));
    }
    Ok(v as u32)
}

/// A number of bytes, any size: `0`, `1048576`, `64KiB`, `16MiB`.
pub fn byte_count(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("MiB") {
        (n, 1024 * 1024)
    } else if let Some(n) = t.strip_suffix("KiB") {
        (n, 1024)
    } else {
        (t, 1)
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a size (e.g. 1048576, 64KiB, 16MiB)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_lists() {
        assert_eq!(port_range("20000-65534"), Ok(20000..=65534));
        assert_eq!(port_range("8080"), Ok(8080..=8080));
        assert!(port_range("9-8").is_err());
        assert!(port_range("0-10").is_err());
        assert!(port_range("x").is_err());
    }

    #[test]
    fn scalars() {
        assert_eq!(port("80"), Ok(80));
        assert!(port("0").is_err());
        assert!(port("70000").is_err());
        assert_eq!(port_or_zero("0"), Ok(0));
        assert_eq!(seconds("0.5"), Ok(Duration::from_millis(500)));
        assert!(seconds("-1").is_err());
        assert_eq!(bytes("16MiB"), Ok(16 << 20));
        assert_eq!(bytes("65536"), Ok(65536));
        assert!(bytes("1").is_err());
    }
}
