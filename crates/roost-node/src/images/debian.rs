//! Debian images, built with mmdebstrap from the mirror the host's apt already uses (its
//! sources.list and deb822 `.sources` files): no mirror host is written down here, so a
//! machine behind a local mirror or a snapshot uses that.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use super::BuildProgress;
use crate::error::IoContext;
use crate::{Error, Result};

/// Bumped when the build changes in a way that changes the image.
pub const LAYOUT_VERSION: u32 = 2;
/// Installed in every Debian image (layout 2 on): what a VM's exec and files go through.
pub const GUEST_AGENT: &str = "qemu-guest-agent";
/// The smallest base with apt; packages asked for come on top.
pub const VARIANT: &str = "minbase";

const SOURCES_LIST: &str = "/etc/apt/sources.list";
const SOURCES_DIR: &str = "/etc/apt/sources.list.d";

/// A validated build request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub suite: String,
    /// Sorted, without duplicates: the order given does not change the image.
    pub packages: Vec<String>,
}

impl Request {
    pub fn new(suite: &str, packages: &[String]) -> Result<Request> {
        let suite_ok = !suite.is_empty()
            && suite.len() <= 64
            && suite.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !suite_ok {
            return Err(Error::Invalid(format!("invalid Debian suite '{suite}'")));
        }
        let mut sorted = Vec::new();
        for package in packages {
            let p = package.trim();
            // Debian policy: lowercase letters, digits, + - . ; at least two, starting alnum.
            let ok = p.len() >= 2
                && p.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
            if !ok {
                return Err(Error::Invalid(format!("invalid Debian package name '{package}'")));
            }
            sorted.push(p.to_string());
        }
        sorted.sort();
        sorted.dedup();
        Ok(Request { suite: suite.to_string(), packages: sorted })
    }
}

/// One `deb` source of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub uri: String,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    /// A keyring file, when the source names one.
    pub signed_by: Option<String>,
}

/// The mirror a build uses: its main URI and the source lines handed to mmdebstrap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub uri: String,
    pub lines: Vec<String>,
}

/// The host's apt sources (binary `deb` ones, enabled).
pub fn host_sources() -> Vec<Source> {
    let mut sources = Vec::new();
    if let Ok(text) = std::fs::read_to_string(SOURCES_LIST) {
        sources.extend(parse_one_line(&text));
    }
    if let Ok(entries) = std::fs::read_dir(SOURCES_DIR) {
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            match path.extension().and_then(|e| e.to_str()) {
                Some("list") => sources.extend(parse_one_line(&text)),
                Some("sources") => sources.extend(parse_deb822(&text)),
                _ => {} // .disabled, .save, ...: apt ignores them too
            }
        }
    }
    sources
}

/// The mirror for `suite` from the host's sources.
pub fn host_mirror(suite: &str) -> Result<Mirror> {
    mirror_for(&host_sources(), suite).ok_or_else(|| {
        Error::Invalid(format!(
            "no Debian mirror in the host's apt sources ({SOURCES_LIST}, {SOURCES_DIR}/*.sources) to build '{suite}' from"
        ))
    })
}

/// Picks the sources for `suite`: every host source that carries it (and its -updates
/// and -security companions); for a suite the host does not use, the host's main Debian
/// mirror with the suite swapped in.
pub fn mirror_for(sources: &[Source], suite: &str) -> Option<Mirror> {
    let wanted = [suite.to_string(), format!("{suite}-updates"), format!("{suite}-security")];
    let mut lines = Vec::new();
    let mut main_uri = None;
    for source in sources {
        for s in source.suites.iter().filter(|s| wanted.contains(s)) {
            if s == suite && main_uri.is_none() {
                main_uri = Some(source.uri.clone());
            }
            lines.push(line(source, s));
        }
    }
    if let Some(uri) = main_uri {
        return Some(Mirror { uri, lines });
    }
    // Not a suite of the host: the main archive is the source with a plain suite name
    // (not -security/-updates/-backports) that is not a security mirror.
    let main = sources
        .iter()
        .find(|s| !s.uri.contains("security") && s.suites.iter().any(|x| !x.contains('-') && !x.contains('/')))?;
    Some(Mirror { uri: main.uri.clone(), lines: vec![line(main, suite)] })
}

