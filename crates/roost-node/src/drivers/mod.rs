//! Compute drivers: each implements [`crate::Driver`] for one way of running instances.

pub mod container;
pub mod vm;
