//! The OCI bundle's `config.json` for an instance, and the files it bind-mounts in
//! (`/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`, like Docker: the image keeps its
//! own, the instance sees the ones made for it).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxIdMappingBuilder, LinuxMemoryBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount, MountBuilder,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder, get_default_maskedpaths, get_default_mounts,
    get_default_readonly_paths,
};

use crate::driver::{DEFAULT_INIT, InstanceSpec};
use crate::{Error, Result};

/// The CFS period the CPU quota is a share of (the kernel's default, 100 ms).
pub const CPU_PERIOD_US: u64 = 100_000;

/// Docker's default capability set less NET_RAW (raw sockets: forged packets, ARP
/// spoofing on the bridge) and MKNOD (device nodes): enough for package managers and
/// servers on low ports, without the ones that reach the host (SYS_ADMIN, NET_ADMIN,
/// ...). An instance may ask for those two back ([`crate::driver::CAP_ADD_ALLOWED`]).
const CAPABILITIES: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// roost-init, built by `build.rs` (empty when it could not be built).
pub const INIT_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/roost-init"));
/// Where roost-init is bound in a container (on /dev's tmpfs: nothing in the image).
pub const INIT_PATH: &str = "/dev/.roost-init";

/// Whether a bundle's process is roost-init.
pub fn runs_init(config: &Path) -> bool {
    Spec::load(config)
        .ok()
        .and_then(|s| s.process().clone())
        .and_then(|p| p.args().clone())
        .is_some_and(|a| a.first().map(String::as_str) == Some(INIT_PATH))
}

/// What the bundle needs besides the spec.
pub struct BundleContext<'a> {
    /// roost-init on the host: it is the container's pid 1 (the spec has no command).
    pub init: Option<&'a Path>,
    /// The instance's network namespace, when it has a network.
    pub netns: Option<&'a Path>,
    /// The cgroup runc creates, e.g. `/roost/i-abcdefghijkl`.
    pub cgroups_path: String,
    /// Whether the memory controller can limit swap (v1 `memory.memsw.*`); when it can,
    /// memory+swap is capped at the memory limit so the limit is hard.
    pub limit_swap: bool,
    /// The instance directory, where hosts, hostname and resolv.conf are.
    pub dir: &'a Path,
    /// The root filesystem (`rootfs`, relative to the bundle, or an absolute path).
    pub root: &'a Path,
    /// The instance's user namespace (joined) and its id map.
    pub userns: Option<(&'a Path, super::userns::IdMap)>,
}

/// The command an instance runs.
pub fn command(spec: &InstanceSpec) -> Vec<String> {
    match &spec.cmd {
        Some(cmd) if !cmd.is_empty() => cmd.clone(),
        _ => DEFAULT_INIT.iter().map(|s| s.to_string()).collect(),
    }
}

/// The environment: defaults, then the spec's, a later key replacing an earlier one.
pub fn environment(hostname: &str, extra: &[(String, String)]) -> Vec<String> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()),
        ("TERM".into(), "xterm".into()),
        ("HOSTNAME".into(), hostname.into()),
    ];
    merge_env(&mut env, extra);
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

pub fn merge_env(env: &mut Vec<(String, String)>, extra: &[(String, String)]) {
    for (key, value) in extra {
        match env.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.clone(),
            None => env.push((key.clone(), value.clone())),
        }
    }
}