fn line(source: &Source, suite: &str) -> String {
    let options = match &source.signed_by {
        Some(keyring) => format!("[signed-by={keyring}] "),
        None => String::new(),
    };
    let components = if source.components.is_empty() { "main".to_string() } else { source.components.join(" ") };
    format!("deb {options}{} {suite} {components}", source.uri)
}

/// `deb [options] uri suite component...` lines.
pub fn parse_one_line(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        let Some(rest) = line.strip_prefix("deb ").or_else(|| line.strip_prefix("deb\t")) else { continue };
        let mut rest = rest.trim_start();
        let mut signed_by = None;
        if let Some(after) = rest.strip_prefix('[') {
            let Some((options, tail)) = after.split_once(']') else { continue };
            for option in options.split_whitespace() {
                if let Some(value) = option.strip_prefix("signed-by=") {
                    signed_by = Some(value.to_string());
                }
            }
            rest = tail.trim_start();
        }
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else { continue };
        out.push(Source {
            uri: uri.trim_end_matches('/').to_string(),
            suites: vec![suite.to_string()],
            components: words.map(str::to_string).collect(),
            signed_by,
        });
    }
    out
}

/// deb822 stanzas (`Types:`, `URIs:`, `Suites:`, `Components:`, `Signed-By:`,
/// `Enabled:`), separated by blank lines.
pub fn parse_deb822(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    let flush = |fields: &mut Vec<(String, String)>, out: &mut Vec<Source>| {
        let get = |key: &str| {
            fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str()).unwrap_or_default()
        };
        let types = get("Types");
        let enabled = !get("Enabled").trim().eq_ignore_ascii_case("no");
        if enabled && types.split_whitespace().any(|t| t == "deb") {
            let signed_by = get("Signed-By").trim();
            // A keyring path, not an inline key block.
            let signed_by = (signed_by.starts_with('/') && !signed_by.contains('\n')).then(|| signed_by.to_string());
            let suites: Vec<String> = get("Suites").split_whitespace().map(str::to_string).collect();
            let components: Vec<String> = get("Components").split_whitespace().map(str::to_string).collect();
            for uri in get("URIs").split_whitespace() {
                out.push(Source {
                    uri: uri.trim_end_matches('/').to_string(),
                    suites: suites.clone(),
                    components: components.clone(),
                    signed_by: signed_by.clone(),
                });
            }
        }
        fields.clear();
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            flush(&mut fields, &mut out);
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((_, value)) = fields.last_mut() {
                value.push('\n');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            fields.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    flush(&mut fields, &mut out);
    out
}

/// Runs mmdebstrap into `rootfs` (which must not exist), reporting its steps.
pub fn build(request: &Request, mirror: &Mirror, rootfs: &Path, progress: &dyn Fn(BuildProgress)) -> Result<()> {
    let mut command = Command::new("mmdebstrap");
    command
        .arg(format!("--variant={VARIANT}"))
        .arg("--mode=root")
        .arg("--format=directory")
        // Manuals, docs and translations are most of a minimal image and unused in one.
        .arg("--dpkgopt=path-exclude=/usr/share/man/*")
        .arg("--dpkgopt=path-exclude=/usr/share/doc/*")
        .arg("--dpkgopt=path-include=/usr/share/doc/*/copyright")
        .arg("--dpkgopt=path-exclude=/usr/share/locale/*")
        .arg("--aptopt=Acquire::Retries \"3\"");
    // qemu-guest-agent in every image, so the same image boots as a VM (exec and files
    // go through it); a container never starts it.
    let mut include = request.packages.clone();
    if !include.iter().any(|p| p == GUEST_AGENT) {
        include.push(GUEST_AGENT.into());
    }
    command.arg(format!("--include={}", include.join(",")));
    command.arg(&request.suite).arg(rootfs).args(&mirror.lines);
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    progress(BuildProgress { percent: 0, message: format!("building {} from {}", request.suite, mirror.uri) });
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::missing("mmdebstrap", "mmdebstrap")),
        Err(e) => return Err(Error::io("running mmdebstrap", e)),
    };
    let mut tail: Vec<String> = Vec::new();
    let mut percent = 0u8;
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let line = line.at("reading the output of", Path::new("mmdebstrap"))?;
            if let Some(p) = stage_percent(&line)
                && p > percent
            {
                percent = p;
            }
            if line.starts_with("I: ") || line.starts_with("E: ") || line.starts_with("W: ") {
                progress(BuildProgress { percent, message: line.trim_start_matches("I: ").to_string() });
            }
            tail.push(line);
            if tail.len() > 20 {
                tail.remove(0);
            }
        }
    }
    let status = child.wait().at("waiting for", Path::new("mmdebstrap"))?;
    if !status.success() {
        let errors: Vec<&String> = tail.iter().filter(|l| l.starts_with("E: ")).collect();
        let message = if errors.is_empty() {
            tail.join("\n")
        } else {
            errors.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
        };
        return Err(Error::tool("mmdebstrap", message));
    }
    progress(BuildProgress { percent: 100, message: "done".into() });
    Ok(())
}

