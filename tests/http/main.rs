//! Black-box tests of the HTTP API: the real server on port 0, a fresh database per test, on
//! SQLite and PostgreSQL. Arrange with commands, act and assert over HTTP.

mod account;
mod audit;
mod authentication;
mod bodies;
mod connections;
mod console;
mod flood;
mod helpers;
mod leases;
mod openapi;
mod operations;
mod raw;
mod shapes;
