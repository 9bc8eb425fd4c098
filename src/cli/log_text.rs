//! The human log line's fields and timestamp, written with the exact text tracing-subscriber's
//! defaults give (`DefaultFields`, `SystemTime`) but without their per-line overhead: each HTTP
//! request logs one line on the server and one on the client, and formatting it was about a
//! tenth of the CPU a keep-alive request costs (docs/benchmarks.md, "HTTP requests").
//!
//! Without colours, a field is `name=value` with the value's `Debug` text: the default visitor
//! builds a styled (empty) `nu_ansi_term` string around every name and `=`, and a `&str` value
//! goes through `str`'s escaping `Debug` character by character. Here a plain name is written
//! as is and a string that needs no escaping is written between quotes at once. Anything else
//! (colours on, the `message`, `r#` and `log.` names, errors, strings with characters that
//! `Debug` escapes) is handed to the default visitor, so the text cannot differ.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};
use tracing_subscriber::fmt::time::FormatTime;

/// Field formatter of the human log line: the text of `DefaultFields`, cheaper to write.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainFields;

impl<'a> MakeVisitor<Writer<'a>> for PlainFields {
    type Visitor = PlainVisitor<'a>;

    fn make_visitor(&self, target: Writer<'a>) -> Self::Visitor {
        PlainVisitor {
            writer: target,
            is_empty: true,
            result: Ok(()),
        }
    }
}

/// Writes one event's or span's fields (see the module comment).
#[derive(Debug)]
pub struct PlainVisitor<'a> {
    writer: Writer<'a>,
    is_empty: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// The separating space before every field but the first.
    fn pad(&mut self) {
        if self.is_empty {
            self.is_empty = false;
        } else {
            self.result = self.writer.write_char(' ');
        }
    }

    /// Whether `field` is written here; the others go to the default visitor.
    fn plain(&self, field: &Field) -> bool {
        let name = field.name();
        !self.writer.has_ansi_escapes() && name != "message" && !name.starts_with("r#")
    }

    /// `log` records' metadata fields, which the default visitor leaves out (no padding
    /// either): the line already shows them.
    fn skipped(field: &Field) -> bool {
        field.name().starts_with("log.")
    }

    /// Lets the default visitor write one field, padding included (it pads unless it is told
    /// the line is empty so far).
    fn delegate(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut visitor);
        self.is_empty = false;
        self.result = visitor.finish();
    }
}