/// The OCI runtime spec of an instance.
pub fn spec(spec: &InstanceSpec, ctx: &BundleContext<'_>) -> Result<Spec> {
    let oci = |e: oci_spec::OciSpecError| Error::Invalid(format!("building the OCI spec: {e}"));
    let list = capabilities(spec)?;
    let caps: oci_spec::runtime::Capabilities = list.iter().copied().collect();
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(UserBuilder::default().uid(0u32).gid(0u32).build().map_err(oci)?)
        .args(match ctx.init {
            Some(_) => vec![INIT_PATH.to_string()],
            None => command(spec),
        })
        .env(environment(&spec.hostname, &spec.env))
        .cwd("/")
        .no_new_privileges(false)
        // No rlimits: the instance inherits the server's, like Docker's default; raising
        // them would need CAP_SYS_RESOURCE the server may not have.
        .capabilities(
            oci_spec::runtime::LinuxCapabilitiesBuilder::default()
                .bounding(caps.clone())
                .effective(caps.clone())
                .permitted(caps)
                .build()
                .map_err(oci)?,
        )
        .build()
        .map_err(oci)?;

    let mut mounts: Vec<Mount> = get_default_mounts();
    for (file, target) in [("hosts", "/etc/hosts"), ("hostname", "/etc/hostname"), ("resolv.conf", "/etc/resolv.conf")]
    {
        mounts.push(bind(&ctx.dir.join(file), target, false)?);
    }
    if let Some(init) = ctx.init {
        mounts.push(bind(init, INIT_PATH, true)?);
    }
    for volume in &spec.volumes {
        mounts.push(bind(&volume.source, &volume.destination, volume.read_only)?);
    }

    let mut resources = LinuxResourcesBuilder::default().devices(vec![
        // Deny every device, then runc allows the standard ones (null, zero, tty, ...).
        LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build().map_err(oci)?,
    ]);
    if spec.memory_bytes > 0 {
        let limit = i64::try_from(spec.memory_bytes).map_err(|_| Error::Invalid("memory limit too large".into()))?;
        let mut memory = LinuxMemoryBuilder::default().limit(limit);
        if ctx.limit_swap {
            memory = memory.swap(limit);
        }
        resources = resources.memory(memory.build().map_err(oci)?);
    }
    if spec.cpus > 0.0 {
        resources = resources
            .cpu(LinuxCpuBuilder::default().quota(cpu_quota(spec.cpus)).period(CPU_PERIOD_US).build().map_err(oci)?);
    }
    if spec.pids_limit > 0 {
        resources = resources.pids(LinuxPidsBuilder::default().limit(spec.pids_limit as i64).build().map_err(oci)?);
    }

    let mut namespaces = Vec::new();
    if let Some((path, _)) = ctx.userns {
        namespaces
            .push(LinuxNamespaceBuilder::default().typ(LinuxNamespaceType::User).path(path).build().map_err(oci)?);
    }
    for typ in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Network,
    ] {
        let mut ns = LinuxNamespaceBuilder::default().typ(typ);
        if typ == LinuxNamespaceType::Network
            && let Some(path) = ctx.netns
        {
            ns = ns.path(path.to_path_buf());
        }
        namespaces.push(ns.build().map_err(oci)?);
    }

    let mut linux = LinuxBuilder::default();
    if let Some((_, map)) = ctx.userns {
        let ids = |host: u32| {
            LinuxIdMappingBuilder::default().container_id(0u32).host_id(host).size(map.count).build().map_err(oci)
        };
        linux = linux.uid_mappings(vec![ids(map.uid)?]).gid_mappings(vec![ids(map.gid)?]);
    }
    let linux = linux
        .namespaces(namespaces)
        .resources(resources.build().map_err(oci)?)
        .cgroups_path(PathBuf::from(&ctx.cgroups_path))
        .seccomp(super::seccomp::filter(&list, super::seccomp::host_kernel())?)
        .masked_paths(get_default_maskedpaths())
        .readonly_paths(get_default_readonly_paths())
        .build()
        .map_err(oci)?;

    SpecBuilder::default()
        .version("1.0.2")
        .root(RootBuilder::default().path(ctx.root).readonly(false).build().map_err(oci)?)
        .process(process)
        .hostname(spec.hostname.clone())
        .mounts(mounts)
        .linux(linux)
        .build()
        .map_err(oci)
}

