//! Tests of the connection settings, the database flags and the duration syntax.

use super::*;
use clap::Parser as _;
use std::time::Duration;

fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |k| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    }
}

#[test]
fn url_wins_over_parts() {
    let c = DbConfig::from_lookup(lookup(&[
        ("DATABASE_URL", "postgres://a:secret@h:1/d"),
        ("DB_HOST", "other"),
    ]))
    .unwrap();
    assert_eq!(c.url_with_password(), "postgres://a:secret@h:1/d");
    assert_eq!(c.to_string(), "postgres://a:***@h:1/d");
    assert!(!format!("{c:?}").contains("secret"));
}

#[test]
fn parts_are_encoded_and_redacted() {
    let c = DbConfig::from_lookup(lookup(&[
        ("DB_HOST", "db.example"),
        ("DB_PORT", "6543"),
        ("DB_USER", "sim"),
        ("DB_PASSWORD", "p@ss:w/rd"),
        ("DB_NAME", "sims"),
    ]))
    .unwrap();
    assert_eq!(
        c.url_with_password(),
        "postgres://sim:p%40ss%3Aw%2Frd@db.example:6543/sims"
    );
    assert_eq!(c.to_string(), "postgres://sim:***@db.example:6543/sims");
    assert_eq!(c.dbname(), "sims");
}

#[test]
fn special_characters_in_user_password_and_name_round_trip() {
    let c = DbConfig::from_parts(&DbParts {
        user: Some("an na@x".into()),
        password: Some("p w?#%&=+/é".into()),
        dbname: Some("my db/ü?x".into()),
        ..DbParts::default()
    })
    .unwrap();
    let url = url::Url::parse(c.url_with_password()).unwrap();
    let decode = |s: &str| percent_decode_str(s).decode_utf8().unwrap().into_owned();
    assert_eq!(decode(url.username()), "an na@x");
    assert_eq!(decode(url.password().unwrap()), "p w?#%&=+/é");
    assert_eq!(url.host_str(), Some(DEFAULT_DB_HOST));
    assert_eq!(url.port(), Some(DEFAULT_DB_PORT));
    assert_eq!(c.dbname(), "my db/ü?x");
    assert!(!c.to_string().contains("p w") && !format!("{c:?}").contains("p%20w"));
    assert_eq!(
        c.to_string(),
        "postgres://an%20na%40x:***@127.0.0.1:5432/my%20db%2F%C3%BC%3Fx"
    );
}

#[test]
fn defaults_fill_unset_parts() {
    let c = DbConfig::from_lookup(lookup(&[])).unwrap();
    assert_eq!(
        c.url_with_password(),
        "postgres://postgres@127.0.0.1:5432/simulations"
    );
}

#[test]
fn ipv6_hosts_get_brackets_and_bad_hosts_are_refused() {
    let c = DbConfig::from_lookup(lookup(&[("DB_HOST", "::1"), ("DB_NAME", "d")])).unwrap();
    assert_eq!(c.url_with_password(), "postgres://postgres@[::1]:5432/d");
    for bad in ["a b", "h@x", "h?x", "h#x"] {
        let e = DbConfig::from_lookup(lookup(&[("DB_HOST", bad)])).unwrap_err();
        assert!(e.to_string().contains("is not a host name"), "{bad}: {e}");
    }
}

#[test]
fn socket_dir_becomes_the_encoded_host() {
    let c = DbConfig::from_lookup(lookup(&[("DB_SOCKET_DIR", "/var/run/postgresql")])).unwrap();
    assert_eq!(
        c.url_with_password(),
        "postgres://postgres@%2Fvar%2Frun%2Fpostgresql:5432/simulations"
    );
    assert_eq!(c.dbname(), "simulations");
    // A host starting with / is a socket directory too; the socket directory wins.
    let h = DbConfig::from_lookup(lookup(&[("DB_HOST", "/tmp"), ("DB_PASSWORD", "s")])).unwrap();
    assert_eq!(
        h.url_with_password(),
        "postgres://postgres:s@%2Ftmp:5432/simulations"
    );
    assert_eq!(
        h.to_string(),
        "postgres://postgres:***@%2Ftmp:5432/simulations"
    );
    let both = DbConfig::from_lookup(lookup(&[("DB_HOST", "h"), ("DB_SOCKET_DIR", "/s")])).unwrap();
    assert_eq!(
        both.url_with_password(),
        "postgres://postgres@%2Fs:5432/simulations"
    );
}

#[test]
fn bad_port_and_scheme_are_rejected() {
    assert!(DbConfig::from_lookup(lookup(&[("DB_PORT", "x")])).is_err());
    assert!(DbConfig::from_url("mysql://x").is_err());
}

#[test]
fn query_password_is_redacted() {
    assert_eq!(
        redact("postgres://u@h/d?password=hunter2&sslmode=disable"),
        "postgres://u@h/d?password=***&sslmode=disable"
    );
    assert_eq!(redact("postgres://h/d"), "postgres://h/d");
    let c = DbConfig::from_url("postgres://u@h:6000/d?sslmode=disable&password=hunter2").unwrap();
    assert_eq!(
        c.to_string(),
        "postgres://u@h:6000/d?sslmode=disable&password=***"
    );
}

