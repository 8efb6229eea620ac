//! Oversized requests answer RESOURCE_EXHAUSTED. tonic refuses a message over
//! `max_decoding_message_size` before any handler runs, as OUT_OF_RANGE in a trailers-only
//! response; this layer rewrites exactly that status, leaving every other one alone.

use http::header::HeaderValue;

const OUT_OF_RANGE: &str = "11";
const RESOURCE_EXHAUSTED: &str = "8";
/// The start of tonic's message for a request over the size limit.
const TOO_LARGE: &str = "Error, decoded message length too large";

/// Rewrites tonic's OUT_OF_RANGE for an oversized request to RESOURCE_EXHAUSTED, with a
/// message that names the limit.
pub fn remap<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let oversized = headers
        .get("grpc-status")
        .is_some_and(|s| s == OUT_OF_RANGE)
        && headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .is_some_and(|m| percent_decoded_starts_with(m, TOO_LARGE));
    if oversized {
        headers.insert("grpc-status", HeaderValue::from_static(RESOURCE_EXHAUSTED));
        headers.insert(
            "grpc-message",
            HeaderValue::from_static("the request is larger than the server's --max-request-bytes"),
        );
    }
    response
}

/// grpc-message is percent-encoded; spaces may appear as `%20`.
fn percent_decoded_starts_with(message: &str, prefix: &str) -> bool {
    message.replace("%20", " ").starts_with(prefix)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn response(status: &'static str, message: &'static str) -> http::Response<()> {
        let mut r = http::Response::new(());
        r.headers_mut()
            .insert("grpc-status", HeaderValue::from_static(status));
        r.headers_mut()
            .insert("grpc-message", HeaderValue::from_static(message));
        r
    }

    #[test]
    fn only_the_size_refusal_is_rewritten() {
        let r = remap(response(
            "11",
            "Error,%20decoded%20message%20length%20too%20large: found 10 bytes, the limit is: 4",
        ));
        assert_eq!(r.headers()["grpc-status"], "8");
        let r = remap(response("11", "page out of range"));
        assert_eq!(r.headers()["grpc-status"], "11");
        let r = remap(response("3", "Error, decoded message length too large"));
        assert_eq!(r.headers()["grpc-status"], "3");
    }
}
