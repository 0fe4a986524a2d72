//! People's accounts: passwords (Argon2id), sign-in sessions and the sign-in throttle.
//!
//! What this module must never do: keep or hand out a password or a session cookie in any form
//! but the ones below (a PHC hash beside the log; the SHA-256 of a cookie in the log). The
//! commands that record these facts are in `commands::accounts`; the routes in `http::account`.

pub mod password;
pub mod session;
pub mod throttle;
