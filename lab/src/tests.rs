//! Tests of whole labs. Those that create namespaces need root; see [`crate::root_or_skip`].

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use super::*;

/// Sends `payload` from the client side to the server side and back over UDP.
fn udp_round_trip(lab: &Lab, payload: &[u8]) -> std::io::Result<()> {
    let server_addr = SocketAddrV4::new(lab.addr(Side::Server), 0);
    let client_addr = SocketAddrV4::new(lab.addr(Side::Client), 0);
    let server = lab.run_on(Side::Server, || UdpSocket::bind(server_addr)).map_err(std::io::Error::other)??;
    let client = lab.run_on(Side::Client, || UdpSocket::bind(client_addr)).map_err(std::io::Error::other)??;
    let timeout = Some(Duration::from_millis(500));
    server.set_read_timeout(timeout)?;
    client.set_read_timeout(timeout)?;
    let target = server.local_addr()?;
    let mut buf = [0u8; 64];
    let mut last_err = None;
    for _ in 0..6 {
        client.send_to(payload, target)?;
        match server.recv_from(&mut buf) {
            Ok((n, from)) => {
                assert_eq!(&buf[..n], payload);
                assert_eq!(from, client.local_addr()?);
                server.send_to(&buf[..n], from)?;
                let (n, from) = client.recv_from(&mut buf)?;
                assert_eq!(&buf[..n], payload);
                assert_eq!(from, target);
                return Ok(());
            }
            Err(err) => last_err = Some(err),
        }
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("no reply")))
}

#[test]
fn lab_with_two_queues_works_and_is_removed_on_drop() {
    if !root_or_skip("lab_with_two_queues_works_and_is_removed_on_drop") {
        return;
    }
    let lab = Lab::up(LabConfig::unique("q2").with_queues(2)).expect("lab up");
    let (server_ns, client_ns) = (lab.server_ns.clone(), lab.client_ns.clone());
    assert!(ns_exists(&server_ns) && ns_exists(&client_ns));
    assert!(Lab::list().contains(&lab.config.name));

    let status = lab.status().expect("status");
    assert_eq!(status.server.rx_queues, 2, "{status}");
    assert_eq!(status.server.tx_queues, 2, "{status}");
    assert_eq!(status.client.rx_queues, 2, "{status}");
    assert!(status.server.link_up() && status.client.link_up(), "{status}");
    assert_eq!(status.server.addresses, vec![(Ipv4Addr::new(198, 18, 0, 2), 24)]);
    assert_eq!(status.client.addresses, vec![(Ipv4Addr::new(198, 18, 0, 1), 24)]);
    assert_eq!(lab.server_rx_queues(), 2);

    let out = lab.command_in(Side::Client, "ethtool").args(["-k", "sluice1"]).output().expect("ethtool -k");
    let features = String::from_utf8_lossy(&out.stdout);
    assert!(features.contains("tx-checksumming: off"), "{features}");

    udp_round_trip(&lab, b"sluice-lab ping").expect("UDP round trip through the veth");

    let name = lab.config.name.clone();
    drop(lab);
    assert!(!ns_exists(&server_ns), "{server_ns} left behind");
    assert!(!ns_exists(&client_ns), "{client_ns} left behind");
    assert!(!Lab::list().contains(&name));
}

#[test]
fn address_outside_198_18_is_refused_before_anything_is_created() {
    let mut cfg = LabConfig::unique("bad");
    cfg.server_addr = Ipv4Addr::new(10, 1, 2, 3);
    let (server_ns, client_ns) = (cfg.server_ns(), cfg.client_ns());
    let err = Lab::up(cfg).expect_err("10.1.2.3 must be refused");
    assert!(matches!(err, LabError::AddressOutOfRange { .. }), "{err}");
    assert!(err.to_string().contains("198.18.0.0/15"), "{err}");
    assert!(!ns_exists(&server_ns) && !ns_exists(&client_ns));

    let mut cfg = LabConfig::unique("bad");
    cfg.client_addr = Ipv4Addr::new(127, 0, 0, 1);
    assert!(matches!(Lab::up(cfg), Err(LabError::AddressOutOfRange { .. })));
}