/// True when `str`'s `Debug` writes `s` unchanged between quotes: printable ASCII other than
/// `"` and `\`.
fn debug_is_verbatim(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() || Self::skipped(field) {
            return;
        }
        if !self.plain(field) || !debug_is_verbatim(value) {
            return self.delegate(|v| v.record_str(field, value));
        }
        self.pad();
        let w = &mut self.writer;
        self.result = self.result.and_then(|()| {
            w.write_str(field.name())?;
            w.write_str("=\"")?;
            w.write_str(value)?;
            w.write_char('"')
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.result.is_err() || Self::skipped(field) {
            return;
        }
        if !self.plain(field) {
            return self.delegate(|v| v.record_u64(field, value));
        }
        // The status and duration of every access line: digits without `fmt`'s machinery.
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(value);
        self.pad();
        let w = &mut self.writer;
        self.result = self.result.and_then(|()| {
            w.write_str(field.name())?;
            w.write_char('=')?;
            w.write_str(digits)
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_err() || Self::skipped(field) {
            return;
        }
        self.delegate(|v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() || Self::skipped(field) {
            return;
        }
        if !self.plain(field) {
            return self.delegate(|v| v.record_debug(field, value));
        }
        self.pad();
        let w = &mut self.writer;
        self.result = self.result.and_then(|()| {
            w.write_str(field.name())?;
            w.write_char('=')?;
            write!(w, "{value:?}")
        });
    }
}

impl VisitOutput<fmt::Result> for PlainVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for PlainVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

/// The timestamp of `SystemTime` (`2026-12-01T20:55:03.123456Z`, UTC, microseconds) with the
/// date and time of day formatted once a second per thread rather than on every line.
#[derive(Debug, Clone, Copy, Default)]
pub struct CachedUtcTime;

thread_local! {
    /// The second last formatted on this thread and its `YYYY-MM-DDTHH:MM:SS` text.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

impl FormatTime for CachedUtcTime {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let Ok(since) = SystemTime::now().duration_since(UNIX_EPOCH) else {
            // A clock before 1970: the default formatter knows how to write it.
            return tracing_subscriber::fmt::time::SystemTime.format_time(w);
        };
        let secs = since.as_secs();
        let fresh = SECOND.with_borrow_mut(|(cached, text)| {
            if *cached != secs {
                text.clear();
                if !write_second(text, secs) {
                    return false;
                }
                *cached = secs;
            }
            w.write_str(text).is_ok()
        });
        if !fresh {
            return tracing_subscriber::fmt::time::SystemTime.format_time(w);
        }
        write!(w, ".{:06}Z", since.subsec_micros())
    }
}

/// Writes `YYYY-MM-DDTHH:MM:SS` for `secs` after the epoch; false for a year that is not four
/// digits (written by the default formatter instead, with its sign).
fn write_second(out: &mut String, secs: u64) -> bool {
    let Ok(secs) = i64::try_from(secs) else {
        return false;
    };
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(secs) else {
        return false;
    };
    if !(0..=9999).contains(&t.year()) {
        return false;
    }
    write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::format::DefaultFields;
    use tracing_subscriber::fmt::MakeWriter;

    /// Everything written, shared with the subscriber.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Sink {
        type Writer = Sink;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    /// The same events (fields of every kind, values that need escaping, a span) through the
    /// default field formatter and this one, with `ansi` colours or without.
    fn render(plain: bool, ansi: bool) -> String {
        let sink = Sink::default();
        let builder = tracing_subscriber::fmt()
            .with_writer(sink.clone())
            .with_ansi(ansi)
            .with_target(false)
            .without_time();
        let emit = || {
            let span = tracing::info_span!("session", id = "s1", n = 3u32);
            let _entered = span.enter();
            let path = "/a b?c=d";
            let method = http::Method::GET;
            tracing::info!(
                client = %"laptop",
                %method,
                host = "example.com:8080",
                path = %path,
                status = 200u16,
                ms = 12u64,
                "request"
            );
            tracing::warn!(
                quoted = "say \"hi\"\n",
                tab = "a\tb",
                uni = "héllo",
                "odd {}",
                1
            );
            tracing::error!(
                r#type = "x",
                ok = true,
                f = 1.5f64,
                neg = -3i64,
                "esc \u{1b}[31m"
            );
            let err = std::io::Error::other("boom");
            tracing::info!(error = &err as &(dyn std::error::Error + 'static), "failed");
            tracing::info!(empty = "", "");
            tracing::info!(zero = 0u64, max = u64::MAX, ten = 10u64, "numbers");
        };
        if plain {
            let subscriber = builder.fmt_fields(PlainFields).finish();
            tracing::subscriber::with_default(subscriber, emit);
        } else {
            let subscriber = builder.fmt_fields(DefaultFields::new()).finish();
            tracing::subscriber::with_default(subscriber, emit);
        }
        let bytes = sink.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn fields_read_exactly_as_the_default_formatter_writes_them() {
        for ansi in [false, true] {
            let default = render(false, ansi);
            assert!(default.contains("request"), "{default}");
            assert_eq!(render(true, ansi), default, "ansi {ansi}");
        }
    }

    #[test]
    fn the_timestamp_reads_as_the_default_one() {
        let mut ours = String::new();
        CachedUtcTime
            .format_time(&mut Writer::new(&mut ours))
            .unwrap();
        let mut theirs = String::new();
        tracing_subscriber::fmt::time::SystemTime
            .format_time(&mut Writer::new(&mut theirs))
            .unwrap();
        // Same shape, and the same second unless the two calls straddle one.
        assert_eq!(ours.len(), theirs.len(), "{ours} / {theirs}");
        assert_eq!(ours.as_bytes()[19], b'.');
        assert!(ours.ends_with('Z'));
        assert!(ours[..17] == theirs[..17], "{ours} / {theirs}");
        let mut cached = String::new();
        CachedUtcTime
            .format_time(&mut Writer::new(&mut cached))
            .unwrap();
        assert_eq!(cached.len(), ours.len());
    }

    #[test]
    fn a_second_is_written_as_the_default_formatter_does() {
        for (secs, text) in [
            (0u64, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (1_700_000_000, "2023-11-14T22:13:20"),
            (4_102_444_799, "2099-12-31T23:59:59"),
        ] {
            let mut ours = String::new();
            assert!(write_second(&mut ours, secs));
            assert_eq!(ours, text);
        }
    }
}
