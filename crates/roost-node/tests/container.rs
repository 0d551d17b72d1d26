//! The runc driver against real runc, as root: lifecycle, exec, logs, limits, files,
//! adoption by a new driver. Each test has its own driver directories and unique ids, so
//! they run in parallel.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Env, busybox, exec, exec_with, wait_status};
use futures_util::StreamExt;
use roost_node::{Driver, Error, ExecRequest, InstanceStatus, LogQuery, LogStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_commands_and_returns_exit_codes() {
    let image = busybox().await;
    let env = Env::new("exec");
    let spec = env.spec(&image, None);
    env.run(&spec).await;
    let driver = &env.driver;

    let state = driver.inspect(&spec.id).await.unwrap();
    assert_eq!(state.status, InstanceStatus::Running);
    assert!(state.pid.is_some() && state.started_at.is_some());

    let hi = exec(driver, &spec.id, &["echo", "hi"]).await;
    assert_eq!((hi.code, hi.stdout.as_str()), (0, "hi\n"));
    assert_eq!(exec(driver, &spec.id, &["false"]).await.code, 1);

    let both = exec(driver, &spec.id, &["sh", "-c", "echo out; echo err >&2; exit 3"]).await;
    assert_eq!((both.code, both.stdout.as_str(), both.stderr.as_str()), (3, "out\n", "err\n"));

    let request = ExecRequest {
        cmd: vec!["sh".into(), "-c".into(), "echo $FOO; pwd".into()],
        env: vec![("FOO".into(), "bar".into())],
        cwd: Some("/tmp".into()),
        ..Default::default()
    };
    let out = exec_with(driver, &spec.id, request, b"").await;
    assert_eq!(out.stdout, "bar\n/tmp\n");

    let cat = ExecRequest { cmd: vec!["cat".into()], ..Default::default() };
    assert_eq!(exec_with(driver, &spec.id, cat, b"through stdin\n").await.stdout, "through stdin\n");

    let missing =
        driver.exec(&spec.id, ExecRequest { cmd: vec!["no-such-command".into()], ..Default::default() }).await;
    assert!(matches!(missing, Err(Error::CommandNotFound(_))), "{missing:?}");

    let nowhere = ExecRequest { cmd: vec!["true".into()], cwd: Some("/no/such/dir".into()), ..Default::default() };
    let refused = driver.exec(&spec.id, nowhere).await;
    assert!(matches!(refused, Err(Error::Invalid(_))), "{refused:?}");

    // Killed by a signal: 128 + signal, like a shell says.
    assert_eq!(exec(driver, &spec.id, &["sh", "-c", "kill -9 $$"]).await.code, 137);
    driver.delete(&spec.id).await.unwrap();
}

/// Reads the terminal until `needle` shows up.
async fn read_until(reader: &mut (dyn tokio::io::AsyncRead + Send + Unpin), seen: &mut String, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1024];
    while !seen.contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, reader.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no '{needle}' on the terminal; saw {seen:?}"))
            .unwrap();
        assert!(n > 0, "terminal closed before '{needle}'; saw {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tty_exec_has_a_terminal_that_resizes() {
    let image = busybox().await;
    let env = Env::new("tty");
    let spec = env.spec(&image, None);
    env.run(&spec).await;

    let request = ExecRequest { cmd: vec!["sh".into()], tty: true, rows: 24, cols: 80, ..Default::default() };
    let mut session = env.driver.exec(&spec.id, request).await.unwrap();
    assert!(session.stderr.is_none());
    let mut input = session.stdin.take().unwrap();
    let mut output = session.stdout.take().unwrap();
    let mut seen = String::new();

    input.write_all(b"tty; stty size\n").await.unwrap();
    read_until(output.as_mut(), &mut seen, "24 80").await;
    assert!(seen.contains("/dev/pts/"), "a real terminal: {seen:?}");

    session.resize(40, 100).unwrap();
    input.write_all(b"stty size\n").await.unwrap();
    read_until(output.as_mut(), &mut seen, "40 100").await;

    input.write_all(b"exit 5\n").await.unwrap();
    let code = tokio::time::timeout(Duration::from_secs(10), session.wait()).await.unwrap().unwrap();
    assert_eq!(code, 5);
    env.driver.delete(&spec.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_capture_stdout_and_stderr() {
    let image = busybox().await;
    let env = Env::new("logs");
    let spec = env
        .spec(&image, Some(&["sh", "-c", "echo out1; echo err1 >&2; trap 'exit 0' TERM; while :; do sleep 1; done"]));
    env.run(&spec).await;
    let driver = &env.driver;

    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let lines: Vec<_> =
            driver.logs(&spec.id, LogQuery::default()).await.unwrap().map(|l| l.unwrap()).collect().await;
        if lines.len() >= 2 || Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let got: Vec<(LogStream, &str)> = lines.iter().map(|l| (l.stream, l.line.as_str())).collect();
    assert!(got.contains(&(LogStream::Stdout, "out1")), "{got:?}");
    assert!(got.contains(&(LogStream::Stderr, "err1")), "{got:?}");

    let tail = LogQuery { tail: Some(1), ..LogQuery::default() };
    assert_eq!(driver.logs(&spec.id, tail).await.unwrap().count().await, 1);
    let future =
        LogQuery { since: Some(std::time::SystemTime::now() + Duration::from_secs(3600)), ..LogQuery::default() };
    assert_eq!(driver.logs(&spec.id, future).await.unwrap().count().await, 0);

    // Follow: a line written later arrives; the stream ends when the instance stops.
    let follow = LogQuery { follow: true, tail: Some(0), ..LogQuery::default() };
    let mut stream = driver.logs(&spec.id, follow).await.unwrap();
    assert_eq!(exec(driver, &spec.id, &["sh", "-c", "echo later >> /proc/1/fd/1"]).await.code, 0);
    let line = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
    assert_eq!((line.stream, line.line.as_str()), (LogStream::Stdout, "later"));
    driver.stop(&spec.id, Duration::from_secs(10)).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap();
    assert!(end.is_none(), "{end:?}");
    driver.delete(&spec.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_is_graceful_then_forceful_and_start_runs_again() {
    let image = busybox().await;
    let env = Env::new("stop");
    let driver = &env.driver;

    // The default init exits 0 on SIGTERM.
    let gentle = env.spec(&image, None);
    env.run(&gentle).await;
    let begun = Instant::now();
    driver.stop(&gentle.id, Duration::from_secs(10)).await.unwrap();
    assert!(begun.elapsed() < Duration::from_secs(5), "took {:?}", begun.elapsed());
    let state = driver.inspect(&gentle.id).await.unwrap();
    assert_eq!(state.status, InstanceStatus::Stopped);
    assert_eq!((state.exit_code, state.exit_signal, state.exit_unknown), (Some(0), None, false));
    assert!(state.finished_at.is_some());

    // Started again after a stop.
    driver.start(&gentle.id).await.unwrap();
    assert_eq!(driver.inspect(&gentle.id).await.unwrap().status, InstanceStatus::Running);
    driver.kill(&gentle.id).await.unwrap();
    let state = driver.inspect(&gentle.id).await.unwrap();
    assert_eq!((state.status, state.exit_code, state.exit_signal), (InstanceStatus::Stopped, Some(137), Some(9)));

    // One that ignores SIGTERM is killed once the grace period has passed.
    let stubborn = env.spec(&image, Some(&["sh", "-c", "trap '' TERM; while :; do sleep 1; done"]));
    env.run(&stubborn).await;
    let begun = Instant::now();
    driver.stop(&stubborn.id, Duration::from_secs(1)).await.unwrap();
    let took = begun.elapsed();
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(8), "took {took:?}");
    let state = driver.inspect(&stubborn.id).await.unwrap();
    assert_eq!((state.exit_code, state.exit_signal), (Some(137), Some(9)));

    // Stopping a stopped instance is fine.
    driver.stop(&stubborn.id, Duration::from_secs(1)).await.unwrap();
    driver.delete(&gentle.id).await.unwrap();
    driver.delete(&stubborn.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceeding_the_memory_limit_is_oom_killed() {
    let image = busybox().await;
    let env = Env::new("oom");
    let mut spec = env.spec(&image, Some(&["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"]));
    spec.memory_bytes = 32 << 20;
    env.run(&spec).await;
    let state = wait_status(&env.driver, &spec.id, InstanceStatus::Stopped, Duration::from_secs(20)).await;
    assert!(state.oom_killed, "{state:?}");
    assert_eq!((state.exit_signal, state.exit_code), (Some(9), Some(137)), "{state:?}");
    let limit =
        std::fs::read_to_string(env.driver.cgroup(&spec.id).dir("memory").unwrap().join("memory.limit_in_bytes"));
    if let Ok(limit) = limit {
        assert_eq!(limit.trim(), (32u64 << 20).to_string());
    }
    env.driver.delete(&spec.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_quota_and_limits_are_in_the_cgroup() {
    let image = busybox().await;
    let env = Env::new("limits");
    let mut spec = env.spec(&image, None);
    spec.cpus = 0.5;
    spec.pids_limit = 64;
    spec.memory_bytes = 96 << 20;
    env.run(&spec).await;
    let cgroup = env.driver.cgroup(&spec.id);
    assert_eq!(cgroup.cpu_quota(), Some((Some(50_000), 100_000)), "cpus=0.5 is half of each 100 ms period");
    let pids_max = std::fs::read_to_string(cgroup.dir("pids").unwrap().join("pids.max")).unwrap();
    assert_eq!(pids_max.trim(), "64");

    let stats = env.driver.stats(&spec.id).await.unwrap();
    assert_eq!(stats.memory_limit, Some(96 << 20));
    assert!(stats.pids >= 1 && stats.memory_bytes > 0 && stats.cpu_usage_ns > 0, "{stats:?}");
    env.driver.delete(&spec.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_driver_adopts_running_instances() {
    let image = busybox().await;
    let env = Env::new("adopt");
    let spec = env.spec(&image, None);
    let prepared = env.spec(&image, None);
    env.run(&spec).await;
    env.driver.prepare(&prepared).await.unwrap();
    let pid = env.driver.inspect(&spec.id).await.unwrap().pid.unwrap();

    // A server restart: a driver that knows nothing but the directories.
    let second = env.reopen();
    let ids = second.list().await.unwrap();
    assert!(ids.contains(&spec.id) && ids.contains(&prepared.id), "{ids:?}");
    let state = second.inspect(&spec.id).await.unwrap();
    assert_eq!((state.status, state.pid), (InstanceStatus::Running, Some(pid)));
    assert_eq!(second.inspect(&prepared.id).await.unwrap().status, InstanceStatus::Stopped);
    // Even if the server died before recording the run, runc's state has the init.
    std::fs::remove_file(second.instance_dir(&spec.id).join("state.json")).unwrap();
    let state = second.inspect(&spec.id).await.unwrap();
    assert_eq!((state.status, state.pid), (InstanceStatus::Running, Some(pid)));
    assert_eq!(exec(&second, &spec.id, &["echo", "adopted"]).await.stdout, "adopted\n");

    second.stop(&spec.id, Duration::from_secs(10)).await.unwrap();
    let state = second.inspect(&spec.id).await.unwrap();
    assert_eq!(state.status, InstanceStatus::Stopped);
    // Same process here, so the exit status is still ours to collect.
    assert_eq!(state.exit_code, Some(0), "{state:?}");
    second.start(&prepared.id).await.unwrap();
    assert_eq!(second.inspect(&prepared.id).await.unwrap().status, InstanceStatus::Running);
    second.delete(&spec.id).await.unwrap();
    second.delete(&prepared.id).await.unwrap();
    assert_eq!(second.inspect(&spec.id).await.unwrap().status, InstanceStatus::Missing);
}

fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_cksum();
        builder.append_data(&mut header, name, content.as_bytes()).unwrap();
    }
    builder.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_copy_in_and_out_without_escaping() {
    let image = busybox().await;
    let env = Env::new("files");
    let spec = env.spec(&image, None);
    env.run(&spec).await;
    let driver = &env.driver;

    driver
        .copy_in(&spec.id, "/tmp", Box::new(std::io::Cursor::new(tar_of(&[("hello.txt", "hello\n")]))))
        .await
        .unwrap();
    assert_eq!(exec(driver, &spec.id, &["cat", "/tmp/hello.txt"]).await.stdout, "hello\n");

    let mut out = Vec::new();
    driver.copy_out(&spec.id, "/tmp/hello.txt").await.unwrap().read_to_end(&mut out).await.unwrap();
    let mut archive = tar::Archive::new(&out[..]);
    let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(entry.path().unwrap().to_str(), Some("hello.txt"));
    let mut content = String::new();
    std::io::Read::read_to_string(&mut entry, &mut content).unwrap();
    assert_eq!(content, "hello\n");

    // The instance points /tmp/evil at /etc: the copy lands in its /etc, not the host's.
    let marker = format!("roost-copy-test-{}", spec.id);
    assert_eq!(exec(driver, &spec.id, &["ln", "-s", "/etc", "/tmp/evil"]).await.code, 0);
    let tar = tar_of(&[(&marker, "x\n")]);
    driver.copy_in(&spec.id, "/tmp/evil", Box::new(std::io::Cursor::new(tar))).await.unwrap();
    assert!(!std::path::Path::new("/etc").join(&marker).exists(), "wrote to the host's /etc");
    assert_eq!(exec(driver, &spec.id, &["cat", &format!("/etc/{marker}")]).await.stdout, "x\n");
    // Through the symlink inside the archive: refused.
    let tar = tar_of(&[(&format!("evil/{marker}-2"), "x\n")]);
    let refused = driver.copy_in(&spec.id, "/tmp", Box::new(std::io::Cursor::new(tar))).await;
    assert!(matches!(refused, Err(Error::Invalid(_))), "{refused:?}");
    assert!(!std::path::Path::new("/etc").join(format!("{marker}-2")).exists());

    let missing = driver.copy_out(&spec.id, "/no/such/file").await;
    assert!(matches!(missing, Err(Error::Invalid(_))));

    // A stopped instance's files are reachable too (through its overlay).
    driver.stop(&spec.id, Duration::from_secs(10)).await.unwrap();
    let mut out = Vec::new();
    driver.copy_out(&spec.id, "/tmp").await.unwrap().read_to_end(&mut out).await.unwrap();
    let names: Vec<String> = tar::Archive::new(&out[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "tmp/hello.txt"), "{names:?}");
    driver.delete(&spec.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_command_fails_start_cleanly() {
    let image = busybox().await;
    let env = Env::new("badcmd");
    let spec = env.spec(&image, Some(&["/no/such/binary"]));
    env.driver.prepare(&spec).await.unwrap();
    let started = env.driver.start(&spec.id).await;
    assert!(matches!(started, Err(Error::CommandNotFound(_))), "{started:?}");
    assert_eq!(env.driver.inspect(&spec.id).await.unwrap().status, InstanceStatus::Stopped);
    assert!(!env.config.runc_root.join(&spec.id).exists(), "runc state left behind");

    let bad = roost_node::InstanceSpec { memory_bytes: 1, ..env.spec(&image, None) };
    assert!(matches!(env.driver.prepare(&bad).await, Err(Error::Invalid(_))));
    assert!(matches!(env.driver.inspect("../etc").await, Err(Error::Invalid(_))));
    env.driver.delete(&spec.id).await.unwrap();
    env.driver.delete(&spec.id).await.unwrap();
    assert_eq!(env.driver.inspect(&spec.id).await.unwrap().status, InstanceStatus::Missing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_are_bind_mounted() {
    let image = busybox().await;
    let env = Env::new("volumes");
    let rw = tempfile::tempdir_in(common::TEST_DIR).unwrap();
    let ro = tempfile::tempdir_in(common::TEST_DIR).unwrap();
    std::fs::write(rw.path().join("host.txt"), "from the host\n").unwrap();
    let mut spec = env.spec(&image, None);
    spec.volumes = vec![
        roost_node::Mount { source: rw.path().to_path_buf(), destination: "/data".into(), read_only: false },
        roost_node::Mount { source: ro.path().to_path_buf(), destination: "/srv/ro".into(), read_only: true },
    ];
    env.run(&spec).await;
    let driver = &env.driver;
    assert_eq!(exec(driver, &spec.id, &["cat", "/data/host.txt"]).await.stdout, "from the host\n");
    assert_eq!(exec(driver, &spec.id, &["sh", "-c", "echo from the instance > /data/new.txt"]).await.code, 0);
    assert_eq!(std::fs::read_to_string(rw.path().join("new.txt")).unwrap(), "from the instance\n");
    assert_ne!(exec(driver, &spec.id, &["touch", "/srv/ro/x"]).await.code, 0, "a read-only volume");
    // copy_in reaches volumes too (it goes through the instance's own root).
    let tar = tar_of(&[("copied.txt", "copied\n")]);
    driver.copy_in(&spec.id, "/data", Box::new(std::io::Cursor::new(tar))).await.unwrap();
    assert_eq!(std::fs::read_to_string(rw.path().join("copied.txt")).unwrap(), "copied\n");
    driver.delete(&spec.id).await.unwrap();
    assert!(rw.path().join("host.txt").exists(), "delete leaves volume contents alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_rotate_at_their_cap() {
    let image = busybox().await;
    let env = Env::with("rotate", |config| config.log_max_bytes = 8 * 1024);
    // About 15 KB a second.
    let spec = env.spec(&image, Some(&["sh", "-c", "i=0; while :; do echo line $i; i=$((i+1)); usleep 500; done"]));
    env.run(&spec).await;
    let dir = env.driver.instance_dir(&spec.id);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let current = std::fs::metadata(dir.join("stdout.log")).unwrap().len();
    let rotated = std::fs::metadata(dir.join("stdout.1.log")).map(|m| m.len()).unwrap_or(0);
    assert!(rotated > 8 * 1024, "rotated once it passed the cap: {rotated}");
    assert!(current < 8 * 1024 + 64 * 1024, "the current file restarted: {current}");
    // Reading spans both generations, in order.
    let tail = LogQuery { tail: Some(50), ..LogQuery::default() };
    let lines: Vec<String> = env.driver.logs(&spec.id, tail).await.unwrap().map(|l| l.unwrap().line).collect().await;
    let numbers: Vec<u64> = lines.iter().filter_map(|l| l.strip_prefix("line ")?.parse().ok()).collect();
    assert!(numbers.len() >= 40, "{lines:?}");
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "in order: {numbers:?}");
    env.driver.delete(&spec.id).await.unwrap();
}

/// The lines of /proc/<pid>/status that say what a process may do.
fn privileges(status: &str) -> Vec<String> {
    let keys = ["Uid:", "Gid:", "CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:", "Seccomp:"];
    status.lines().filter(|l| keys.iter().any(|k| l.starts_with(k))).map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roost_init_serves_execs_as_pid_1() {
    let image = busybox().await;
    let env = Env::new("agent");
    let spec = env.spec(&image, None);
    env.run(&spec).await;
    let driver = &env.driver;
    let id = &spec.id;

    // pid 1 is roost-init (the default init), and execs go through it.
    assert_eq!(exec(driver, id, &["cat", "/proc/1/cmdline"]).await.stdout, "/dev/.roost-init\0");
    let parent = exec(driver, id, &["sh", "-c", "cut -d' ' -f4 /proc/$$/stat"]).await;
    assert_eq!(parent.stdout.trim(), "1", "the exec's parent is pid 1");
    // What it may do is exactly what pid 1 (the bundle's process, as runc set it up) may.
    let mine = exec(driver, id, &["cat", "/proc/self/status"]).await.stdout;
    let init = exec(driver, id, &["cat", "/proc/1/status"]).await.stdout;
    assert_eq!(privileges(&mine), privileges(&init));
    assert_eq!(privileges(&mine).len(), 9, "{mine}");
    // The agent's socket does not leak into the processes it starts.
    let fds = exec(driver, id, &["sh", "-c", "for f in /proc/$$/fd/*; do readlink $f; done"]).await.stdout;
    assert!(!fds.contains("socket:"), "{fds}");

    // A long output arrives whole, stdout and stderr apart.
    let long = exec(driver, id, &["sh", "-c", "seq 1 200000; echo done >&2"]).await;
    assert_eq!(long.stdout.lines().count(), 200000);
    assert!(long.stdout.ends_with("199999\n200000\n"));
    assert_eq!((long.code, long.stderr.as_str()), (0, "done\n"));

    // Concurrent execs each get their own pipes and exit code.
    let runs = (0..8).map(|i| {
        let script = format!("echo run{i}; exit {i}");
        async move { exec(driver, id, &["sh", "-c", &script]).await }
    });
    for (i, out) in futures_util::future::join_all(runs).await.into_iter().enumerate() {
        assert_eq!((out.code, out.stdout), (i as i32, format!("run{i}\n")));
    }

    // Signals reach the process through its host pid; the code says which.
    let request = ExecRequest { cmd: vec!["sleep".into(), "100".into()], ..Default::default() };
    let mut session = driver.exec(id, request).await.unwrap();
    let pid = session.host_pid().expect("a host pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains("\nSigBlk:\t0000000000000000\n"), "{status}");
    roost_node::reaper::signal(pid, libc::SIGTERM).unwrap();
    assert_eq!(tokio::time::timeout(Duration::from_secs(30), session.wait()).await.unwrap().unwrap(), 143);

    // Orphans are reaped by pid 1: no zombie stays once the background sleep is over.
    exec(driver, id, &["sh", "-c", "sleep 0.2 & exit 0"]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let states = exec(driver, id, &["sh", "-c", "cat /proc/[0-9]*/stat"]).await.stdout;
        let sleeping = states.contains("(sleep)");
        let zombies: Vec<&str> = states.lines().filter(|l| l.contains(") Z ")).collect();
        if !sleeping {
            assert!(zombies.is_empty(), "{zombies:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the orphan never ended: {states}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A restarted driver (a server restart) still reaches the agent.
    let second = env.reopen();
    assert_eq!(exec(&second, id, &["echo", "again"]).await.stdout, "again\n");

    // Stopping is what it was with the shell init: SIGTERM, exit 0.
    driver.stop(id, Duration::from_secs(10)).await.unwrap();
    let state = driver.inspect(id).await.unwrap();
    assert_eq!((state.status, state.exit_code), (InstanceStatus::Stopped, Some(0)));
    driver.delete(id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_agent_execs_use_runc() {
    let image = busybox().await;
    let env = Env::with("noagent", |c| c.exec_agent = false);
    let spec = env.spec(&image, None);
    env.run(&spec).await;
    let pid1 = exec(&env.driver, &spec.id, &["cat", "/proc/1/cmdline"]).await.stdout;
    assert!(pid1.starts_with("/bin/sh\0"), "{pid1:?}");
    let out = exec(&env.driver, &spec.id, &["sh", "-c", "echo $HOSTNAME; exit 4"]).await;
    assert_eq!((out.code, out.stdout), (4, format!("{}\n", spec.id)));
    env.driver.delete(&spec.id).await.unwrap();
}

/// The uid map of a host process: `(inside, outside, count)` lines.
fn uid_map(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap().split_whitespace().collect::<Vec<_>>().join(" ")
}

fn host_uid(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find(|l| l.starts_with("Uid:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `userns = on`: the container's root is the host range's first id; the image stays
/// shared and unshifted; files the container writes land on disk with the ids it saw;
/// volumes and copies in belong to its root; raw sockets (`NET_RAW`) work in its own
/// network namespace; the instance directory and the stage are cleaned up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_userns_on_the_container_root_is_unprivileged_on_the_host() {
    let image = busybox().await;
    let env = Env::with("userns-on", |c| c.userns = roost_node::drivers::container::userns::UsernsMode::On);
    let map = env.driver.idmap().expect("userns = on maps ids");
    let rw = tempfile::tempdir_in(common::TEST_DIR).unwrap();
    std::fs::write(rw.path().join("host.txt"), "from the host\n").unwrap();
    let mut spec = env.spec(&image, None);
    spec.volumes =
        vec![roost_node::Mount { source: rw.path().to_path_buf(), destination: "/data".into(), read_only: false }];
    env.run(&spec).await;
    let driver = &env.driver;
    let id = &spec.id;
    let pid = driver.inspect(id).await.unwrap().pid.unwrap();
    assert_eq!(uid_map(pid), format!("0 {} 65536", map.uid));
    assert_eq!(host_uid(pid), map.uid, "the container's root on the host");
    let inside = exec(driver, id, &["sh", "-c", "id -u; stat -c %u /bin/busybox; cat /proc/self/uid_map"]).await;
    assert!(inside.stdout.starts_with("0\n0\n"), "{inside:?}");
    // Writes: into the image (a copy-up), a new file, a chown to another user.
    let out = exec(driver, id, &["sh", "-c", "echo x >> /etc/passwd && mkdir /srv && echo y > /srv/f && chown 1000:1000 /srv/f && echo z > /data/new.txt"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let upper = driver.instance_dir(id).join("upper");
    let meta = |p: &Path| std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(p).unwrap());
    assert_eq!(meta(&upper.join("srv/f")), 1000, "stored with the id it has inside");
    assert_eq!(meta(&upper.join("etc/passwd")), 0);
    assert_eq!(meta(&image.rootfs.join("bin/busybox")), 0, "the shared image is untouched");
    assert_eq!(meta(&rw.path().join("new.txt")), 0, "a volume's files are the container root's");
    // copy_in writes as the container's root.
    let tar = tar_of(&[("copied.txt", "copied\n")]);
    driver.copy_in(id, "/srv", Box::new(std::io::Cursor::new(tar))).await.unwrap();
    assert_eq!(meta(&upper.join("srv/copied.txt")), 0);
    assert_eq!(exec(driver, id, &["cat", "/srv/copied.txt"]).await.stdout, "copied\n");
    // copy_out carries the owners the files have inside.
    let mut out = driver.copy_out(id, "/srv").await.unwrap();
    let mut bytes = Vec::new();
    out.read_to_end(&mut bytes).await.unwrap();
    let mut archive = tar::Archive::new(&bytes[..]);
    let owners: Vec<(String, u64)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.path().unwrap().display().to_string(), e.header().uid().unwrap())
        })
        .collect();
    assert!(owners.contains(&("srv/f".to_string(), 1000)) && owners.contains(&("srv".to_string(), 0)), "{owners:?}");
    // The same privileges for execs as for pid 1, seccomp included.
    let mine = exec(driver, id, &["cat", "/proc/self/status"]).await.stdout;
    let init = exec(driver, id, &["cat", "/proc/1/status"]).await.stdout;
    assert_eq!(privileges(&mine), privileges(&init));
    assert!(mine.contains("Seccomp:\t2"), "{mine}");
    // A restart keeps it mapped.
    driver.stop(id, Duration::from_secs(10)).await.unwrap();
    driver.start(id).await.unwrap();
    let pid = driver.inspect(id).await.unwrap().pid.unwrap();
    assert_eq!(host_uid(pid), map.uid);
    assert_eq!(exec(driver, id, &["cat", "/srv/f"]).await.stdout, "y\n");
    driver.delete(id).await.unwrap();
    assert!(!driver.instance_dir(id).exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(id.as_str()), "mounts left: {mounts}");
}

/// `userns = off` (and an instance that adds MKNOD): ids are the host's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_userns_off_ids_are_the_hosts() {
    let image = busybox().await;
    let env = Env::with("userns-off", |c| c.userns = roost_node::drivers::container::userns::UsernsMode::Off);
    assert_eq!(env.driver.idmap(), None);
    let spec = env.spec(&image, None);
    env.run(&spec).await;
    let pid = env.driver.inspect(&spec.id).await.unwrap().pid.unwrap();
    assert_eq!(uid_map(pid), "0 0 4294967295");
    assert_eq!(host_uid(pid), 0);
    assert_eq!(exec(&env.driver, &spec.id, &["sh", "-c", "echo ok > /f && cat /f"]).await.stdout, "ok\n");

    let on = Env::with("userns-mknod", |c| c.userns = roost_node::drivers::container::userns::UsernsMode::On);
    let mut spec = on.spec(&image, None);
    spec.capabilities_add = vec!["MKNOD".into()];
    on.run(&spec).await;
    let pid = on.driver.inspect(&spec.id).await.unwrap().pid.unwrap();
    assert_eq!(uid_map(pid), "0 0 4294967295", "MKNOD needs the host's user namespace");
    let made = exec(&on.driver, &spec.id, &["sh", "-c", "mknod /dev/null2 c 1 3 && echo made"]).await;
    assert_eq!(made.stdout, "made\n", "{made:?}");
}

/// `auto` turns user namespaces off where the data directory's filesystem cannot be
/// idmapped (an overlayfs, as a container's own root would be); `on` refuses to start
/// there with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_and_on_refuses_where_idmapped_mounts_are_missing() {
    let base = tempfile::tempdir_in(common::TEST_DIR).unwrap();
    let (lower, upper, work, merged) =
        (base.path().join("l"), base.path().join("u"), base.path().join("w"), base.path().join("m"));
    for d in [&lower, &upper, &work, &merged] {
        std::fs::create_dir_all(d).unwrap();
    }
    let options = format!("lowerdir={},upperdir={},workdir={}", lower.display(), upper.display(), work.display());
    let status = std::process::Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &options])
        .arg(&merged)
        .status()
        .unwrap();
    assert!(status.success());
    let config = |mode| {
        let mut c = roost_node::drivers::container::ContainerConfig::new(merged.join("data"));
        c.runc_root = Path::new("/run/roost-node-tests").join(format!("userns-auto-{}", std::process::id()));
        c.cgroup_parent = "roost-test".into();
        c.userns = mode;
        c
    };
    use roost_node::drivers::container::userns::UsernsMode;
    let auto = roost_node::drivers::container::ContainerDriver::new(config(UsernsMode::Auto)).unwrap();
    assert_eq!(auto.idmap(), None, "no idmapped mounts on an overlayfs");
    drop(auto);
    let err = roost_node::drivers::container::ContainerDriver::new(config(UsernsMode::On)).err().expect("refused");
    assert!(err.to_string().contains("cannot run in a user namespace"), "{err}");
    let _ = std::process::Command::new("umount").arg("-l").arg(&merged).status();
}
