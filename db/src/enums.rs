//! Every state and kind in the schema, as Rust enums stored as CHECK-constrained TEXT.
//!
//! Why TEXT + CHECK rather than Postgres enum types: adding a value to a CHECK is an ordinary,
//! transactional, reversible migration (a `down.sql` can drop a value again, which
//! `ALTER TYPE … ADD VALUE` cannot), and the columns stay readable from plain `psql`.

use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Text;
use std::io::Write;

/// A string that names none of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}; expected one of: {expected}")]
pub struct UnknownVariant {
    /// Which enum was being parsed, e.g. "job state".
    pub kind: &'static str,
    /// The rejected input.
    pub value: String,
    /// The accepted spellings, comma-separated.
    pub expected: String,
}

macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $name:ident ($kind:literal) {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
            serde::Serialize, serde::Deserialize,
        )]
        #[diesel(sql_type = Text)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownVariant;
            /// Parses the stored spelling, ignoring ASCII case.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $( if s.eq_ignore_ascii_case($text) { return Ok($name::$variant); } )+
                Err(UnknownVariant {
                    kind: $kind,
                    value: s.to_string(),
                    expected: [$($text),+].join(", "),
                })
            }
        }

        impl ToSql<Text, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                out.write_all(self.as_str().as_bytes())?;
                Ok(IsNull::No)
            }
        }

        impl FromSql<Text, Pg> for $name {
            fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
                let s = std::str::from_utf8(value.as_bytes())?;
                Ok(s.parse::<$name>()?)
            }
        }
    };
}

text_enum! {
    /// Who vouches for a user's identity.
    AuthProvider ("auth provider") {
        /// A username and password stored here.
        Local => "local",
        /// An OIDC identity from Keycloak.
        Keycloak => "keycloak",
    }
}

text_enum! {
    /// What a user may do: an admin sees and manages everyone's simulations.
    Role ("role") {
        /// An ordinary user.
        User => "user",
        /// An administrator.
        Admin => "admin",
    }
}

text_enum! {
    /// The two kinds of auth token.
    TokenKind ("token kind") {
        /// A short-lived token sent with each request.
        Access => "access",
        /// A longer-lived token that buys a new access token once.
        Refresh => "refresh",
    }
}

text_enum! {
    /// Where a simulation's tasks run.
    Platform ("platform") {
        /// On the workers' own hosts.
        Direct => "direct",
        /// As a SLURM array job on a cluster.
        Batch => "batch",
    }
}

text_enum! {
    /// How the input was given.
    InputType ("input type") {
        /// JSON from the 3-D editor.
        Editor => "editor",
        /// A map of the simulator's own input files.
        Files => "files",
    }
}

text_enum! {
    /// Which simulator runs the tasks.
    SimType ("simulator type") {
        /// The built-in proton pencil-beam engine.
        Builtin => "builtin",
        /// SHIELD-HIT12A.
        Shieldhit => "shieldhit",
        /// TOPAS.
        Topas => "topas",
        /// FLUKA.
        Fluka => "fluka",
    }
}

text_enum! {
    /// A simulation's state: `PENDING → RUNNING → MERGING → COMPLETED`, or `FAILED`/`CANCELED`.
    JobState ("job state") {
        /// Submitted; no task has started.
        Pending => "PENDING",
        /// At least one task has started.
        Running => "RUNNING",
        /// Every task has ended; final results are being written.
        Merging => "MERGING",
        /// Final results are stored.
        Completed => "COMPLETED",
        /// Every task failed, or the merge did.
        Failed => "FAILED",
        /// A user or operator canceled it.
        Canceled => "CANCELED",
    }
}

impl JobState {
    /// The states no transition leaves: the one list of them.
    pub const TERMINAL: [JobState; 3] = [JobState::Completed, JobState::Failed, JobState::Canceled];
    /// [`JobState::TERMINAL`] as an SQL list, for `job_state [NOT] IN …` (a test keeps the
    /// two equal).
    pub const TERMINAL_SQL: &'static str = "('COMPLETED', 'FAILED', 'CANCELED')";

    /// Whether no further transition is allowed.
    pub fn is_terminal(self) -> bool {
        Self::TERMINAL.contains(&self)
    }
}

text_enum! {
    /// A task's state: `PENDING → RUNNING → COMPLETED`, or `FAILED`/`CANCELED`.
    TaskState ("task state") {
        /// Waiting in the queue.
        Pending => "PENDING",
        /// Claimed by a worker under a lease.
        Running => "RUNNING",
        /// Finished, with results.
        Completed => "COMPLETED",
        /// Out of attempts; `last_error` says why.
        Failed => "FAILED",
        /// Its simulation was canceled.
        Canceled => "CANCELED",
    }
}

impl TaskState {
    /// The states of a task that has not ended: waiting or running.
    pub const OPEN: [TaskState; 2] = [TaskState::Pending, TaskState::Running];
    /// [`TaskState::OPEN`] as an SQL list, for `task_state IN …` (a test keeps the two equal).
    pub const OPEN_SQL: &'static str = "('PENDING', 'RUNNING')";

    /// Whether no further transition is allowed.
    pub fn is_terminal(self) -> bool {
        !Self::OPEN.contains(&self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_is_case_insensitive_and_round_trips() {
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>().unwrap(), *s);
            assert_eq!(s.as_str().to_lowercase().parse::<JobState>().unwrap(), *s);
        }
        let err = "DONE".parse::<JobState>().unwrap_err();
        assert!(err.to_string().contains("PENDING, RUNNING"), "{err}");
    }

    #[test]
    fn terminal_states() {
        let sql = |states: &[&str]| {
            let quoted: Vec<String> = states.iter().map(|s| format!("'{s}'")).collect();
            format!("({})", quoted.join(", "))
        };
        assert_eq!(
            JobState::TERMINAL_SQL,
            sql(&JobState::TERMINAL.map(|s| s.as_str()))
        );
        assert_eq!(
            TaskState::OPEN_SQL,
            sql(&TaskState::OPEN.map(|s| s.as_str()))
        );
        assert!(JobState::Canceled.is_terminal());
        assert!(!JobState::Merging.is_terminal());
        assert!(TaskState::Failed.is_terminal());
        assert!(!TaskState::Running.is_terminal());
    }
}
