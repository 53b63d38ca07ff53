//! The process's memory figures for the benches that report them.

/// A `/proc/self/status` field (`VmRSS:`, `VmHWM:`) in KiB (Linux; 0 elsewhere).
pub fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
}

/// [`status_kib`] in MiB.
#[allow(dead_code)]
pub fn status_mib(field: &str) -> u64 {
    status_kib(field) / 1024
}
