//! CORS for grpc-web: which other origins' browser pages may call the API
//! (`--cors-allow-origin`). Without the flag no cross-origin call is allowed, and a browser
//! page can reach the API only from its own origin (behind the same proxy, say). Tokens travel
//! in the `authorization` header, never in cookies, so credentials are not allowed and `*` is
//! safe where any origin should do. The preflight answers follow the Fetch standard's CORS
//! protocol (<https://fetch.spec.whatwg.org/#http-cors-protocol>), done by `tower-http`.

use http::{header, HeaderName, HeaderValue, Method};
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(3600);

/// Parses an allowed origin as a browser sends it in `Origin`: `scheme://host[:port]` (no
/// path, query or trailing slash), or `*` for any origin.
///
/// # Errors
/// A message naming the value and the expected form.
pub fn parse_origin(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s == "*" {
        return Ok(s.into());
    }
    let expected = "expected an origin like https://ui.example.org or http://localhost:3000, or *";
    let url =
        url::Url::parse(s).map_err(|e| format!("{s:?} is not an origin ({e}): {expected}"))?;
    let origin = url.origin().ascii_serialization();
    if origin != s {
        return Err(format!("{s:?} is not an origin: {expected}"));
    }
    Ok(origin)
}

/// The CORS layer for `origins` (each from [`parse_origin`]); `None` when there are none.
pub fn layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("x-grpc-web"),
                HeaderName::from_static("x-user-agent"),
                HeaderName::from_static("grpc-timeout"),
            ])
            .expose_headers([
                HeaderName::from_static("grpc-status"),
                HeaderName::from_static("grpc-message"),
                HeaderName::from_static("grpc-status-details-bin"),
            ])
            .max_age(PREFLIGHT_MAX_AGE),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        for ok in [
            "*",
            "https://ui.example.org",
            "http://localhost:3000",
            "http://[::1]:8080",
        ] {
            assert_eq!(parse_origin(ok).unwrap(), ok);
        }
        for bad in [
            "ui.example.org",
            "https://ui.example.org/",
            "https://ui.example.org/app",
            "https://ui.example.org?x=1",
            "https://UI.example.org",
            "",
            "null",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad:?}");
        }
    }
}
