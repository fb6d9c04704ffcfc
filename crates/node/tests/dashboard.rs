//! The dashboard in a real browser: `serve --demo` on a free loopback port, the page loaded in
//! headless Chromium until the crash shows; the liquidation feed and the insurance fund chart
//! must have updated (read from the DOM), the page must not show the token, and a screenshot is
//! written (`target/tmp/artifacts/dashboard.png`). Without Chromium the test is skipped loudly,
//! except in CI (`SOLVENT_CI` set), where `.ci/run` installs Debian's `chromium`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SOLVENT_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|path| path.is_file())
}

/// Kills the demo server (by its pid) when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `solvent-serve --demo` (the alias of `solvent serve --demo`); the dashboard URL with
/// the viewer token, and the token.
fn start_demo() -> (Server, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_solvent-serve"))
        .args(["--demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn solvent-serve --demo");
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let (sender, receiver) = std::sync::mpsc::channel();
    // Drain stdout for the whole run (the demo prints effects as they happen).
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.trim().strip_prefix("dashboard with it: ") {
                let _ = sender.send(url.to_string());
            }
        }
    });
    let url = receiver.recv_timeout(Duration::from_secs(60)).expect("the demo prints its dashboard URL");
    let token = url.split("#token=").nth(1).expect("the URL carries the viewer token").to_string();
    (server, url, token)
}

fn chromium_command(chromium: &std::path::Path, profile: &std::path::Path) -> Command {
    let mut command = Command::new(chromium);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1400,1300",
            "--virtual-time-budget=4000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .stderr(Stdio::null());
    command
}

fn attribute(dom: &str, element_id: &str, name: &str) -> Option<String> {
    let start = dom.find(&format!("id=\"{element_id}\""))?;
    let tag_end = start + dom[start..].find('>')?;
    let tag = &dom[start..tag_end];
    let at = tag.find(&format!("{name}=\""))? + name.len() + 2;
    Some(tag[at..at + tag[at..].find('"')?].to_string())
}

#[test]
fn the_dashboard_shows_the_demo_crash_in_a_real_browser() {
    let Some(chromium) = chromium() else {
        assert!(std::env::var_os("SOLVENT_CI").is_none(), "CI must have chromium (.ci/run installs it)");
        eprintln!("SKIPPED the_dashboard_shows_the_demo_crash_in_a_real_browser: no chromium on PATH (apt-get install chromium)");
        return;
    };
    let (_server, url, token) = start_demo();
    let profile = tempfile::tempdir().unwrap();
    let deadline = Instant::now() + Duration::from_secs(150);
    let (mut liquidations, mut fund_points, mut dom) = (0u64, 0u64, String::new());
    while Instant::now() < deadline {
        let output = chromium_command(&chromium, profile.path()).arg("--dump-dom").arg(&url).output().unwrap();
        dom = String::from_utf8_lossy(&output.stdout).into_owned();
        liquidations = attribute(&dom, "feed", "data-count").and_then(|v| v.parse().ok()).unwrap_or(0);
        fund_points = attribute(&dom, "fund-chart", "data-points").and_then(|v| v.parse().ok()).unwrap_or(0);
        if liquidations > 0 && fund_points >= 2 && dom.contains("class=\"heat\"") {
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(liquidations > 0, "the liquidation feed never showed a liquidation:\n{dom}");
    assert!(dom.contains("class=\"liq\""), "the feed lists liquidation entries");
    assert!(fund_points >= 2, "the insurance fund chart has {fund_points} points");
    assert!(dom.contains("<path"), "the fund chart is drawn");
    assert!(dom.contains("BTC-PERP / s1") && dom.contains("usable"), "every source's status is shown");
    assert!(dom.contains("class=\"heat\""), "a liquidation heat map per market with a mark is drawn");
    assert!(!dom.contains(&token), "the page never shows the token");
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let status =
        chromium_command(&chromium, profile.path()).arg(format!("--screenshot={}", shot.display())).arg(&url).status();
    assert!(status.is_ok_and(|s| s.success()), "chromium took the screenshot");
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "screenshot {} is {size} bytes", shot.display());
    eprintln!("dashboard screenshot: {}", shot.display());
}