/// The instance's capabilities: the default set and what it asked for (validated).
pub fn capabilities(spec: &InstanceSpec) -> Result<Vec<Capability>> {
    let mut caps = CAPABILITIES.to_vec();
    for name in &spec.capabilities_add {
        let name = crate::driver::normalize_capability(name).map_err(Error::Invalid)?;
        let cap: Capability = name.parse().map_err(|_| Error::Invalid(format!("unknown capability '{name}'")))?;
        if !caps.contains(&cap) {
            caps.push(cap);
        }
    }
    Ok(caps)
}

/// CFS quota in microseconds per [`CPU_PERIOD_US`] for a number of CPUs (1 ms at least,
/// the kernel's floor).
pub fn cpu_quota(cpus: f64) -> i64 {
    ((cpus * CPU_PERIOD_US as f64).round() as i64).max(1000)
}

fn bind(source: &Path, destination: &str, read_only: bool) -> Result<Mount> {
    let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
    if read_only {
        options.push("ro".into());
    }
    MountBuilder::default()
        .destination(destination)
        .typ("bind")
        .source(source)
        .options(options)
        .build()
        .map_err(|e| Error::Invalid(format!("mount {destination}: {e}")))
}

/// `/etc/hosts` of an instance.
pub fn hosts_file(hostname: &str, ip: Option<Ipv4Addr>) -> String {
    let own = ip.map(|ip| ip.to_string()).unwrap_or_else(|| "127.0.1.1".into());
    format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{own}\t{hostname}\n")
}

