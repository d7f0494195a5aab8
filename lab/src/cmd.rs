//! Running external commands (`ip`, `ethtool`) with errors that name the command.

use std::process::{Command, Stdio};

use crate::LabError;

/// The command line of `cmd` as text, for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Runs `cmd` to completion and returns its stdout; fails with the command line and stderr.
pub(crate) fn run(cmd: &mut Command) -> Result<String, LabError> {
    let command = describe(cmd);
    let output =
        cmd.stdin(Stdio::null()).output().map_err(|source| LabError::Spawn { command: command.clone(), source })?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    Err(LabError::CommandFailed {
        command,
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}

/// `ip <args…>`.
pub(crate) fn ip(args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    cmd
}

/// `ip -n <ns> <args…>`.
pub(crate) fn ip_in(ns: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.arg("-n").arg(ns).args(args);
    cmd
}

/// `ip netns exec <ns> <program>`.
pub(crate) fn exec_in(ns: &str, program: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, program]);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_joins_program_and_args() {
        let cmd = ip_in("sluice-x-s", &["link", "show"]);
        assert_eq!(describe(&cmd), "ip -n sluice-x-s link show");
    }

    #[test]
    fn failures_name_the_command() {
        let err = run(Command::new("sh").args(["-c", "echo oops >&2; exit 3"])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("sh -c"), "{msg}");
        assert!(msg.contains("oops"), "{msg}");
        let err = run(&mut Command::new("/nonexistent/sluice-prog")).unwrap_err();
        assert!(matches!(err, LabError::Spawn { .. }));
    }
}
