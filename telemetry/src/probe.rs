//! A `GET` of a service's `/healthz` (or any plain-HTTP URL): the worker's container health
//! check (`worker probe`), and [`get`], which the tests use to scrape `/metrics`.

use http::{Request, Uri};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::time::Duration;

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The URL is not an `http://host:port/path` URL.
    #[error("not an http:// URL with a host and port: {0:?}")]
    Url(String),
    /// No connection, or no answer in time.
    #[error("no answer from {addr}: {reason}")]
    Unreachable {
        /// `host:port`.
        addr: String,
        /// What happened.
        reason: String,
    },
    /// The server answered with an error status.
    #[error("{url} answered {status}")]
    Status {
        /// The URL probed.
        url: String,
        /// The HTTP status.
        status: http::StatusCode,
    },
}

/// `GET url` (plain `http://`, HTTP/1.1) within `timeout`: `Ok` on a 2xx answer.
pub async fn probe(url: &str, timeout: Duration) -> Result<(), ProbeError> {
    let (status, _) = get(url, timeout).await?;
    if status.is_success() {
        Ok(())
    } else {
        Err(ProbeError::Status {
            url: url.to_string(),
            status,
        })
    }
}

/// `GET url` (plain `http://`, HTTP/1.1) within `timeout`: the status and the body (as
/// UTF-8, lossily). Errors: a bad URL, no connection or no whole answer in time.
pub async fn get(url: &str, timeout: Duration) -> Result<(http::StatusCode, String), ProbeError> {
    let bad = || ProbeError::Url(url.to_string());
    let uri: Uri = url.parse().map_err(|_| bad())?;
    if uri.scheme_str() != Some("http") {
        return Err(bad());
    }
    let (Some(host), Some(port)) = (uri.host(), uri.port_u16()) else {
        return Err(bad());
    };
    let addr = format!("{host}:{port}");
    let unreachable = |reason: String| ProbeError::Unreachable {
        addr: addr.clone(),
        reason,
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let request = Request::get(path)
            .header(http::header::HOST, &addr)
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| unreachable(format!("no answer within {timeout:?}")))?
        .map_err(unreachable)
}
