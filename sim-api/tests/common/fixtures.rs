//! What the sim-api tests and benches both set up: a local user and the builtin-engine
//! submission they run. Included by `tests/common` and by `benches/support`.

use db::enums::{AuthProvider, Role};
use db::models::NewUser;
use db::testing::TestDb;
use proto::v1::SubmitRequest;

/// Creates the local user `name` with `password` (an admin when `admin`) through the db
/// crate; its id.
pub async fn create_local_user(db: &TestDb, name: &str, password: &str, admin: bool) -> i64 {
    let hash = db::password::hash(password).unwrap();
    let mut c = db.conn().await;
    let user = NewUser {
        username: name,
        auth_provider: AuthProvider::Local,
        password_hash: Some(&hash),
        role: if admin { Role::Admin } else { Role::User },
    };
    db::users::create(&mut c, &user).await.unwrap().id
}

/// A submission `title` for the builtin engine (a 150 MeV beam in the editor's JSON), direct,
/// of `ntasks` tasks and `primaries` primaries in all.
pub fn builtin_submit(title: &str, ntasks: i32, primaries: i64) -> SubmitRequest {
    SubmitRequest {
        title: title.into(),
        sim_type: proto::v1::SimType::Builtin as i32,
        input: Some(proto::v1::submit_request::Input::EditorJson(
            r#"{"beam":{"energy_mev":150}}"#.into(),
        )),
        ntasks,
        primaries,
        platform: None,
    }
}
