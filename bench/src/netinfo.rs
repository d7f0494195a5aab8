//! Facts about lab interfaces, read with `ip -n NS -j` (never from `/sys`
//! in a setns'd thread: `/sys` keeps showing the namespace it was mounted
//! in).
use anyhow::{anyhow, Context};
use std::process::{Command, Stdio};

/// The MAC address of `interface` in namespace `ns`.
pub fn interface_mac(ns: &str, interface: &str) -> anyhow::Result<[u8; 6]> {
    sluice_lab::validate_ns_name(ns)?;
    let out = Command::new("ip")
        .args(["-n", ns, "-j", "link", "show", "dev", interface])
        .stdin(Stdio::null())
        .output()
        .context("running ip")?;
    if !out.status.success() {
        return Err(anyhow!(
            "ip -n {ns} -j link show dev {interface}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    mac_from_link_json(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| format!("MAC address of {interface} in {ns}"))
}

/// The `address` of the first link in `ip -j link show` output.
pub fn mac_from_link_json(text: &str) -> anyhow::Result<[u8; 6]> {
    let v: serde_json::Value = serde_json::from_str(text).context("ip -j output is not JSON")?;
    let addr = v
        .get(0)
        .and_then(|l| l.get("address"))
        .and_then(|a| a.as_str())
        .ok_or_else(|| anyhow!("no \"address\" in ip -j output"))?;
    crate::frame::parse_mac(addr).ok_or_else(|| anyhow!("bad MAC address {addr:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_from_ip_json() {
        let text = r#"[{"ifindex":5,"link_index":4,"ifname":"sluice1","flags":["BROADCAST","UP"],
            "mtu":1500,"link_type":"ether","address":"6a:1f:00:c3:9e:02","broadcast":"ff:ff:ff:ff:ff:ff"}]"#;
        assert_eq!(mac_from_link_json(text).unwrap(), [0x6a, 0x1f, 0x00, 0xc3, 0x9e, 0x02]);
        assert!(mac_from_link_json("[]").is_err());
        assert!(mac_from_link_json("not json").is_err());
        assert!(mac_from_link_json(r#"[{"address":"bogus"}]"#).is_err());
    }

    #[test]
    fn only_lab_namespaces_are_asked() {
        assert!(interface_mac("default", "lo").is_err());
    }
}
