//! Handlers, one module per resource.

pub mod audit;
pub mod auth;
pub mod buckets;
pub mod events;
pub mod health;
pub mod images;
pub mod instances;
pub mod networks;
pub mod objects;
pub mod operations;
pub mod projects;
pub mod s3_keys;
pub mod sandbox_api;
pub mod sandbox_processes;
pub mod sandbox_templates;
pub mod sandboxes;
pub mod ssh_keys;
pub mod system;
pub mod tokens;
pub mod users;
pub mod volumes;
