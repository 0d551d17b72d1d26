//! MicroVM instances end to end: a real server (root, compute on) boots real QEMU VMs
//! from a Debian image it builds, and the CLI drives them like containers. One server
//! and one image for the whole file; as few boots as prove the behaviour (TCG is slow).

mod common;

use std::time::Duration;

use common::{ServerOptions, TestServer, stderr, stdout};
use roost_api::instances::{CreateInstanceRequest, ExecStart, InstanceStatus};
use roost_api::networks::CreateSecurityGroupRequest;

const N: u8 = 40;

fn require_vm_prerequisites() {
    for (program, package) in [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("qemu-img", "qemu-utils"),
        ("mkfs.ext4", "e2fsprogs"),
        ("lz4", "lz4"),
        ("mmdebstrap", "mmdebstrap"),
    ] {
        let found =
            std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()));
        assert!(
            found,
            "missing prerequisite: `{program}` — install the Debian package {package} (scripts/install-deps.sh --test)"
        );
    }
}

async fn sh(client: &roost_client::Client, instance: &str, script: &str) -> (i32, String) {
    let start = ExecStart { cmd: vec!["sh".into(), "-c".into(), script.into()], ..Default::default() };
    let out = client.exec(instance, &start).await.unwrap().run(None).await.unwrap();
    (out.code, format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

async fn fetches(client: &roost_client::Client, from: &str, wget: &str, url: &str) -> bool {
    let (code, out) = sh(client, from, &format!("timeout 5 {wget} -q -O - {url}")).await;
    code == 0 && out.contains("hello")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_instances_work_like_containers() {
    require_vm_prerequisites();
    let mut server = TestServer::start_with(ServerOptions::compute(N));
    let admin = server.admin().await;
    let out = server.cli(&["login", "-u", "admin", "--password-stdin"], Some(common::ADMIN_PASSWORD), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cli = |server: &TestServer, args: &[&str]| {
        let out = server.cli(args, None, &[]);
        assert!(out.status.success(), "roost {}: {}{}", args.join(" "), stdout(&out), stderr(&out));
        stdout(&out)
    };

    // The node says which accelerator VMs get and why.
    let node: serde_json::Value = serde_json::from_str(&cli(&server, &["node", "show", "-o", "json"])).unwrap();
    assert_eq!(node["instance_types"], serde_json::json!(["container", "vm"]), "{node}");
    let accel = node["accelerator"].as_str().unwrap();
    assert!(accel == "kvm" || accel == "tcg", "{node}");
    assert!(!node["accelerator_reason"].as_str().unwrap().is_empty());
    let text = cli(&server, &["node", "show"]);
    assert!(text.contains("accelerator:") && text.contains("why:"), "{text}");
    // ... and which KVM checks passed: on this machine's PVM the modes pass and the speed
    // loop fails; on hardware KVM all pass.
    let checks: Vec<&str> =
        node["kvm_checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(checks[..2], ["open", "api_version"], "{node}");
    if std::path::Path::new("/sys/module/kvm_pvm").exists() {
        let speed = node["kvm_checks"].as_array().unwrap().iter().find(|c| c["name"] == "speed").unwrap();
        assert_eq!(speed["passed"], false, "{node}");
        assert_eq!(accel, "tcg");
        assert!(
            text.contains("kvm checks:") && text.contains("long_mode ok") && text.contains("speed FAILED"),
            "{text}"
        );
    }

    // openssh-server for `roost ssh` (started by the user data: the guest runs no
    // service manager).
    cli(&server, &["image", "build", "debian-12", "--from", "debian:bookworm", "--packages", "openssh-server"]);
    // A VM needs the guest agent: the builtin busybox image has none.
    let out = server.cli(&["instance", "create", "bb", "--type", "vm", "--image", "busybox"], None, &[]);
    assert!(!out.status.success() && stderr(&out).contains("qemu-guest-agent"), "{}", stderr(&out));

    // A group allowing HTTP only: the VM's tap gets the same rules a veth gets.
    admin
        .create_security_group(&CreateSecurityGroupRequest { name: "web".into(), ..Default::default() })
        .await
        .unwrap();
    cli(&server, &["sg", "rule", "add", "web", "--ingress", "--proto", "tcp", "--port", "80", "--from", "0.0.0.0/0"]);

    // SSH keys: generated (the private key shown once, valid for ssh-keygen) and imported.
    let keys = tempfile::tempdir().unwrap();
    let private = keys.path().join("mykey");
    cli(&server, &["ssh-key", "create", "mykey", "--out", private.to_str().unwrap()]);
    let derived = std::process::Command::new("ssh-keygen").arg("-y").arg("-f").arg(&private).output().unwrap();
    assert!(derived.status.success(), "ssh-keygen reads the private key: {}", String::from_utf8_lossy(&derived.stderr));
    let mykey: serde_json::Value =
        serde_json::from_str(&cli(&server, &["ssh-key", "show", "mykey", "-o", "json"])).unwrap();
    let derived = String::from_utf8_lossy(&derived.stdout).trim().to_string();
    assert!(mykey["public_key"].as_str().unwrap().starts_with(&derived), "{mykey} vs {derived}");
    let printed = cli(&server, &["ssh-key", "create", "printed"]);
    assert!(printed.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"), "{printed}");
    std::fs::write(keys.path().join("other.pub"), format!("{derived} someone@else\n")).unwrap();
    cli(&server, &["ssh-key", "import", "other", keys.path().join("other.pub").to_str().unwrap()]);
    let out = server.cli(&["ssh-key", "import", "bad", "/etc/hostname"], None, &[]);
    assert!(!out.status.success(), "not a public key");
    let listed = cli(&server, &["ssh-key", "ls"]);
    assert!(listed.contains("mykey") && listed.contains("other") && listed.contains("SHA256:"), "{listed}");
    cli(&server, &["ssh-key", "rm", "printed"]);
    assert!(!cli(&server, &["ssh-key", "ls"]).contains("printed"));
    let user_data = keys.path().join("init.sh");
    std::fs::write(
        &user_data,
        "#!/bin/sh\necho first-boot-ran-on-$(cat /proc/sys/kernel/hostname)\nmkdir -p /run/sshd && /usr/sbin/sshd\n",
    )
    .unwrap();

    cli(
        &server,
        &[
            "instance",
            "create",
            "vm1",
            "--type",
            "vm",
            "--image",
            "debian-12",
            "--cpus",
            "1",
            "--memory",
            "256m",
            "--sg",
            "web",
            "--ssh-key",
            "mykey",
            "--ssh-key",
            "other",
            "--user-data",
            user_data.to_str().unwrap(),
        ],
    );
    let shown: serde_json::Value =
        serde_json::from_str(&cli(&server, &["instance", "show", "vm1", "-o", "json"])).unwrap();
    assert_eq!(shown["type"], "vm");
    assert_eq!(shown["status"], "running");
    let vm_ip = shown["ip"].as_str().unwrap().to_string();
    let ls = cli(&server, &["instance", "ls"]);
    assert!(
        ls.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()[..4]
            == ["vm1", shown["id"].as_str().unwrap(), "running", "vm"]),
        "{ls}"
    );

    // exec: output, exit code.
    let out = server.cli(&["exec", "vm1", "--", "true"], None, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = server.cli(&["exec", "vm1", "--", "sh", "-c", "echo in-the-vm; uname -r; exit 7"], None, &[]);
    assert_eq!(out.status.code(), Some(7));
    assert!(stdout(&out).starts_with("in-the-vm\n6.1.0-"), "{}", stdout(&out));
    // stdin reaches a VM's command; -it runs it on a terminal in the guest.
    let out = server.cli(&["exec", "-i", "vm1", "--", "tr", "a-z", "A-Z"], Some("piped to the vm\n"), &[]);
    assert_eq!(stdout(&out), "PIPED TO THE VM\n", "{}", stderr(&out));
    let limit = Duration::from_secs(300); // a hang guard only
    let typed = server.cli_on_terminal(
        &["exec", "-it", "vm1", "--", "sh", "-c", "tty; read x; echo got-$x"],
        b"typed\r",
        limit,
    );
    assert!(typed.status.success(), "{}", stderr(&typed));
    assert!(stdout(&typed).contains("/dev/pts/") && stdout(&typed).contains("got-typed"), "{}", stdout(&typed));
    // The serial console says how to leave, and Ctrl-] does.
    let console = server.cli_on_terminal(&["console", "vm1"], b"echo on-the-$((6*7))\r\x1d", limit);
    assert!(console.status.success(), "{}", stderr(&console));
    assert!(
        stderr(&console).starts_with("Connected to vm1's serial console; press Enter for a prompt, Ctrl-] to leave.\n"),
        "{}",
        stderr(&console)
    );

    // A container on the same network reaches the VM on the allowed port only, and
    // the VM reaches a container.
    let peer = CreateInstanceRequest {
        name: "peer".into(),
        image: "busybox".into(),
        memory_bytes: Some(64 << 20),
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            "mkdir -p /www && echo hello > /www/index.html && httpd -p 80 -h /www && exec sleep 100000".into(),
        ]),
        security_groups: vec!["web".into()],
        ssh_keys: vec!["mykey".into()],
        user_data: Some("echo container-first-boot\n".into()),
        ..Default::default()
    };
    let created = admin.create_instance(&peer).await.unwrap();
    let peer =
        admin.wait_instance(&created.instance.id, InstanceStatus::Running, Duration::from_secs(60)).await.unwrap();
    let peer_ip = peer.ip.clone().unwrap();
    let (code, out) = sh(
        &admin,
        "vm1",
        "mkdir -p /www && echo hello > /www/index.html && /.roost/bin/busybox httpd -p 80 -h /www && /.roost/bin/busybox httpd -p 8022 -h /www",
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(fetches(&admin, "peer", "wget", &format!("http://{vm_ip}:80/")).await, "the VM serves on 80");
    // Any port but 80 is blocked (22 is the guest's sshd, for `roost ssh` below).
    assert!(!fetches(&admin, "peer", "wget", &format!("http://{vm_ip}:8022/")).await, "8022 is blocked at the tap");
    assert!(
        fetches(&admin, "vm1", "/.roost/bin/busybox wget", &format!("http://{peer_ip}:80/")).await,
        "the VM reaches a container"
    );

    // logs: the serial console's log, with the user data's output; keys for root.
    let mut logs = String::new();
    for _ in 0..120 {
        logs = cli(&server, &["logs", "vm1"]);
        if logs.contains("user-data exited with 0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(logs.contains("roost: guest ready"), "{logs}");
    assert!(logs.contains("first-boot-ran-on-vm1"), "{logs}");
    let (_, keys_in_vm) =
        sh(&admin, "vm1", "cat /root/.ssh/authorized_keys; stat -c %a /root/.ssh/authorized_keys").await;
    assert!(
        keys_in_vm.contains(&derived) && keys_in_vm.contains("someone@else") && keys_in_vm.ends_with("600\n"),
        "{keys_in_vm}"
    );
    // The same for a container.
    let mut peer_logs = String::new();
    for _ in 0..60 {
        peer_logs = cli(&server, &["logs", "peer"]);
        if peer_logs.contains("user-data exited") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(peer_logs.contains("container-first-boot"), "{peer_logs}");
    let (_, keys_in_peer) = sh(&admin, "peer", "cat /root/.ssh/authorized_keys").await;
    assert!(keys_in_peer.contains(&derived), "{keys_in_peer}");

    // `roost ssh` with the generated key reaches the guest's sshd (the host is on the
    // network's bridge; security groups filter instances, not the host).
    let mut via_ssh = String::new();
    for _ in 0..60 {
        let out = server.cli(
            &["ssh", "vm1", "-i", private.to_str().unwrap(), "--", "echo", "via-ssh-$(cat /proc/sys/kernel/hostname)"],
            None,
            &[],
        );
        via_ssh = format!("{}{}", stdout(&out), stderr(&out));
        if out.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(via_ssh.contains("via-ssh-vm1"), "roost ssh: {via_ssh}");
    // The host key went to Roost's own known_hosts, under the instance's id (Debian's ssh
    // hashes the names: ssh-keygen -F finds it).
    let known = server.cli_config_path().with_file_name("known_hosts");
    let alias = format!("roost-{}", shown["id"].as_str().unwrap());
    let found = std::process::Command::new("ssh-keygen").arg("-F").arg(&alias).arg("-f").arg(&known).output().unwrap();
    assert!(found.status.success(), "{alias} not in {}", known.display());

    // cp in and out through the guest agent.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("note.txt");
    std::fs::write(&file, "from the host\n").unwrap();
    cli(&server, &["cp", file.to_str().unwrap(), "vm1:/root/"]);
    let out = server.cli(&["exec", "vm1", "--", "cat", "/root/note.txt"], None, &[]);
    assert_eq!(stdout(&out), "from the host\n");
    let back = dir.path().join("back.txt");
    cli(&server, &["cp", "vm1:/root/note.txt", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "from the host\n");

    // stats from the host's view of QEMU.
    let stats: serde_json::Value =
        serde_json::from_str(&cli(&server, &["instance", "stats", "vm1", "-o", "json"])).unwrap();
    assert!(stats["memory_bytes"].as_u64().unwrap() > 0, "{stats}");

    // A volume attached through the volume API: a running VM takes it at its next start
    // (virtio-mmio has no hotplug), mounted where asked.
    cli(&server, &["volume", "create", "vmdata", "--size", "64m"]);
    let attached: serde_json::Value =
        serde_json::from_str(&cli(&server, &["volume", "attach", "vmdata", "vm1", "--path", "/data", "-o", "json"]))
            .unwrap();
    assert_eq!(attached["effective"], "next_start", "{attached}");

    // stop (ACPI power button) and start again: the overlay keeps what was written.
    cli(&server, &["instance", "stop", "vm1", "--timeout", "30"]);
    let shown: serde_json::Value =
        serde_json::from_str(&cli(&server, &["instance", "show", "vm1", "-o", "json"])).unwrap();
    assert_eq!(shown["status"], "stopped", "{shown}");
    cli(&server, &["instance", "start", "vm1"]);
    let out = server.cli(&["exec", "vm1", "--", "cat", "/root/note.txt"], None, &[]);
    assert_eq!(stdout(&out), "from the host\n", "{}", stderr(&out));
    let out = server.cli(
        &[
            "exec",
            "vm1",
            "--",
            "sh",
            "-c",
            "grep -q ' /data ' /proc/mounts && echo written-in-the-vm > /data/f && sync && cat /data/f",
        ],
        None,
        &[],
    );
    assert_eq!(stdout(&out), "written-in-the-vm\n", "{}", stderr(&out));

    // kill -9 of the server: a new one re-adopts the running VM through its sockets.
    let data_dir = std::mem::replace(&mut server.data_dir, tempfile::tempdir().unwrap());
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let cli_home = std::mem::replace(&mut server.cli_home, tempfile::tempdir().unwrap());
    drop(server);
    let mut server = TestServer::start_in(data_dir, ServerOptions::compute(N));
    server.cli_home = cli_home;
    let out = server.cli(&["login", "-u", "admin", "--password-stdin"], Some(common::ADMIN_PASSWORD), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = server.cli(&["exec", "vm1", "--", "cat", "/root/note.txt"], None, &[]);
    assert_eq!(stdout(&out), "from the host\n", "{}", stderr(&out));

    // kill -9 of QEMU converges: the instance is seen to stop (policy never).
    let pidfile = server.data_path().join("vms/instances");
    let id = std::fs::read_dir(&pidfile).unwrap().next().unwrap().unwrap().file_name().into_string().unwrap();
    let pid: i32 = std::fs::read_to_string(pidfile.join(&id).join("qemu.pid")).unwrap().trim().parse().unwrap();
    common::signal(pid as u32, "KILL");
    let admin = server.admin().await;
    let stopped = admin.wait_instance("vm1", InstanceStatus::Stopped, Duration::from_secs(30)).await.unwrap();
    assert_eq!(stopped.status, InstanceStatus::Stopped, "{stopped:?}");

    // rm removes the overlay, sockets and tap.
    let tap = roost_node::network::nic_ifname(&id, 0);
    cli(&server, &["instance", "rm", "-f", "vm1"]);
    assert!(!pidfile.join(&id).exists(), "the VM's directory is gone");
    assert!(!roost_node::network::link_exists(&tap), "the tap is gone");
    // The volume outlives the VM with what the guest wrote: a running container mounts it
    // at once and reads it.
    let attached: serde_json::Value =
        serde_json::from_str(&cli(&server, &["volume", "attach", "vmdata", "peer", "--path", "/data", "-o", "json"]))
            .unwrap();
    assert_eq!(attached["effective"], "now", "{attached}");
    let out = server.cli(&["exec", "peer", "--", "cat", "/data/f"], None, &[]);
    assert_eq!(stdout(&out), "written-in-the-vm\n", "{}", stderr(&out));
    cli(&server, &["instance", "rm", "-f", "peer"]);
    cli(&server, &["volume", "rm", "vmdata"]);
    drop(server);
    common::remove_test_network(N).await;
}
