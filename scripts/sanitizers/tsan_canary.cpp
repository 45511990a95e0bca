// ThreadSanitizer canary for scripts/ci-sanitizers.sh: a deliberate data race, built with the
// TSan run's flags and run under scripts/sanitizers/tsan.supp. The TSan step fails unless TSan
// reports each race it must see, so the suppressions can never grow to hide our own code
// without CI noticing (docs/HARDENING.md, "TSan and the uninstrumented libraries").
//
//   tsan_canary thread        two std::threads increment one int: must be reported
//   tsan_canary main-vs-tbb   the main thread and a TBB task (tbb::task_group) race
//   tsan_canary parallel-for  two parallel_for iterations race
//   tsan_canary pipeline      two calls of a parallel pipeline filter race
//   tsan_canary clean         the same TBB constructs used correctly (data handed from filter
//                             to filter, results read after the join): must NOT be reported
// All but `clean` must be reported; with the TBB hand-overs made visible by tsan_tbb_edges.so
// (LD_PRELOAD), `clean` shows that TBB's own synchronisation gives no false report.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string_view>
#include <thread>
#include <vector>

#include <tbb/parallel_for.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_group.h>

namespace {

int shared_counter = 0;  // the raced-on variable

// Makes the first two callers meet, so that they run at the same time on two threads (TBB
// could otherwise run both on one), then lets each go on unordered with the other: a
// rendezvous orders what comes before it, not what comes after. Gives up after 10 s (one CPU).
void rendezvous() {
  static std::atomic<int> arrived{0};
  if (arrived.fetch_add(1) >= 2) return;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (arrived.load() < 2 && std::chrono::steady_clock::now() < give_up)
    std::this_thread::yield();
}

}  // namespace

int main(int argc, char** argv) {
  const std::string_view mode = argc > 1 ? argv[1] : "thread";
  if (mode == "thread") {
    std::thread a([] { ++shared_counter; });
    std::thread b([] { ++shared_counter; });
    a.join();
    b.join();
  } else if (mode == "main-vs-tbb") {
    // The task (on a worker: the main thread has not called wait() yet) says it runs and waits;
    // the main thread writes, lets it go, and it writes. Relaxed atomics order the two writes in
    // time without a happens-before edge, so TSan sees the second against the first every time.
    // (With a release/acquire hand-shake and the task writing first, TSan reported the race in
    // only about half of the runs: the write shared the epoch that the release published.)
    std::atomic<bool> started{false}, go{false};
    tbb::task_group g;
    g.run([&] {
      started.store(true, std::memory_order_relaxed);
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (!go.load(std::memory_order_relaxed) && std::chrono::steady_clock::now() < give_up)
        std::this_thread::yield();
      ++shared_counter;
    });
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!started.load(std::memory_order_relaxed) && std::chrono::steady_clock::now() < give_up)
      std::this_thread::yield();
    ++shared_counter;
    go.store(true, std::memory_order_relaxed);
    g.wait();
  } else if (mode == "parallel-for") {
    tbb::parallel_for(
        tbb::blocked_range<int>(0, 2, 1),
        [](const tbb::blocked_range<int>&) {
          rendezvous();
          ++shared_counter;
        },
        tbb::simple_partitioner());
  } else if (mode == "pipeline") {
    int item = 0;
    tbb::parallel_pipeline(8,
                           tbb::make_filter<void, int*>(tbb::filter_mode::serial_in_order,
                                                        [&](tbb::flow_control& fc) -> int* {
                                                          if (item++ == 1000) fc.stop();
                                                          return &shared_counter;
                                                        }) &
                               tbb::make_filter<int*, void>(tbb::filter_mode::parallel, [](int* p) {
                                 rendezvous();
                                 ++*p;
                               }));
  } else if (mode == "clean") {
    // parallel_for writing disjoint elements, read after the join
    std::vector<int> v(1 << 16);
    tbb::parallel_for(0, static_cast<int>(v.size()), [&](int i) { v[i] = i; });
    long sum = 0;
    for (int x : v) sum += x;
    // a pipeline: a serial source, a parallel filter on the item, a serial sink with state
    int next = 0;
    long total = 0;
    tbb::parallel_pipeline(
        4,
        tbb::make_filter<void, std::vector<int>*>(tbb::filter_mode::serial_in_order,
                                                  [&](tbb::flow_control& fc) -> std::vector<int>* {
                                                    if (next == 200) {
                                                      fc.stop();
                                                      return nullptr;
                                                    }
                                                    return new std::vector<int>(64, next++);
                                                  }) &
            tbb::make_filter<std::vector<int>*, std::vector<int>*>(tbb::filter_mode::parallel,
                                                                   [](std::vector<int>* b) {
                                                                     for (int& x : *b) x *= 2;
                                                                     return b;
                                                                   }) &
            tbb::make_filter<std::vector<int>*, void>(tbb::filter_mode::serial_in_order,
                                                      [&](std::vector<int>* b) {
                                                        for (int x : *b) total += x;
                                                        delete b;
                                                      }));
    // a task_group's result, read after wait()
    tbb::task_group g;
    g.run([] { shared_counter = 42; });
    g.wait();
    std::printf("%ld %ld ", sum, total);
  } else {
    std::fprintf(stderr, "usage: tsan_canary thread|main-vs-tbb|parallel-for|pipeline|clean\n");
    return 2;
  }
  std::printf("%d\n", shared_counter);
  return 0;
}
