//! A small HTTP/1.1 GET over plain TCP or TLS (rustls with ring), for the discovery
//! document and the JWKS: a timeout, a size cap, no redirects.

use super::jwks::LoadError;
use http_body_util::BodyExt as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Largest document accepted, in bytes.
pub(super) const MAX_BYTES: usize = 1 << 20;
/// Longest a whole GET (connect, TLS, request, body) may take.
pub(super) const TIMEOUT: Duration = Duration::from_secs(10);

/// Fetches documents; holds the TLS settings (built-in roots plus the optional private CA).
pub(super) struct Fetcher {
    tls: tokio_rustls::TlsConnector,
}

impl Fetcher {
    /// A fetcher trusting the Mozilla roots and the certificates of `extra_ca_pem`.
    pub(super) fn new(extra_ca_pem: Option<&[u8]>) -> Result<Self, LoadError> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(pem) = extra_ca_pem {
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem) {
                roots
                    .add(cert.map_err(LoadError::Pem)?)
                    .map_err(LoadError::Certificate)?;
                added += 1;
            }
            if added == 0 {
                return Err(LoadError::NoCertificate);
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(LoadError::Certificate)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// GETs `uri` (`http://` or `https://`) and returns the body of a 2xx answer.
    pub(super) async fn get(&self, uri: &hyper::Uri) -> Result<Vec<u8>, LoadError> {
        tokio::time::timeout(TIMEOUT, self.get_within(uri))
            .await
            .map_err(|_| LoadError::Timeout(TIMEOUT))?
    }

    async fn get_within(&self, uri: &hyper::Uri) -> Result<Vec<u8>, LoadError> {
        let https = uri
            .scheme_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("https"));
        let host = uri.host().ok_or(LoadError::NoHost)?;
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host_header = match uri.port_u16() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        // `host()` keeps the brackets of an IPv6 literal; connecting needs the bare address.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let request = hyper::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(hyper::header::HOST, host_header)
            .header(hyper::header::ACCEPT, "application/json")
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
            .map_err(LoadError::Request)?;
        let tcp = tokio::net::TcpStream::connect((bare, port))
            .await
            .map_err(LoadError::Connect)?;
        if https {
            let name =
                ServerName::try_from(bare.to_string()).map_err(|_| LoadError::BadServerName)?;
            let tls = self.tls.connect(name, tcp).await.map_err(LoadError::Tls)?;
            exchange(tls, request).await
        } else {
            exchange(tcp, request).await
        }
    }
}

/// Sends `request` on `io` (one HTTP/1.1 exchange) and collects a 2xx body.
async fn exchange<S>(
    io: S,
    request: hyper::Request<http_body_util::Empty<hyper::body::Bytes>>,
) -> Result<Vec<u8>, LoadError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(LoadError::Http)?;
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "OIDC fetch connection ended with an error");
        }
    });
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(LoadError::Http)?;
        let status = response.status();
        if !status.is_success() {
            return Err(LoadError::Status(status));
        }
        let body = http_body_util::Limited::new(response.into_body(), MAX_BYTES)
            .collect()
            .await
            .map_err(|_| LoadError::Body)?
            .to_bytes();
        Ok(body.to_vec())
    }
    .await;
    driver.abort();
    result
}
