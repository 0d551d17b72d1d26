//! The node's error: what went wrong, in words an operator can act on. The control
//! plane maps the variants to API codes (not found, invalid, conflict, ...).

use std::io;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("instance '{0}' not found")]
    NotFound(String),
    /// Bad input: the caller can fix it (a 4xx for the API).
    #[error("{0}")]
    Invalid(String),
    /// The instance is in a state that does not allow the request.
    #[error("{0}")]
    Conflict(String),
    /// The driver cannot do this for this kind of instance (or not while it runs): the
    /// control plane may fall back, e.g. attach a volume at the next start.
    #[error("{0}")]
    Unsupported(String),
    /// The command of an instance or an exec does not exist in its image.
    #[error("command not found in the image: {0}")]
    CommandNotFound(String),
    /// The host lacks a program or kernel feature; `package` is the Debian package.
    #[error("{what} is missing: install the Debian package {package} (apt-get install {package})")]
    Missing { what: String, package: &'static str },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// An external tool (runc, nft, mmdebstrap) refused; `message` is what it said.
    #[error("{tool}: {message}")]
    Tool { tool: &'static str, message: String },
    #[error("netlink: {0}")]
    Netlink(String),
    /// Input over a size limit (an archive that unpacks to more than allowed).
    #[error("{0}")]
    TooLarge(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io { context: context.into(), source }
    }

    pub fn tool(tool: &'static str, message: impl Into<String>) -> Error {
        Error::Tool { tool, message: message.into() }
    }

    pub fn missing(what: impl Into<String>, package: &'static str) -> Error {
        Error::Missing { what: what.into(), package }
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Error {
        Error::io("system call", e.into())
    }
}

/// Adds what was being done to an `io::Error`, so messages say which file failed.
pub trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
    fn at(self, doing: &str, path: &Path) -> Result<T>;
}

impl<T, E: Into<io::Error>> IoContext<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(what(), e.into()))
    }

    fn at(self, doing: &str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(format!("{doing} {}", path.display()), e.into()))
    }
}