#[test]
fn lab_is_removed_when_the_test_body_panics() {
    if !root_or_skip("lab_is_removed_when_the_test_body_panics") {
        return;
    }
    let cfg = LabConfig::unique("panic");
    let (server_ns, client_ns) = (cfg.server_ns(), cfg.client_ns());
    let result = catch_unwind(AssertUnwindSafe(|| {
        let _lab = Lab::up(cfg).expect("lab up");
        assert!(ns_exists(&server_ns) && ns_exists(&client_ns));
        panic!("deliberate panic with a live lab");
    }));
    assert!(result.is_err());
    assert!(!ns_exists(&server_ns), "{server_ns} left behind");
    assert!(!ns_exists(&client_ns), "{client_ns} left behind");
}

#[test]
fn failed_setup_removes_what_it_created_and_names_the_command() {
    if !root_or_skip("failed_setup_removes_what_it_created_and_names_the_command") {
        return;
    }
    let mut cfg = LabConfig::unique("fail");
    cfg.server_if = "lo".to_string(); // exists in every namespace: `link add lo` fails
    let (server_ns, client_ns) = (cfg.server_ns(), cfg.client_ns());
    let err = Lab::up(cfg).expect_err("veth named lo must fail");
    let msg = err.to_string();
    assert!(matches!(err, LabError::CommandFailed { .. }), "{msg}");
    assert!(msg.contains("link add lo"), "{msg}");
    assert!(msg.contains("exists"), "stderr missing: {msg}");
    assert!(!ns_exists(&server_ns) && !ns_exists(&client_ns));
}

#[test]
fn kept_lab_survives_drop_and_can_be_attached_and_removed() {
    if !root_or_skip("kept_lab_survives_drop_and_can_be_attached_and_removed") {
        return;
    }
    let mut cfg = LabConfig::unique("keep").with_queues(3);
    cfg.server_addr = Ipv4Addr::new(198, 19, 7, 10);
    cfg.client_addr = Ipv4Addr::new(198, 19, 7, 9);
    cfg.client_if = "cl0".to_string();
    let name = cfg.name.clone();
    let expected = cfg.clone();
    let lab = Lab::up(cfg).expect("lab up").keep();
    assert!(lab.is_kept());
    // Guard: whatever happens below, remove the namespaces at the end of the test.
    let guard = Lab::attach(&name).expect("attach");
    drop(lab);
    assert!(Lab::list().contains(&name), "kept lab vanished on drop");

    let err = Lab::up(expected.clone()).expect_err("second lab with the same name");
    assert!(matches!(err, LabError::AlreadyExists { .. }), "{err}");
    assert!(Lab::list().contains(&name), "failed up removed a lab it did not create");

    let attached = Lab::attach(&name).expect("attach");
    assert_eq!(attached.config, expected);
    attached.down().expect("down");
    assert!(!Lab::list().contains(&name));
    assert!(matches!(Lab::attach(&name), Err(LabError::NotFound { .. })));
    drop(guard);
}

#[test]
fn threads_spawned_inside_run_in_inherit_the_namespace() {
    if !root_or_skip("threads_spawned_inside_run_in_inherit_the_namespace") {
        return;
    }
    let lab = Lab::up(LabConfig::unique("inh")).expect("lab up");
    let outside = current_netns().expect("netns");
    let (inside, child, grandchild) = lab
        .run_on(Side::Server, || {
            let inside = current_netns().expect("netns");
            let child = std::thread::spawn(|| {
                let me = current_netns().expect("netns");
                let grandchild = std::thread::spawn(current_netns).join().expect("join").expect("netns");
                (me, grandchild)
            })
            .join()
            .expect("join");
            (inside, child.0, child.1)
        })
        .expect("run_in");
    assert_ne!(inside, outside, "run_in did not switch namespace");
    assert_eq!(child, inside, "spawned thread did not inherit the namespace");
    assert_eq!(grandchild, inside);
    assert_eq!(current_netns().expect("netns"), outside, "caller was moved");
    let client = lab.run_on(Side::Client, || current_netns().expect("netns")).expect("run_in");
    assert_ne!(client, inside);
}

#[test]
fn lab_names_are_parsed_from_ip_netns_list() {
    let out = "sluice-b-s (id: 2)\nsluice-b-c (id: 1)\nother\nsluice-a-c\nsluice-X-s\n";
    assert_eq!(parse_lab_names(out), vec!["a".to_string(), "b".to_string()]);
}

#[test]
fn attach_validates_the_name() {
    assert!(matches!(Lab::attach("../etc"), Err(LabError::InvalidName { .. })));
}
