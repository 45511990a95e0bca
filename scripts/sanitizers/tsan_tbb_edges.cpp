// Makes oneTBB's hand-overs visible to ThreadSanitizer, so that the TSan run needs no
// suppression for TBB and checks the code inside parallel_for and parallel_pipeline bodies too
// (docs/HARDENING.md, "TSan and the uninstrumented libraries").
//
// Debian's libtbb.so.12 is not built with TSan: when it hands a task to another thread (spawn
// and steal), joins a wait, or runs a serial filter's next item on another thread, the atomics
// that order these are invisible, and TSan reports every access before the hand-over against
// every access after it. This library is preloaded (LD_PRELOAD) into the TSan test run only. It
// wraps libtbb's exported entry points (a call from our code, or from libtbb itself, goes
// through the PLT) and tells TSan about exactly the happens-before edges oneTBB guarantees,
// with __tsan_release / __tsan_acquire on the object handed over:
//
//   spawn -> execute      release on the task at spawn; acquire on it when it starts (its
//                         vtable is swapped for a copy whose execute/cancel acquire first and
//                         put the original vtable back)
//   small-object pool     release on a block when freed, acquire when handed out again
//   wait / join           acquire on the wait_context's counter after a wait returns (the
//                         tasks' decrements are instrumented atomics in TBB's headers)
//   parallel_pipeline     per filter, around each call: acquire on the item, release on the
//                         item returned (the token passed to the next filter, possibly on
//                         another thread); for serial filters acquire/release on the filter
//                         (one call after the other); a release on the filter's join word that
//                         only the thread that ran the pipeline acquires, when it returns
//
// Nothing else is ordered: two iterations of a parallel_for, or two calls of a parallel
// filter, stay unordered, so a race between them is reported (scripts/sanitizers/
// tsan_canary.cpp checks it in CI). Built by scripts/ci-sanitizers.sh without TSan
// instrumentation (its own accesses are not checked) and only for that run.
#include <dlfcn.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include <oneapi/tbb/detail/_pipeline_filters.h>
#include <oneapi/tbb/detail/_small_object_pool.h>
#include <oneapi/tbb/detail/_task.h>

extern "C" void __tsan_acquire(void* addr) __attribute__((weak));
extern "C" void __tsan_release(void* addr) __attribute__((weak));

namespace d1 = tbb::detail::d1;

