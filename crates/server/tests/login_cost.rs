//! Every failed sign-in costs one Argon2 verification, whatever the reason: an unknown or
//! malformed e-mail is checked against a dummy hash, so timing does not tell accounts apart.
//! Runs core's sign-in against the real SQLite store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use portcullis_core::email::Email;
use portcullis_core::ids::UserId;
use portcullis_core::login::{verify_credentials, FailureReason, LoginError};
use portcullis_core::model::User;
use portcullis_core::password::{normalize, PasswordHasher};
use portcullis_core::store::UserStore;

#[tokio::test]
async fn every_outcome_costs_exactly_one_verification() {
    let (_dir, store) = common::temp_store().await;
    // Small Argon2 parameters keep the test fast; the count is what is checked.
    let hasher = PasswordHasher::with_params(2, 1024, 1, 1).unwrap();
    let hash = hasher
        .hash(normalize("correct horse battery staple"))
        .await
        .unwrap();
    for (name, disabled) in [("alice", false), ("dave", true)] {
        let email = Email::parse(&format!("{name}@example.com")).unwrap();
        let user = User {
            id: UserId::generate(),
            email: email.as_str().to_owned(),
            email_key: email.key().to_owned(),
            email_verified: false,
            password_hash: hash.clone(),
            disabled,
            created_at: 0,
            device_epoch: 0,
            password_changed_at: None,
            password_version: 0,
        };
        store.create_user(&user).await.unwrap();
    }
    let cases = [
        ("alice@example.com", "correct horse battery staple", None),
        (
            "alice@example.com",
            "wrong horse battery staple",
            Some(FailureReason::WrongPassword),
        ),
        (
            "nobody@example.com",
            "correct horse battery staple",
            Some(FailureReason::UnknownUser),
        ),
        (
            "not an e-mail",
            "correct horse battery staple",
            Some(FailureReason::MalformedEmail),
        ),
        ("", "", Some(FailureReason::MalformedEmail)),
        (
            "dave@example.com",
            "correct horse battery staple",
            Some(FailureReason::Disabled),
        ),
        (
            "dave@example.com",
            "wrong horse battery staple",
            Some(FailureReason::WrongPassword),
        ),
    ];
    for (email, password, want) in cases {
        let before = hasher.verifications();
        let got = verify_credentials(&store, &hasher, email, password).await;
        assert_eq!(
            hasher.verifications() - before,
            1,
            "{email:?}: Argon2 runs once"
        );
        match (got, want) {
            (Ok(u), None) => assert_eq!(u.email, email),
            (Err(LoginError::Failed(r, _)), Some(w)) => assert_eq!(r, w, "{email:?}"),
            (other, want) => panic!("{email:?}: got {other:?}, wanted {want:?}"),
        }
    }
}
