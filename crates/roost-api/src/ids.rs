//! Readable, typed ids: a resource prefix, a dash and 12 lowercase base32 characters
//! (60 random bits), e.g. `tok-5yq3h2kx0abc`.

/// RFC 4648 base32 alphabet in lowercase, so ids survive case-insensitive places (DNS).
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Number of random characters after the prefix.
pub const ID_RANDOM_LEN: usize = 12;

/// The resource kinds that have ids, with their prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    User,
    Project,
    Token,
    Session,
    Operation,
    Instance,
    Image,
    Network,
    SecurityGroup,
    SecurityGroupRule,
    PortForward,
    Bucket,
    Volume,
    Snapshot,
    BackupPolicy,
    InstanceSnapshot,
    SshKey,
    Sandbox,
    SandboxKey,
    /// A `roost server` process (new at each start): holds background-task leases.
    Server,
}

impl IdKind {
    pub const fn prefix(self) -> &'static str {
        match self {
            IdKind::User => "usr",
            IdKind::Project => "prj",
            IdKind::Token => "tok",
            IdKind::Session => "ses",
            IdKind::Operation => "op",
            IdKind::Instance => "i",
            IdKind::Image => "img",
            IdKind::Network => "net",
            IdKind::SecurityGroup => "sg",
            IdKind::SecurityGroupRule => "sgr",
            IdKind::PortForward => "pf",
            IdKind::Bucket => "bkt",
            IdKind::Volume => "vol",
            IdKind::Snapshot => "snap",
            IdKind::BackupPolicy => "bkp",
            IdKind::InstanceSnapshot => "isnap",
            IdKind::SshKey => "sshk",
            IdKind::Sandbox => "sbx",
            IdKind::SandboxKey => "sbk",
            IdKind::Server => "srv",
        }
    }

    /// A fresh random id of this kind.
    pub fn generate(self) -> String {
        let mut id = String::with_capacity(self.prefix().len() + 1 + ID_RANDOM_LEN);
        id.push_str(self.prefix());
        id.push('-');
        push_random(&mut id, ID_RANDOM_LEN);
        id
    }

    /// Whether `s` has the exact shape of an id of this kind (it may still not exist).
    pub fn matches(self, s: &str) -> bool {
        s.strip_prefix(self.prefix())
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|rest| rest.len() == ID_RANDOM_LEN && rest.bytes().all(|b| ALPHABET.contains(&b)))
    }
}

/// Appends `len` random characters of the id alphabet to `out`.
pub fn push_random(out: &mut String, len: usize) {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    // 256 is a multiple of 32, so masking keeps the distribution uniform.
    out.extend(bytes.iter().map(|b| ALPHABET[(b & 31) as usize] as char));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_the_documented_shape() {
        for kind in [IdKind::User, IdKind::Token, IdKind::Operation] {
            let id = kind.generate();
            assert!(kind.matches(&id), "{id}");
            assert_eq!(id.len(), kind.prefix().len() + 1 + ID_RANDOM_LEN);
        }
        assert_ne!(IdKind::Token.generate(), IdKind::Token.generate());
    }

    #[test]
    fn matches_rejects_other_shapes() {
        assert!(!IdKind::Token.matches("tok-short"));
        assert!(!IdKind::Token.matches("usr-abcdefghijkl"));
        assert!(!IdKind::Token.matches("tok-ABCDEFGHIJKL"));
        assert!(!IdKind::Token.matches("tok-abcdefghijk1"));
        assert!(IdKind::Token.matches("tok-abcdefghij23"));
    }
}