namespace {

void acquire(const void* p) {
  if (__tsan_acquire && reinterpret_cast<std::uintptr_t>(p) >= 0x10000)
    __tsan_acquire(const_cast<void*>(p));
}
void release(const void* p) {
  if (__tsan_release && reinterpret_cast<std::uintptr_t>(p) >= 0x10000)
    __tsan_release(const_cast<void*>(p));
}

template <typename F>
F real(const char* mangled) {
  void* f = dlsym(RTLD_NEXT, mangled);
  if (!f) {
    std::fprintf(stderr, "tsan_tbb_edges: %s not found in libtbb\n", mangled);
    std::abort();
  }
  return reinterpret_cast<F>(f);
}

// ---- vtable copies: [original vtable][offset to top][typeinfo][N slots] ----------------------
// The object's vtable pointer points at `slots`; the Itanium ABI puts the offset to top and the
// typeinfo just before it. d1::task's slots: 0, 1 destructors, 2 execute, 3 cancel;
// d1::filter_node's: 0 create_filter, 1, 2 destructors; d1::base_filter's: 0 operator(),
// 1, 2 destructors, 3 finalize. TBB's task, node and filter classes add no virtual function.
template <int N>
struct VtableCopy {
  void* const* original;
  const void* offset_to_top;
  const void* typeinfo;
  void* slots[N];
  bool serial = false;         // filters: a serial filter
  char order = 0, join = 0;    // filters: the sync objects
  VtableCopy* next = nullptr;  // tasks: the list of copies
};

void* const*& vptr(const void* object) {
  return *const_cast<void* const**>(reinterpret_cast<void* const* const*>(object));
}
template <int N>
VtableCopy<N>* copy_of(const void* object) {
  return const_cast<VtableCopy<N>*>(reinterpret_cast<const VtableCopy<N>*>(
      reinterpret_cast<const char*>(vptr(object)) - offsetof(VtableCopy<N>, slots)));
}
template <int N>
VtableCopy<N>* make_copy(void* const* original) {
  auto* c = new VtableCopy<N>{original, original[-2], original[-1], {}};
  for (int i = 0; i < N; ++i) c->slots[i] = original[i];
  return c;
}

// ---- tasks -------------------------------------------------------------------------------------
using TaskCopy = VtableCopy<4>;
using TaskFn = d1::task* (*)(d1::task*, d1::execution_data&);

d1::task* start(d1::task* t, int slot, d1::execution_data& ed) {
  TaskCopy* c = copy_of<4>(t);
  vptr(t) = c->original;  // the task is itself again before any of its code runs
  acquire(t);
  return reinterpret_cast<TaskFn>(c->original[slot])(t, ed);
}
d1::task* execute_trampoline(d1::task* t, d1::execution_data& ed) {
  return start(t, 2, ed);
}
d1::task* cancel_trampoline(d1::task* t, d1::execution_data& ed) {
  return start(t, 3, ed);
}

std::atomic<TaskCopy*> task_copies{nullptr};  // one per task class, never freed
std::atomic_flag task_copies_lock = ATOMIC_FLAG_INIT;

TaskCopy* task_copy_for(void* const* original) {
  for (TaskCopy* c = task_copies.load(std::memory_order_acquire); c; c = c->next)
    if (c->original == original) return c;
  while (task_copies_lock.test_and_set(std::memory_order_acquire)) {
  }
  TaskCopy* c = task_copies.load(std::memory_order_relaxed);
  for (; c && c->original != original; c = c->next) {
  }
  if (!c) {
    c = make_copy<4>(original);
    c->slots[2] = reinterpret_cast<void*>(&execute_trampoline);
    c->slots[3] = reinterpret_cast<void*>(&cancel_trampoline);
    c->next = task_copies.load(std::memory_order_relaxed);
    task_copies.store(c, std::memory_order_release);
  }
  task_copies_lock.clear(std::memory_order_release);
  return c;
}

void arm(d1::task& t) {
  release(&t);
  vptr(&t) = task_copy_for(vptr(&t))->slots;
}

// ---- pipeline filters --------------------------------------------------------------------------
using FilterCopy = VtableCopy<4>;
using NodeCopy = VtableCopy<3>;
using FilterFn = void* (*)(d1::base_filter*, void*);
using CreateFn = d1::base_filter* (*)(const d1::filter_node*);

thread_local std::vector<FilterCopy*>* filling = nullptr;  // the pipeline being set up here

void* filter_trampoline(d1::base_filter* f, void* item) {
  FilterCopy* c = copy_of<4>(f);
  struct After {  // also when the body throws
    FilterCopy* c;
    void* out = nullptr;
    ~After() {
      release(out);
      if (c->serial) release(&c->order);
      release(&c->join);
    }
  } after{c};
  acquire(item);
  if (c->serial) acquire(&c->order);
  after.out = reinterpret_cast<FilterFn>(c->original[0])(f, item);
  return after.out;
}

d1::base_filter* create_filter_trampoline(const d1::filter_node* node) {
  d1::base_filter* f = reinterpret_cast<CreateFn>(copy_of<3>(node)->original[0])(node);
  FilterCopy* c = make_copy<4>(vptr(f));
  c->slots[0] = reinterpret_cast<void*>(&filter_trampoline);
  c->serial = f->is_serial();
  vptr(f) = c->slots;
  if (filling) filling->push_back(c);
  return f;
}

using Leaves = std::vector<std::pair<const d1::filter_node*, NodeCopy*>>;

void arm_leaves(const d1::filter_node& n, Leaves& nodes) {
  if (n.left && n.right) {
    arm_leaves(*n.left, nodes);
    arm_leaves(*n.right, nodes);
    return;
  }
  NodeCopy* c = make_copy<3>(vptr(&n));
  c->slots[0] = reinterpret_cast<void*>(&create_filter_trampoline);
  vptr(&n) = c->slots;
  nodes.emplace_back(&n, c);
}

}  // namespace

