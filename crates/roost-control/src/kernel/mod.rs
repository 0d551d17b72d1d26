//! What every service shares, whatever the door a change comes through. It starts with
//! optimistic concurrency ([`etag`]); the service kernel grows here.

pub mod etag;
