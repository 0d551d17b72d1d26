//! Handlers, one module per resource.

pub mod auth;
pub mod events;
pub mod health;
pub mod operations;
pub mod system;
pub mod tokens;