// ---- the wrapped entry points (the same signatures as in TBB's headers) -------------------------
namespace tbb::detail::r1 {

void spawn(d1::task& t, d1::task_group_context& ctx) {
  static const auto f = real<void (*)(d1::task&, d1::task_group_context&)>(
      "_ZN3tbb6detail2r15spawnERNS0_2d14taskERNS2_18task_group_contextE");
  arm(t);
  f(t, ctx);
}

void spawn(d1::task& t, d1::task_group_context& ctx, d1::slot_id id) {
  static const auto f = real<void (*)(d1::task&, d1::task_group_context&, d1::slot_id)>(
      "_ZN3tbb6detail2r15spawnERNS0_2d14taskERNS2_18task_group_contextEt");
  arm(t);
  f(t, ctx, id);
}

void execute_and_wait(d1::task& t, d1::task_group_context& t_ctx, d1::wait_context& w,
                      d1::task_group_context& w_ctx) {
  static const auto f = real<void (*)(d1::task&, d1::task_group_context&, d1::wait_context&,
                                      d1::task_group_context&)>(
      "_ZN3tbb6detail2r116execute_and_waitERNS0_2d14taskERNS2_18task_group_contextERNS2_12wait_"
      "contextES6_");
  f(t, t_ctx, w, w_ctx);
  static_assert(sizeof(d1::wait_context) == 16, "{version, std::atomic<uint64_t> ref_count}");
  acquire(reinterpret_cast<char*>(&w) + 8);  // the counter every finished task decremented
}

void wait(d1::wait_context& w, d1::task_group_context& ctx) {
  static const auto f = real<void (*)(d1::wait_context&, d1::task_group_context&)>(
      "_ZN3tbb6detail2r14waitERNS0_2d112wait_contextERNS2_18task_group_contextE");
  f(w, ctx);
  acquire(reinterpret_cast<char*>(&w) + 8);
}

void* allocate(d1::small_object_pool*& pool, std::size_t n) {
  static const auto f = real<void* (*)(d1::small_object_pool*&, std::size_t)>(
      "_ZN3tbb6detail2r18allocateERPNS0_2d117small_object_poolEm");
  void* p = f(pool, n);
  acquire(p);
  return p;
}

void* allocate(d1::small_object_pool*& pool, std::size_t n, const d1::execution_data& ed) {
  static const auto f =
      real<void* (*)(d1::small_object_pool*&, std::size_t, const d1::execution_data&)>(
          "_ZN3tbb6detail2r18allocateERPNS0_2d117small_object_poolEmRKNS2_14execution_dataE");
  void* p = f(pool, n, ed);
  acquire(p);
  return p;
}

void deallocate(d1::small_object_pool& pool, void* p, std::size_t n) {
  static const auto f = real<void (*)(d1::small_object_pool&, void*, std::size_t)>(
      "_ZN3tbb6detail2r110deallocateERNS0_2d117small_object_poolEPvm");
  release(p);
  f(pool, p, n);
}

void deallocate(d1::small_object_pool& pool, void* p, std::size_t n, const d1::execution_data& ed) {
  static const auto f =
      real<void (*)(d1::small_object_pool&, void*, std::size_t, const d1::execution_data&)>(
          "_ZN3tbb6detail2r110deallocateERNS0_2d117small_object_poolEPvmRKNS2_14execution_dataE");
  release(p);
  f(pool, p, n, ed);
}

void parallel_pipeline(d1::task_group_context& ctx, std::size_t max_tokens,
                       const d1::filter_node& root) {
  static const auto f =
      real<void (*)(d1::task_group_context&, std::size_t, const d1::filter_node&)>(
          "_ZN3tbb6detail2r117parallel_pipelineERNS0_2d118task_group_contextEmRKNS2_11filter_"
          "nodeE");
  Leaves nodes;
  std::vector<FilterCopy*> filters;
  arm_leaves(root, nodes);
  std::vector<FilterCopy*>* outer = filling;
  filling = &filters;
  struct Done {  // also when a filter throws
    Leaves& nodes;
    std::vector<FilterCopy*>& filters;
    std::vector<FilterCopy*>* outer;
    ~Done() {
      filling = outer;
      for (auto [node, c] : nodes) {  // the nodes are the caller's: give them back as they were
        vptr(node) = c->original;
        delete c;
      }
      for (FilterCopy* c : filters) {
        acquire(&c->join);  // every call of every filter happened before the pipeline returned
        delete c;
      }
    }
  } done{nodes, filters, outer};
  f(ctx, max_tokens, root);
}

}  // namespace tbb::detail::r1
