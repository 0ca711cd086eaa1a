// Gives memory the allocator holds but no longer uses back to the operating system.
//
// glibc's malloc keeps freed chunks in its arenas: after a burst (large deltas, a flood, a
// room's history let go) the process keeps the peak RSS, because a page is returned only
// when nothing at all is left on it, and pieces of long-lived data are everywhere. A
// thread of its own checks every few seconds how much the arenas hold free, and past a
// threshold asks malloc_trim to give those pages back. It runs off the I/O threads, since a
// trim walks every arena under its lock. Elsewhere than glibc it does nothing.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>

namespace kasagi::server {

class MemoryReleaser {
 public:
  MemoryReleaser(std::chrono::milliseconds period, std::size_t free_bytes_threshold);
  ~MemoryReleaser();  // stops the thread
  MemoryReleaser(const MemoryReleaser&) = delete;
  MemoryReleaser& operator=(const MemoryReleaser&) = delete;

 private:
  void run();

  const std::chrono::milliseconds period_;
  const std::size_t threshold_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace kasagi::server
