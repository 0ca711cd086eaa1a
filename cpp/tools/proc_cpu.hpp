// CPU time of processes, for "server CPU-µs per operation".
#pragma once
#include <optional>

namespace kasagi::tools {

// Returns the CPU time (user + system, all threads) process `pid` has used so far, in
// seconds, from /proc/<pid>/stat (resolution: one clock tick, usually 10 ms); nullopt when
// the process does not exist or the file cannot be parsed.
std::optional<double> process_cpu_seconds(int pid);

// Returns the CPU time (user + system) this process has used so far, in seconds.
double self_cpu_seconds();

// Returns the busy time of all CPUs of the machine so far (everything but idle and iowait,
// from the first line of /proc/stat), in seconds: with the parts above, it tells how much
// of the machine other processes took; nullopt when /proc/stat cannot be read.
std::optional<double> machine_busy_seconds();

// Raises this process's soft limit on open files to its hard limit, so that a thousand
// connections fit. Returns the soft limit in effect afterwards.
unsigned long raise_open_file_limit();

}  // namespace kasagi::tools
