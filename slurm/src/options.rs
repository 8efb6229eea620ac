//! sbatch options as users and operators give them, checked against an allow-list.
//!
//! An option is one string of the form `--name=value` or, for a flag, `--name`. Short forms
//! (`-t 10`) and the two-word form (`--time 10`) are refused, so that one stored string is
//! always one argument of `sbatch`. Options that would take the job out of the batch
//! component's hands (`--array`, `--dependency`, `--output`, `--chdir`, `--wrap`, `--export`,
//! `--uid`, …) are not on the list. Values are passed to `sbatch` as a single argument, never
//! through a shell string; over SSH each argument is quoted (see [`crate::transport`]). The
//! value alphabet below is a second line of defence, not the first.

use std::fmt;
use std::str::FromStr;

/// Longest accepted option string, in bytes.
pub const MAX_OPTION_LEN: usize = 256;

/// Whether an allowed option takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// `--name=value` only.
    Value,
    /// `--name` only.
    Flag,
    /// Either form (`--exclusive`, `--exclusive=user`).
    Either,
}

/// The options a submission or a cluster's defaults may carry, from `man sbatch` (SLURM 22.05).
const ALLOWED: &[(&str, Takes)] = &[
    ("account", Takes::Value),
    ("begin", Takes::Value),
    ("comment", Takes::Value),
    ("constraint", Takes::Value),
    ("cpus-per-task", Takes::Value),
    ("deadline", Takes::Value),
    ("exclusive", Takes::Either),
    ("gres", Takes::Value),
    ("gpus", Takes::Value),
    ("hint", Takes::Value),
    ("job-name", Takes::Value),
    ("licenses", Takes::Value),
    ("mail-type", Takes::Value),
    ("mail-user", Takes::Value),
    ("mem", Takes::Value),
    ("mem-per-cpu", Takes::Value),
    ("nice", Takes::Value),
    ("no-requeue", Takes::Flag),
    ("partition", Takes::Value),
    ("qos", Takes::Value),
    ("requeue", Takes::Flag),
    ("reservation", Takes::Value),
    ("time", Takes::Value),
    ("time-min", Takes::Value),
    ("tmp", Takes::Value),
];

/// Why an option string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// Empty, too long, or holding whitespace or control characters.
    #[error(
        "an sbatch option must be 1 to {MAX_OPTION_LEN} bytes without spaces or control characters"
    )]
    Malformed,
    /// Not of the form `--name` or `--name=value`.
    #[error("an sbatch option must look like --name=value (short options and separate values are not accepted)")]
    NotLongForm,
    /// The name is not on the allow-list.
    #[error("sbatch option --{0} is not allowed")]
    NotAllowed(String),
    /// The option needs `=value`.
    #[error("sbatch option --{0} needs a value (--{0}=VALUE)")]
    MissingValue(String),
    /// The option is a flag and takes no value.
    #[error("sbatch option --{0} takes no value")]
    UnexpectedValue(String),
    /// The value holds a character outside the accepted alphabet.
    #[error("the value of sbatch option --{name} may hold only letters, digits and . _ : , = + @ / % & | ( ) * - (found {found:?})")]
    BadValue {
        /// The option's name.
        name: String,
        /// The first refused character.
        found: char,
    },
}

/// One checked sbatch option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbatchOption {
    name: String,
    value: Option<String>,
}

impl SbatchOption {
    /// The option's name, without the leading dashes.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The option's value, if it has one.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// The single `sbatch` argument: `--name=value` or `--name`.
    pub fn to_arg(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for SbatchOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "--{}={v}", self.name),
            None => write!(f, "--{}", self.name),
        }
    }
}

fn value_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._:,=+@/%&|()*-".contains(c)
}

impl FromStr for SbatchOption {
    type Err = OptionError;

    fn from_str(s: &str) -> Result<Self, OptionError> {
        if s.is_empty()
            || s.len() > MAX_OPTION_LEN
            || s.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(OptionError::Malformed);
        }
        let body = s.strip_prefix("--").ok_or(OptionError::NotLongForm)?;
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
            return Err(OptionError::NotLongForm);
        }
        let takes = ALLOWED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .ok_or_else(|| OptionError::NotAllowed(name.to_owned()))?;
        match (takes, value) {
            (Takes::Value, None) | (Takes::Value | Takes::Either, Some("")) => {
                return Err(OptionError::MissingValue(name.to_owned()))
            }
            (Takes::Flag, Some(_)) => return Err(OptionError::UnexpectedValue(name.to_owned())),
            _ => {}
        }
        if let Some(found) = value.and_then(|v| v.chars().find(|c| !value_char_ok(*c))) {
            return Err(OptionError::BadValue {
                name: name.to_owned(),
                found,
            });
        }
        Ok(Self {
            name: name.to_owned(),
            value: value.map(str::to_owned),
        })
    }
}

/// Checks every option of a list; the first refused one is the error.
pub fn parse_all<S: AsRef<str>>(options: &[S]) -> Result<Vec<SbatchOption>, OptionError> {
    options.iter().map(|o| o.as_ref().parse()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_usual_options() {
        for ok in [
            "--time=01:00:00",
            "--mem=4G",
            "--partition=debug",
            "--exclusive",
            "--exclusive=user",
            "--requeue",
            "--constraint=a&b|c",
            "--mail-user=a.b@example.org",
            "--gres=gpu:2",
        ] {
            let o: SbatchOption = ok.parse().unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(o.to_arg(), ok);
        }
    }

    #[test]
    fn refuses_hostile_and_foreign_options() {
        use OptionError::*;
        let cases: &[(&str, OptionError)] = &[
            ("", Malformed),
            ("--time=1; rm -rf /", Malformed),
            ("--time=1\nid", Malformed),
            ("--comment=a\0b", Malformed),
            ("-t", NotLongForm),
            ("time=10", NotLongForm),
            ("--TIME=10", NotLongForm),
            ("--wrap=id", NotAllowed("wrap".into())),
            ("--output=/etc/passwd", NotAllowed("output".into())),
            ("--array=1-1000", NotAllowed("array".into())),
            ("--dependency=afterok:1", NotAllowed("dependency".into())),
            ("--export=ALL,LD_PRELOAD=/x.so", NotAllowed("export".into())),
            ("--chdir=/", NotAllowed("chdir".into())),
            ("--uid=0", NotAllowed("uid".into())),
            ("--time", MissingValue("time".into())),
            ("--time=", MissingValue("time".into())),
            ("--requeue=yes", UnexpectedValue("requeue".into())),
            (
                "--comment=$(id)",
                BadValue {
                    name: "comment".into(),
                    found: '$',
                },
            ),
            (
                "--comment=`id`",
                BadValue {
                    name: "comment".into(),
                    found: '`',
                },
            ),
            (
                "--job-name=a;b",
                BadValue {
                    name: "job-name".into(),
                    found: ';',
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                input.parse::<SbatchOption>().as_ref(),
                Err(want),
                "{input:?}"
            );
        }
        assert!(parse_all(&["--time=10", "--wrap=x"]).is_err());
        assert_eq!(parse_all(&["--time=10", "--mem=1G"]).unwrap().len(), 2);
    }

    #[test]
    fn a_long_option_is_malformed() {
        let long = format!("--comment={}", "a".repeat(MAX_OPTION_LEN));
        assert_eq!(long.parse::<SbatchOption>(), Err(OptionError::Malformed));
    }
}
