//! Progress bars on stderr (hidden when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar over `total_bytes` of input; a spinner when the size is unknown (stdin).
pub fn bytes_bar(total_bytes: u64, message: &'static str) -> ProgressBar {
    let bar = if total_bytes == 0 { ProgressBar::new_spinner() } else { ProgressBar::new(total_bytes) };
    bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
    let template = "{msg} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_message(message);
    bar
}