/// `/etc/resolv.conf` of an instance: the host's name servers, except loopback ones
/// (a host resolver on 127.0.0.53 is unreachable from the instance's namespace; then
/// systemd-resolved's upstream list is used when there is one).
pub fn resolv_conf() -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let usable = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| {
                let mut words = l.split_whitespace();
                match (words.next(), words.next()) {
                    (Some("nameserver"), Some(addr)) => !(addr.starts_with("127.") || addr == "::1"),
                    (Some("search" | "options" | "domain"), _) => true,
                    _ => false,
                }
            })
            .map(str::to_string)
            .collect()
    };
    let mut lines = usable(&read("/etc/resolv.conf"));
    if !lines.iter().any(|l| l.starts_with("nameserver")) {
        lines = usable(&read("/run/systemd/resolve/resolv.conf"));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::Mount as Volume;

    fn instance() -> InstanceSpec {
        InstanceSpec {
            id: "i-abcdefghijkl".into(),
            rootfs: "/images/x/rootfs".into(),
            cmd: None,
            env: vec![("PATH".into(), "/opt/bin".into()), ("A".into(), "1".into())],
            cpus: 0.5,
            memory_bytes: 64 << 20,
            pids_limit: 100,
            hostname: "web".into(),
            networks: Vec::new(),
            dns: None,
            volumes: vec![Volume { source: "/vol".into(), destination: "/data".into(), read_only: true }],
            disks: Vec::new(),
            capabilities_add: Vec::new(),
        }
    }

    #[test]
    fn limits_namespaces_and_mounts() {
        let dir = Path::new("/var/lib/roost/instances/i-abcdefghijkl");
        let netns = Path::new("/run/netns/roost-i-abcdefghijkl");
        let ctx = BundleContext {
            init: None,
            netns: Some(netns),
            cgroups_path: "/roost/i-abcdefghijkl".into(),
            limit_swap: true,
            dir,
            root: Path::new("rootfs"),
            userns: None,
        };
        let spec = spec(&instance(), &ctx).unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        let res = &json["linux"]["resources"];
        assert_eq!(res["cpu"]["quota"], 50_000);
        assert_eq!(res["cpu"]["period"], 100_000);
        assert_eq!(res["memory"]["limit"], 64 << 20);
        assert_eq!(res["memory"]["swap"], 64 << 20);
        assert_eq!(res["pids"]["limit"], 100);
        assert_eq!(res["devices"][0]["allow"], false);
        let ns = json["linux"]["namespaces"].as_array().unwrap();
        let net = ns.iter().find(|n| n["type"] == "network").unwrap();
        assert_eq!(net["path"], "/run/netns/roost-i-abcdefghijkl");
        assert_eq!(json["process"]["args"][0], "/bin/sh");
        let env: Vec<&str> = json["process"]["env"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert!(env.contains(&"PATH=/opt/bin") && env.contains(&"A=1") && env.contains(&"HOSTNAME=web"));
        let mounts = json["mounts"].as_array().unwrap();
        let data = mounts.iter().find(|m| m["destination"] == "/data").unwrap();
        assert!(data["options"].as_array().unwrap().contains(&"ro".into()));
        assert!(mounts.iter().any(|m| m["destination"] == "/etc/resolv.conf"
            && m["source"] == "/var/lib/roost/instances/i-abcdefghijkl/resolv.conf"));
        assert_eq!(json["root"]["path"], "rootfs");
        // Docker's defaults less NET_RAW and MKNOD, and its seccomp profile.
        let bounding: Vec<&str> = json["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(bounding.contains(&"CAP_CHOWN") && bounding.contains(&"CAP_NET_BIND_SERVICE"), "{bounding:?}");
        assert!(!bounding.contains(&"CAP_NET_RAW") && !bounding.contains(&"CAP_MKNOD"), "{bounding:?}");
        assert_eq!(json["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(json["linux"]["seccomp"]["syscalls"].as_array().unwrap().len() > 5);
    }

    #[test]
    fn capabilities_are_added_from_the_allowlist_only() {
        let dir = Path::new("/x");
        let ctx = BundleContext {
            init: None,
            netns: None,
            cgroups_path: "/roost/x".into(),
            limit_swap: false,
            dir,
            root: Path::new("rootfs"),
            userns: None,
        };
        let mut s = instance();
        s.capabilities_add = vec!["net_raw".into(), "CAP_SYS_PTRACE".into()];
        let json = serde_json::to_value(spec(&s, &ctx).unwrap()).unwrap();
        let effective = json["process"]["capabilities"]["effective"].as_array().unwrap();
        assert!(effective.contains(&"CAP_NET_RAW".into()) && effective.contains(&"CAP_SYS_PTRACE".into()));
        // SYS_PTRACE brings the system calls Docker's profile ties to it.
        let seccomp = json["linux"]["seccomp"].to_string();
        assert!(seccomp.contains("process_vm_readv"));
        for bad in ["SYS_ADMIN", "NET_ADMIN", "ALL", ""] {
            s.capabilities_add = vec![bad.into()];
            assert!(matches!(spec(&s, &ctx), Err(Error::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn no_limits_when_zero() {
        let mut s = instance();
        (s.cpus, s.memory_bytes, s.pids_limit) = (0.0, 0, 0);
        let dir = Path::new("/x");
        let ctx = BundleContext {
            init: None,
            netns: None,
            cgroups_path: "/roost/x".into(),
            limit_swap: false,
            dir,
            root: Path::new("rootfs"),
            userns: None,
        };
        let json = serde_json::to_value(spec(&s, &ctx).unwrap()).unwrap();
        let res = &json["linux"]["resources"];
        assert!(res.get("cpu").is_none() && res.get("memory").is_none() && res.get("pids").is_none());
        let ns = json["linux"]["namespaces"].as_array().unwrap();
        assert!(ns.iter().find(|n| n["type"] == "network").unwrap().get("path").is_none());
        assert_eq!(cpu_quota(2.0), 200_000);
        assert_eq!(cpu_quota(0.001), 1000);
    }

    #[test]
    fn hosts_and_env() {
        assert!(hosts_file("web", Some(Ipv4Addr::new(10, 88, 0, 2))).contains("10.88.0.2\tweb"));
        let env = environment("h", &[("TERM".into(), "dumb".into())]);
        assert!(env.contains(&"TERM=dumb".to_string()));
        assert_eq!(env.iter().filter(|e| e.starts_with("TERM=")).count(), 1);
    }
}