#[test]
fn urls_only_libpq_reads_are_kept_and_redacted() {
    let c = DbConfig::from_url("postgres://u:secret@h1:5432,h2:5433/db").unwrap();
    assert_eq!(
        c.url_with_password(),
        "postgres://u:secret@h1:5432,h2:5433/db"
    );
    assert_eq!(c.to_string(), "postgres://u:***@h1:5432,h2:5433/db");
    assert_eq!(c.dbname(), "db");
    assert_eq!(
        c.with_dbname("x y").url_with_password(),
        "postgres://u:secret@h1:5432,h2:5433/x%20y"
    );
}

#[test]
fn with_dbname_keeps_server_and_query() {
    for (url, dbname, expected) in [
        (
            "postgres://u:p@h:5/old?host=%2Ftmp",
            "new db",
            "postgres://u:p@h:5/new%20db?host=%2Ftmp",
        ),
        ("postgres://u@h", "x", "postgres://u@h/x"),
    ] {
        let c = DbConfig::from_url(url).unwrap();
        assert_eq!(c.with_dbname(dbname).url_with_password(), expected, "{url}");
    }
}

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    db: DbArgs,
}

#[test]
fn flags_win_over_the_environment_and_defaults() {
    let cli = Cli::try_parse_from([
        "x",
        "--db-host",
        "flag.example",
        "--db-password",
        "pw:1",
        "--db-name",
        "n",
    ])
    .unwrap();
    let env = lookup(&[
        ("DB_HOST", "env.example"),
        ("DB_USER", "envuser"),
        ("DB_PORT", "7"),
    ]);
    let c = cli.db.config_with(env).unwrap();
    assert_eq!(
        c.url_with_password(),
        "postgres://envuser:pw%3A1@flag.example:7/n"
    );
    assert!(!format!("{:?}", cli.db).contains("pw:1"));
    let url = Cli::try_parse_from(["x", "--database-url", "postgres://u:topsecret@h/d"]).unwrap();
    assert!(!format!("{:?}", url.db).contains("topsecret"));
    assert_eq!(
        url.db.config_with(lookup(&[])).unwrap().to_string(),
        "postgres://u:***@h/d"
    );
    // An empty flag or variable counts as unset.
    let empty = Cli::try_parse_from(["x", "--database-url", ""]).unwrap();
    let c = empty
        .db
        .config_with(lookup(&[("DATABASE_URL", ""), ("DB_NAME", "e")]))
        .unwrap();
    assert_eq!(c.dbname(), "e");
}

#[test]
fn help_never_shows_the_secrets_values() {
    use clap::CommandFactory as _;
    let cmd = Cli::command();
    for arg in cmd.get_arguments() {
        let secret = matches!(arg.get_id().as_str(), "database_url" | "db_password");
        assert_eq!(arg.is_hide_env_values_set(), secret, "{}", arg.get_id());
        assert!(arg.get_default_values().is_empty(), "{}", arg.get_id());
    }
    let help = Cli::command().render_long_help().to_string();
    assert!(help.contains("--database-url <URL>"), "{help}");
    assert!(help.contains("--db-socket-dir <DIR>"), "{help}");
}

#[test]
fn durations_take_units_or_seconds() {
    let d = |s| parse_duration(s).unwrap();
    assert_eq!(d("30s"), Duration::from_secs(30));
    assert_eq!(d("500ms"), Duration::from_millis(500));
    assert_eq!(d("15m"), Duration::from_secs(15 * 60));
    assert_eq!(d("7d"), Duration::from_secs(7 * 24 * 3600));
    assert_eq!(d("1h 30m"), Duration::from_secs(90 * 60));
    assert_eq!(d(" 45 "), Duration::from_secs(45));
    assert_eq!(d("0"), Duration::ZERO);
    assert_eq!(d("0.25"), Duration::from_millis(250));
    for bad in ["", "-5", "-1s", "5 parsecs", "1.2.3", "s"] {
        let e = parse_duration(bad).unwrap_err();
        assert!(e.contains("e.g. 30s"), "{bad:?}: {e}");
    }
    assert!(parse_duration("-5").unwrap_err().contains("negative"));
}

#[test]
fn formatted_defaults_parse_back() {
    for d in [
        Duration::ZERO,
        Duration::from_millis(500),
        Duration::from_secs(30),
        Duration::from_secs(15 * 60),
        Duration::from_secs(7 * 24 * 3600),
    ] {
        assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }
}

#[test]
fn application_name_is_added_once_and_kept_secret_free() {
    // A name the URL already sets wins; a query keeps its other parameters.
    for (url, name, expected) in [
        (
            "postgres://a:secret@h:1/d",
            "sim-api",
            "postgres://a:secret@h:1/d?application_name=sim-api",
        ),
        (
            "postgres://h/d?application_name=mine",
            "worker",
            "postgres://h/d?application_name=mine",
        ),
        (
            "postgres://h/d?sslmode=disable",
            "worker",
            "postgres://h/d?sslmode=disable&application_name=worker",
        ),
    ] {
        let c = DbConfig::from_url(url).unwrap();
        assert_eq!(
            c.with_application_name(name).url_with_password(),
            expected,
            "{url}"
        );
    }
    let named = DbConfig::from_url("postgres://a:secret@h:1/d")
        .unwrap()
        .with_application_name("sim-api");
    assert_eq!(
        named.to_string(),
        "postgres://a:***@h:1/d?application_name=sim-api"
    );
}
