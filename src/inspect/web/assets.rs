//! The page: static HTML, CSS and JavaScript compiled into the binary (no CDN, no build step).

use http::{header, HeaderValue, Response, StatusCode};

use crate::http::body::{full, ProxyBody};

const INDEX: &str = include_str!("../ui/index.html");
const APP: &str = include_str!("../ui/app.js");
const STYLE: &str = include_str!("../ui/style.css");
const ICON: &str = include_str!("../ui/favicon.svg");

/// One of the page's files.
pub(super) fn file(path: &str) -> Response<ProxyBody> {
    let (body, ty) = match path {
        "/" => (INDEX, "text/html; charset=utf-8"),
        "/app.js" => (APP, "text/javascript; charset=utf-8"),
        "/style.css" => (STYLE, "text/css; charset=utf-8"),
        "/favicon.svg" => (ICON, "image/svg+xml"),
        _ => {
            let mut r = Response::new(full("not found\n"));
            *r.status_mut() = StatusCode::NOT_FOUND;
            return r;
        }
    };
    let mut resp = Response::new(full(body));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ty));
    resp
}
