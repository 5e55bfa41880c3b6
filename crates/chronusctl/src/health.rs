//! `chronusctl status --check`: one health verdict for monitoring scripts, from two
//! status readings a window apart: both slots in lockstep, the device present and
//! its clock advancing, and no underrun during the window.

use serde_json::Value;

/// What is wrong, one line each; empty when healthy.
pub fn problems(before: &[(String, Value)], after: &[(String, Value)]) -> Vec<String> {
    let text = |pairs: &[(String, Value)], key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_str().map(str::to_owned))
    };
    let number = |pairs: &[(String, Value)], key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_u64().or_else(|| v.as_bool().map(u64::from)))
    };
    let mut problems = Vec::new();
    for slot in 0..2 {
        let key = format!("slot{slot}_state");
        match text(after, &key) {
            Some(state) if state == "lockstep" => {}
            Some(state) => problems.push(format!("slot {slot} is {state}, not in lockstep")),
            None => problems.push(format!("the status has no {key}")),
        }
    }
    if number(after, "device_lost") == Some(1) {
        problems.push("the audio device is lost (playing on the null clock)".into());
    }
    match (number(before, "frames"), number(after, "frames")) {
        (Some(a), Some(b)) if b > a => {}
        (Some(_), Some(_)) => problems.push("the audio clock did not advance".into()),
        _ => problems.push("the status has no frames".into()),
    }
    match (
        number(before, "underrun_frames"),
        number(after, "underrun_frames"),
    ) {
        (Some(a), Some(b)) if b > a => {
            problems.push(format!("{} underrun frames during the check", b - a))
        }
        (Some(_), Some(_)) => {}
        _ => problems.push("the status has no underrun_frames".into()),
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(frames: u64, underruns: u64, slot1: &str, lost: bool) -> Vec<(String, Value)> {
        vec![
            ("frames".into(), frames.into()),
            ("underrun_frames".into(), underruns.into()),
            ("slot0_state".into(), "lockstep".into()),
            ("slot1_state".into(), slot1.into()),
            ("device_lost".into(), lost.into()),
        ]
    }

    #[test]
    fn a_healthy_daemon_has_no_problem() {
        let before = status(1000, 0, "lockstep", false);
        let after = status(49_000, 0, "lockstep", false);
        assert!(problems(&before, &after).is_empty());
    }

    #[test]
    fn each_problem_is_named() {
        let before = status(1000, 5, "lockstep", false);
        let after = status(1000, 9, "dead", true);
        assert_eq!(
            problems(&before, &after),
            [
                "slot 1 is dead, not in lockstep",
                "the audio device is lost (playing on the null clock)",
                "the audio clock did not advance",
                "4 underrun frames during the check",
            ]
        );
    }
}
