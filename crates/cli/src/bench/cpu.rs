//! CPU time, to report replay costs that do not depend on what else the (shared) machine runs:
//! wall-clock throughput drops when other processes take the cores, CPU time per event much less.
//! Linux only (`/proc`); `None` elsewhere, and the figures that need it are then left out.

/// CPU time of the calling thread, ns (`se.sum_exec_runtime` of `/proc/thread-self/sched`).
pub fn thread_ns() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/sched").ok()?;
    let line = text.lines().find(|l| l.starts_with("se.sum_exec_runtime"))?;
    let ms: f64 = line.split(':').nth(1)?.trim().parse().ok()?;
    Some(ms * 1e6)
}

/// Clock ticks per second of the times in `/proc/*/stat` (`USER_HZ`, fixed at 100 by the Linux
/// user-space ABI whatever the kernel's internal tick rate).
const USER_HZ: f64 = 100.0;

/// CPU time of the whole process, every thread including those that have exited, ns (user +
/// system time of `/proc/self/stat`, in 10 ms ticks).
pub fn process_ns() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces); utime and
    // stime are fields 14 and 15 of the line, so 12 and 13 after it.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / USER_HZ * 1e9)
}
