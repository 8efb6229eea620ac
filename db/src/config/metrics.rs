//! Metrics: `--metrics-listen ADDR` ([`MetricsArgs`], env `METRICS_LISTEN`), the one flag
//! with which `sim-api` and `worker` serve Prometheus metrics. Off by default.

use std::net::SocketAddr;

/// The metrics flag: flatten this into a service's flags (`#[command(flatten)]`).
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics (`GET /metrics`) and a liveness check (`GET /healthz`) over
    /// plain HTTP on this address, e.g. 127.0.0.1:9464; port 0 picks a free port (printed
    /// as `metrics on ADDR`). Off when unset, empty or `off`. The endpoint has no
    /// authentication: bind it to an address only the scraper reaches.
    #[arg(long, env = "METRICS_LISTEN", value_name = "ADDR", value_parser = parse_listen)]
    metrics_listen: Option<Listen>,
}

/// A value of `--metrics-listen`: an address, or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listen {
    Off,
    At(SocketAddr),
}

fn parse_listen(s: &str) -> Result<Listen, String> {
    match s.trim() {
        "" | "off" => Ok(Listen::Off),
        addr => addr
            .parse()
            .map(Listen::At)
            .map_err(|_| format!("{addr:?} is not an address such as 127.0.0.1:9464 (or off)")),
    }
}

impl MetricsArgs {
    /// Where to serve metrics; `None` when they are off.
    pub fn addr(&self) -> Option<SocketAddr> {
        match self.metrics_listen {
            Some(Listen::At(a)) => Some(a),
            Some(Listen::Off) | None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        metrics: MetricsArgs,
    }

    fn addr(args: &[&str]) -> Result<Option<SocketAddr>, clap::Error> {
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .map(|c| c.metrics.addr())
    }

    #[test]
    fn off_by_default_and_when_empty_or_off() {
        assert!(matches!(addr(&[]), Ok(None)));
        assert!(matches!(addr(&["--metrics-listen", ""]), Ok(None)));
        assert!(matches!(addr(&["--metrics-listen", "off"]), Ok(None)));
        assert!(matches!(
            addr(&["--metrics-listen", "127.0.0.1:0"]),
            Ok(Some(a)) if a.port() == 0
        ));
        assert!(addr(&["--metrics-listen", "localhost:9464"]).is_err());
    }
}
