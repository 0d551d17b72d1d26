//! A real server restart: one process starts an instance and exits; a new process adopts
//! it. Alone in its test binary because being a child subreaper is process-wide: this
//! process must not be one when the first process exits, exactly as after a real crash
//! (the instance's init is then reparented elsewhere, and its exit status is lost to us).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{busybox, exec, unique_id};
use futures_util::FutureExt;
use roost_node::drivers::container::{ContainerConfig, ContainerDriver};
use roost_node::{Driver, InstanceSpec, InstanceStatus};

const CHILD: &str = "ROOST_NODE_TEST_RESTART_CHILD";

fn config(tag: &str) -> ContainerConfig {
    let mut config = ContainerConfig::new(PathBuf::from(common::TEST_DIR).join("data").join(tag));
    config.runc_root = PathBuf::from("/run/roost-node-tests").join(tag);
    config.cgroup_parent = "roost-test".into();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_survive_a_server_restart() {
    // The first "server": started as a child process of this test, it runs one instance
    // and exits.
    if let Ok(spec) = std::env::var(CHILD) {
        let spec: InstanceSpec = serde_json::from_str(&spec).unwrap();
        let driver = ContainerDriver::new(config(&std::env::var("ROOST_NODE_TEST_TAG").unwrap())).unwrap();
        driver.prepare(&spec).await.unwrap();
        driver.start(&spec.id).await.unwrap();
        return;
    }

    let image = busybox().await;
    let tag = format!("restart-{}", std::process::id());
    let id = unique_id();
    let spec = InstanceSpec {
        hostname: "restarted".into(),
        id: id.clone(),
        rootfs: image.rootfs.clone(),
        cmd: None,
        env: Vec::new(),
        cpus: 1.0,
        memory_bytes: 64 << 20,
        pids_limit: 64,
        networks: Vec::new(),
        dns: None,
        volumes: Vec::new(),
        disks: Vec::new(),
        capabilities_add: Vec::new(),
    };
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "instances_survive_a_server_restart", "--quiet"])
        .env(CHILD, serde_json::to_string(&spec).unwrap())
        .env("ROOST_NODE_TEST_TAG", &tag)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the first server failed");

    // The second "server" knows only the directories.
    let driver = ContainerDriver::new(config(&tag)).unwrap();
    let checks = async {
        assert!(driver.list().await.unwrap().contains(&id));
        let state = driver.inspect(&id).await.unwrap();
        assert_eq!(state.status, InstanceStatus::Running, "{state:?}");
        assert_ne!(roost_node::reaper::ProcStat::read(state.pid.unwrap()).unwrap().ppid, std::process::id());
        assert_eq!(exec(&driver, &id, &["hostname"]).await.stdout, "restarted\n");

        driver.stop(&id, Duration::from_secs(10)).await.unwrap();
        let state = driver.inspect(&id).await.unwrap();
        assert_eq!(state.status, InstanceStatus::Stopped);
        // Its init was not our child when it exited: the status says the code is unknown.
        assert!(state.exit_unknown && state.exit_code.is_none(), "{state:?}");

        // Started by this server, it is ours again.
        driver.start(&id).await.unwrap();
        driver.stop(&id, Duration::from_secs(10)).await.unwrap();
        let state = driver.inspect(&id).await.unwrap();
        assert_eq!((state.exit_code, state.exit_unknown), (Some(0), false), "{state:?}");
    };
    // Clean up even when a check fails.
    let result = std::panic::AssertUnwindSafe(checks).catch_unwind().await;
    driver.delete(&id).await.unwrap();
    let _ = std::fs::remove_dir_all(&driver.config().data_dir);
    let _ = std::fs::remove_dir(&driver.config().runc_root);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