/// Rough progress from mmdebstrap's step messages.
fn stage_percent(line: &str) -> Option<u8> {
    const STAGES: &[(&str, u8)] = &[
        ("running apt-get update", 5),
        ("downloading packages", 15),
        ("extracting archives", 40),
        ("installing essential packages", 50),
        ("installing remaining packages", 70),
        ("cleaning package lists", 90),
        ("success", 99),
    ];
    STAGES.iter().find(|(needle, _)| line.contains(needle)).map(|&(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://off.example/debian
Suites: bookworm
Components: main
Enabled: no
";

    #[test]
    fn parses_deb822() {
        let sources = parse_deb822(DEB822);
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[0].uri, "http://deb.debian.org/debian");
        assert_eq!(sources[0].suites, vec!["bookworm", "bookworm-updates"]);
        assert_eq!(sources[1].suites, vec!["bookworm-security"]);
    }

    #[test]
    fn parses_one_line_sources() {
        let text = "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.local/debian/ bookworm main contrib\ndeb-src http://x/ y z\ndeb http://mirror.local/debian-security bookworm-security main # trailing\n";
        let sources = parse_one_line(text);
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[0].uri, "http://mirror.local/debian");
        assert_eq!(sources[0].components, vec!["main", "contrib"]);
        assert_eq!(sources[0].signed_by.as_deref(), Some("/k.gpg"));
        assert_eq!(sources[1].suites, vec!["bookworm-security"]);
    }

    #[test]
    fn picks_the_hosts_mirror() {
        let sources = parse_deb822(DEB822);
        let mirror = mirror_for(&sources, "bookworm").unwrap();
        assert_eq!(mirror.uri, "http://deb.debian.org/debian");
        assert_eq!(
            mirror.lines,
            vec![
                "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main",
                "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-updates main",
                "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main",
            ]
        );
        // Another suite: the main archive only, with the suite swapped in.
        let trixie = mirror_for(&sources, "trixie").unwrap();
        assert_eq!(trixie.uri, "http://deb.debian.org/debian");
        assert_eq!(trixie.lines.len(), 1);
        assert!(trixie.lines[0].ends_with("http://deb.debian.org/debian trixie main"));
        assert!(mirror_for(&[], "bookworm").is_none());
    }

    #[test]
    fn validates_requests() {
        let r = Request::new("bookworm", &["python3".into(), "curl".into(), "curl".into()]).unwrap();
        assert_eq!(r.packages, vec!["curl", "python3"]);
        assert!(Request::new("../x", &[]).is_err());
        assert!(Request::new("bookworm", &["curl;rm".into()]).is_err());
        assert!(Request::new("bookworm", &["--root".into()]).is_err());
        assert!(Request::new("bookworm", &["libstdc++6".into()]).is_ok());
    }

    #[test]
    fn progress_rises_through_the_stages() {
        assert_eq!(stage_percent("I: downloading packages with apt..."), Some(15));
        assert_eq!(stage_percent("I: success in 42.1 seconds"), Some(99));
        assert_eq!(stage_percent("something else"), None);
    }
}
