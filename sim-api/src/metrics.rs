//! The API's own metric, registered beside the shared ones of `telemetry` when
//! `--metrics-listen` is set: `sim_api_rpc_seconds{method, code}`, a histogram of RPC
//! latency by method and gRPC status code.
//!
//! [`RpcMetricsLayer`] times each call from its request to its response headers. The code
//! is the response's `grpc-status` header: a call that fails before its first message
//! answers with its status in the headers (tonic's trailers-only response), and one that
//! answers with a message is counted as `Ok` (a stream, such as `Watch`, is timed to its
//! first response; an error after that, in its trailers, is not seen). Only the methods of
//! the services served (from their descriptor sets) are labelled by name; any other path is
//! `other`, so that clients cannot create labels.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use prost::Message as _;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// The labels of `sim_api_rpc_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// The gRPC path (`/sim.v1.SimulationService/Submit`), or `other`.
    pub method: String,
    /// The gRPC status code's name (`Ok`, `InvalidArgument`, `Unavailable`, …).
    pub code: String,
}

type RpcFamily = Family<RpcLabels, Histogram, fn() -> Histogram>;

/// RPC latency by method and status code.
#[derive(Debug, Clone)]
pub struct RpcMetrics {
    seconds: RpcFamily,
    methods: Arc<HashSet<String>>,
}

fn histogram() -> Histogram {
    // 0.25 ms to ~8 s in factors of 2.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Default for RpcMetrics {
    fn default() -> Self {
        let mut methods = HashSet::new();
        for set in [
            proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ] {
            let Ok(files) = prost_types::FileDescriptorSet::decode(set) else {
                continue;
            };
            for file in files.file {
                let package = file.package.unwrap_or_default();
                for service in file.service {
                    let name = service.name.unwrap_or_default();
                    for m in service.method {
                        let method = m.name.unwrap_or_default();
                        methods.insert(format!("/{package}.{name}/{method}"));
                    }
                }
            }
        }
        methods.insert("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo".into());
        // Every method's `Ok` series exists from the start (at 0), so that a rate over it is
        // 0 rather than absent before a method's first call.
        let seconds: RpcFamily = Family::new_with_constructor(histogram);
        for method in &methods {
            let _ = seconds.get_or_create(&RpcLabels {
                method: method.clone(),
                code: "Ok".into(),
            });
        }
        Self {
            seconds,
            methods: Arc::new(methods),
        }
    }
}

impl RpcMetrics {
    /// Adds the histogram to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "sim_api_rpc_seconds",
            "RPC latency to the response headers, by method and gRPC status code",
            self.seconds.clone(),
        );
    }

    /// Counts one call of `path` that answered `code` after `seconds`.
    pub fn observe(&self, path: &str, code: tonic::Code, seconds: f64) {
        let method = if self.methods.contains(path) {
            path.to_string()
        } else {
            "other".to_string()
        };
        let labels = RpcLabels {
            method,
            code: format!("{code:?}"),
        };
        self.seconds.get_or_create(&labels).observe(seconds);
    }
}

/// A tower layer that times every call into [`RpcMetrics`].
#[derive(Debug, Clone)]
pub struct RpcMetricsLayer(pub Arc<RpcMetrics>);

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = Timed<S>;

    fn layer(&self, inner: S) -> Timed<S> {
        Timed {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// The service of [`RpcMetricsLayer`].
#[derive(Debug, Clone)]
pub struct Timed<S> {
    inner: S,
    metrics: Arc<RpcMetrics>,
}

impl<S, B, RB> tower::Service<http::Request<B>> for Timed<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_string();
        let started = Instant::now();
        let call = self.inner.call(req);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let result = call.await;
            let code = match &result {
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .map_or(tonic::Code::Ok, |v| tonic::Code::from_bytes(v.as_bytes())),
                Err(_) => tonic::Code::Unknown,
            };
            metrics.observe(&path, code, started.elapsed().as_secs_f64());
            result
        })
    }
}
