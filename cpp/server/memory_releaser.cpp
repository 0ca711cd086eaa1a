#include "server/memory_releaser.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace kasagi::server {

MemoryReleaser::MemoryReleaser(std::chrono::milliseconds period, std::size_t free_bytes_threshold)
    : period_(period), threshold_(free_bytes_threshold), thread_([this] { run(); }) {}

MemoryReleaser::~MemoryReleaser() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void MemoryReleaser::run() {
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, period_, [this] { return stopping_; })) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    // fordblks: bytes in free chunks, i.e. what a trim could give back at most.
    if (mallinfo2().fordblks >= threshold_) malloc_trim(0);
#endif
  }
}

}  // namespace kasagi::server
